"""The shipped unit is hardened and valid: `systemd-analyze security --offline=yes` rates it at most 1.5, and
`systemd-analyze verify` finds nothing wrong with it. Skipped where systemd-analyze is absent (it is present on
the project's machines)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "monitor.service"
MAX_EXPOSURE = 1.5

analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(analyze is None, reason="systemd-analyze is not installed")


@needs_analyze
def test_unit_exposure_is_at_most_1_5() -> None:
    assert analyze is not None
    done = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for monitor\.service: (\d+\.\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    exposure = float(found.group(1))
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{done.stdout}"


@needs_analyze
def test_unit_verifies_clean(tmp_path: Path) -> None:
    """verify checks that ExecStart's programs exist, so the unit is checked as installed into this test's own
    environment: the install prefix /opt/monitor is replaced by this interpreter's prefix (which has
    bin/monitor); nothing else in the file changes."""
    assert analyze is not None
    prefix = Path(sys.prefix)
    if not (prefix / "bin" / "monitor").exists():
        pytest.skip(f"{prefix}/bin/monitor is not installed (pip install -e .)")
    text = UNIT.read_text(encoding="utf-8")
    assert "/opt/monitor/bin/monitor run" in text
    installed = tmp_path / "monitor.service"
    installed.write_text(text.replace("/opt/monitor", str(prefix)), encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(installed)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stderr.strip() == "", done.stdout + done.stderr


def test_sysusers_and_tmpfiles_name_the_units_user() -> None:
    """The unit runs as User=monitor; the sysusers.d file creates that user and tmpfiles.d its config folder."""
    unit = UNIT.read_text(encoding="utf-8")
    user = re.search(r"^User=(\S+)$", unit, re.M)
    assert user and user.group(1) == "monitor"
    sysusers = (REPO / "systemd" / "monitor.sysusers").read_text(encoding="utf-8")
    assert re.search(r"^u monitor - ", sysusers, re.M)
    tmpfiles = (REPO / "systemd" / "monitor.tmpfiles").read_text(encoding="utf-8")
    assert re.search(r"^d /etc/monitor 0750 root monitor", tmpfiles, re.M)


@needs_analyze
@pytest.mark.parametrize("name", ["monitor.sysusers", "monitor.tmpfiles"])
def test_sysusers_and_tmpfiles_parse(name: str, tmp_path: Path) -> None:
    """The real tools apply the files to an empty root: sysusers creates the user, tmpfiles the folder."""
    tool = shutil.which("systemd-sysusers" if name.endswith("sysusers") else "systemd-tmpfiles")
    if tool is None:
        pytest.skip(f"no tool to parse {name}")
    path = REPO / "systemd" / name
    (tmp_path / "etc").mkdir()
    args = [tool, f"--root={tmp_path}", str(path)]
    if name.endswith("tmpfiles"):
        args = [tool, f"--root={tmp_path}", "--create", str(path)]
        # tmpfiles resolves the group name inside the root, where sysusers would have created it
        (tmp_path / "etc" / "group").write_text("monitor:x:990:\n", encoding="utf-8")
        (tmp_path / "etc" / "passwd").write_text("", encoding="utf-8")
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    if name.endswith("sysusers"):
        passwd = (tmp_path / "etc" / "passwd").read_text(encoding="utf-8")
        assert re.search(r"^monitor:x:\d+:\d+:monitor news alerting daemon:/var/lib/monitor:", passwd, re.M)
    else:
        created = tmp_path / "etc" / "monitor"
        assert created.is_dir() and (created.stat().st_mode & 0o777) == 0o750
