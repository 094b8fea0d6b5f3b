"""`monitor init [DIR]`: the files it writes are valid (checked by a real `monitor check`), the drop-in points the
real unit at them, and nothing is ever overwritten."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.cli.init_cmd import INIT_FILES
from monitor.config import load_config
from tests.test_cli import run_monitor


def test_init_writes_a_commented_config_that_check_accepts(
    tmp_path: Path, repo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "site"
    assert main(["init", str(target)]) == 0
    out = capsys.readouterr().out
    for name in INIT_FILES:
        assert (target / name).is_file(), name
        assert f"wrote {target / name}" in out
    assert "Next:" in out and "monitor feeds add" in out and "monitor check" in out

    config = target / "monitor.yaml"
    text = config.read_text(encoding="utf-8")
    assert sum(1 for line in text.splitlines() if line.lstrip().startswith("#")) >= 20  # commented
    checked = run_monitor("check", "--config", str(config), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "OK: 0 feeds, 1 rules" in checked.stdout
    assert "Traceback" not in checked.stderr

    # The starter rule is loaded from the folder the config names, and fires on what its comment says.
    assert load_config(config).rules == target / "rules"
    assert (
        main(
            ["rules", "test", "example-topic", "--rules", str(target / "rules"), "--text", "Rare earth deal"]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith("example-topic: MATCH")


def test_init_drop_in_runs_the_real_unit_on_this_config(
    tmp_path: Path, repo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", str(tmp_path)]) == 0
    capsys.readouterr()
    drop_in = (tmp_path / INIT_FILES[2]).read_text(encoding="utf-8")
    settings = [
        tuple(line.split("=", 1)) for line in drop_in.splitlines() if line and not line.startswith(("#", "["))
    ]
    assert "[Service]" in drop_in.splitlines()
    config = tmp_path / "monitor.yaml"
    unit = (repo_dir / "systemd" / "monitor.service").read_text(encoding="utf-8")
    for key, verb in (("ExecStartPre", "check"), ("ExecStart", "run")):
        values = [value for name, value in settings if name == key]
        # An empty assignment first (clears the unit's command), then the unit's own command on this config.
        assert values[0] == "", key
        unit_command = re.search(rf"^{key}=(.*)$", unit, re.MULTILINE).group(1)  # type: ignore[union-attr]
        assert values[1] == re.sub(r"--config \S+", f"--config {config}", unit_command)
        assert f" {verb} --config {config}" in values[1]
    database = load_config(config).database
    assert isinstance(database, Path)
    assert ("ReadWritePaths", str(database.parent)) in settings


def test_init_never_overwrites_and_says_which_files_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules").mkdir()
    mine = tmp_path / "rules" / "starter.yaml"
    mine.write_text("rules: []  # mine\n", encoding="utf-8")
    assert main(["init", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{mine} exists" in err
    assert "monitor.yaml exists" not in err
    assert mine.read_text(encoding="utf-8") == "rules: []  # mine\n"
    # All or nothing: the files that did not exist were not written either.
    assert not (tmp_path / "monitor.yaml").exists()
    assert not (tmp_path / INIT_FILES[2]).exists()


def test_init_without_dir_writes_into_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert (tmp_path / "monitor.yaml").is_file()
    assert main(["init"]) == 1
    assert "monitor.yaml exists" in capsys.readouterr().err
