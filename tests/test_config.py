"""`monitor check` over good and bad configurations (tests/data/config/): every error names file:line and the
field, exits 1, and never prints a traceback or a secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config

CONFIGS = Path(__file__).parent / "data" / "config"
ENV = {"MONITOR_TEST_SMTP_PASSWORD": "smtp-secret-value", "MONITOR_TEST_WEBHOOK_SECRET": "hook-secret-value"}


@pytest.fixture
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MONITOR_TEST_UNSET_SECRET", raising=False)
    monkeypatch.delenv("MONITOR_TEST_SMTP_USER", raising=False)


def check(capsys: pytest.CaptureFixture[str], name: str) -> tuple[int, str, str]:
    code = main(["check", "--config", str(CONFIGS / name)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.usefixtures("secrets_in_env")
def test_a_good_config_checks_ok_and_resolves_paths_from_its_folder(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = check(capsys, "good.yaml")
    assert (code, err) == (0, "")
    assert "OK: 2 feeds, 2 rules" in out
    assert "2 channels (mail, hook)" in out

    config = load_config(CONFIGS / "good.yaml")
    assert config.database == CONFIGS / "state" / "monitor.db"
    assert config.rules == CONFIGS / "rules" / "good.yaml"
    assert config.feeds[0].interval is not None and config.feeds[0].interval.total_seconds() == 300
    assert config.feed_interval(config.feeds[1]).total_seconds() == 600
    mail = config.channels["mail"]
    assert mail.type == "email" and mail.username == "monitor"  # ${VAR:-default}
    assert mail.password is not None and mail.password.get_secret_value() == "smtp-secret-value"
    assert "smtp-secret-value" not in repr(config), "secrets never appear in reprs (and so in logs)"


# (file, "file:line" where the error is, text the message must hold)
BAD = [
    ("yaml_syntax.yaml", "yaml_syntax.yaml:5:", "invalid YAML"),
    ("unknown_key.yaml", "unknown_key.yaml:4:", "feeds.0.intervall: unknown key"),
    ("wrong_type.yaml", "wrong_type.yaml:5:", "fetch.concurrency: Input should be a valid integer"),
    ("bad_duration.yaml", "bad_duration.yaml:2:", "interval: Value error, not a duration"),
    ("missing_env.yaml", "missing_env.yaml:8:", "channels.hook.secret: environment variable"),
    ("bad_rule.yaml", "rules/bad_rule.yaml:7:", "rules.1.anyy: unknown key"),
    (
        "unknown_channel.yaml",
        "rules/unknown_channel.yaml:2",
        "notify: rule 'rare' notifies unknown channel 'pager'",
    ),
    ("not_a_mapping.yaml", "not_a_mapping.yaml:1:1", "the top level must be a mapping"),
    ("duplicate_feed.yaml", "duplicate_feed.yaml:3:", "listed twice"),
    ("bad_channel_type.yaml", "bad_channel_type.yaml:4:", "channels.pager"),
]


@pytest.mark.usefixtures("secrets_in_env")
@pytest.mark.parametrize(("name", "where", "what"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_config_gives_a_located_error(
    capsys: pytest.CaptureFixture[str], name: str, where: str, what: str
) -> None:
    code, out, err = check(capsys, name)
    assert code == 1
    assert out == ""
    assert err.startswith("monitor: configuration error: ")
    assert where in err
    assert what in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_the_missing_variable_is_named_with_how_to_give_a_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MONITOR_TEST_UNSET_SECRET", raising=False)
    code, _, err = check(capsys, "missing_env.yaml")
    assert code == 1
    assert "MONITOR_TEST_UNSET_SECRET is not set" in err
    assert "${MONITOR_TEST_UNSET_SECRET:-default}" in err


def test_a_rejected_value_from_the_environment_is_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_TEST_PORT", "hunter2-not-a-port")
    config = tmp_path / "monitor.yaml"
    config.write_text(
        "channels:\n  mail:\n    type: email\n    host: smtp.example.org\n    port: ${MONITOR_TEST_PORT}\n"
        "    sender: a@example.org\n    to: [b@example.org]\n",
        encoding="utf-8",
    )
    code = main(["check", "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 1
    assert "monitor.yaml:" in err and "port" in err
    assert "hunter2" not in err


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--config", str(tmp_path / "absent.yaml")])
    err = capsys.readouterr().err
    assert code == 1
    assert "absent.yaml" in err
    assert "Traceback" not in err


def test_check_in_a_subprocess_exits_1_without_a_traceback(repo_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_TEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "check", "--config", str(CONFIGS / "bad_rule.yaml")],
        capture_output=True,
        text=True,
        cwd=repo_dir,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "bad_rule.yaml:7:" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_error_in_a_channel_field_points_at_that_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(
        "channels:\n  mail:\n    type: email\n    host: smtp.example.org\n    port: not-a-port\n"
        "    sender: a@example.org\n    to: [b@example.org]\n",
        encoding="utf-8",
    )
    assert main(["check", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    # The union tag ("email") is not a key of the file: the path and position are those of the field itself.
    assert "monitor.yaml:5:11: channels.mail.port:" in err


def test_the_example_deployment_config_is_valid(repo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secrets = {
        "SMTP_USER": "u",
        "SMTP_PASSWORD": "hunter2-smtp",
        "WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    }
    config = load_config(repo_dir / "examples" / "monitor.yaml", environ=secrets)
    assert len(config.feeds) == 6 and set(config.channels) == {"desk", "brief", "hook"}
    assert config.channels["brief"].digest is not None
    assert "hunter2-smtp" not in repr(config.channels["desk"])  # the password stays a secret
    assert "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in repr(config.channels["hook"])


def test_check_reports_each_url_the_network_policy_would_refuse_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(
        "rules: rules.yaml\n"
        "feeds:\n"
        "  - url: https://example.org/feed.xml\n"
        "  - url: http://127.0.0.1:8080/feed\n"
        "  - url: http://[2002:a9fe:a9fe::]/latest/meta-data/\n"
        "  - url: http://localhost/feed\n"
        "channels:\n"
        "  hook:\n"
        "    type: webhook\n"
        "    url: http://[64:ff9b::a00:1]/hook\n"
        "  fine:\n"
        "    type: webhook\n"
        "    url: https://hooks.example.org/x\n",
        encoding="utf-8",
    )
    (tmp_path / "rules.yaml").write_text("rules:\n  - id: r\n    any: [word]\n", encoding="utf-8")
    code = main(["check", "--config", str(config)])
    captured = capsys.readouterr()
    assert code == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 4, lines
    assert f"{config}:4:10: feeds.1.url: refused by the network policy" in lines[0]
    assert "127.0.0.1" in lines[0]
    assert f"{config}:5:10: feeds.2.url:" in lines[1] and "169.254.169.254" in lines[1]
    assert f"{config}:6:10: feeds.3.url:" in lines[2]
    assert f"{config}:10:10: channels.hook.url:" in lines[3] and "10.0.0.1" in lines[3]
    assert "Traceback" not in captured.err


def test_check_accepts_private_urls_when_the_config_allows_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(
        'rules: rules.yaml\nallow_private_networks: ["127.0.0.1/32"]\nfeeds:\n  - url: http://127.0.0.1:8080/feed\n',
        encoding="utf-8",
    )
    (tmp_path / "rules.yaml").write_text("rules:\n  - id: r\n    any: [word]\n", encoding="utf-8")
    assert main(["check", "--config", str(config)]) == 0
    assert "OK: 1 feeds" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "where", "fragment"),
    [
        (
            "    group_by: [rule]\n",
            "monitor.yaml:4:15: channels.hook.group_by:",
            "group_by is [story] or [rule, story]",
        ),
        (
            "    min_severity: urgent\n",
            "monitor.yaml:4:19: channels.hook.min_severity:",
            "'low', 'normal', 'high'",
        ),
        ("    group_interval: soon\n", "monitor.yaml:4:21: channels.hook.group_interval:", "not a duration"),
    ],
)
def test_notification_keys_of_a_channel_are_checked_with_their_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, where: str, fragment: str
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(
        "channels:\n  hook:\n    type: webhook\n" + line + "    url: https://hooks.example.org/in\n",
        encoding="utf-8",
    )
    assert main(["check", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert where in err and fragment in err, err
