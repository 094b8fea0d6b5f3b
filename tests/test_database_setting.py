"""`database:` takes an SQLite file path or a postgresql:// URL; any other scheme is an error naming the file and
line; secrets in the URL never appear in `monitor check`, errors or logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.dburl import PostgresURL, parse_database


def write(tmp_path: Path, database: str) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(f"interval: 5m\ndatabase: {database}\nfeeds: []\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check", "--config", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_file_path_is_an_sqlite_database_relative_to_the_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "./state/m.db"))
    assert config.database == tmp_path / "state" / "m.db"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_postgresql_url_selects_postgresql(tmp_path: Path, scheme: str) -> None:
    config = load_config(write(tmp_path, f"{scheme}://monitor@127.0.0.1:5432/news?sslmode=disable"))
    assert isinstance(config.database, PostgresURL)
    assert config.database.url == f"{scheme}://monitor@127.0.0.1:5432/news?sslmode=disable"
    assert config.database.dbname == "news"


def test_secrets_in_the_url_are_masked_in_check_output_and_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setenv("MONITOR_TEST_PGPASS", "pg-secret-from-env")
    path = write(
        tmp_path, "postgresql://monitor:${MONITOR_TEST_PGPASS}@127.0.0.1/news?password=literal-pg-secret"
    )
    code, out, err = check(path, capsys)
    assert (code, err) == (0, "")
    assert "database postgresql://monitor:***@127.0.0.1/news?password=***" in out
    config = load_config(path)
    assert "pg-secret" not in repr(config) and "pg-secret" not in str(config.database)
    # A log line that quotes the whole URL (a driver's error message, say) is masked too.
    with caplog.at_level(logging.INFO):
        logging.getLogger("monitor.test").error("cannot connect to %s", config.database.url)
    from monitor.logs import TextFormatter

    line = TextFormatter(timestamps=False).format(caplog.records[-1])
    assert "pg-secret" not in line and "127.0.0.1/news" in line


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("mysql://root@127.0.0.1/news", "unsupported database scheme mysql://"),
        ("sqlite:///state/m.db", "write the SQLite file's path itself"),
        ("file:///state/m.db", "write the SQLite file's path itself"),
        ("'host=127.0.0.1 dbname=news'", "write the PostgreSQL database as a URL"),
        ("postgresql://127.0.0.1:notaport/news", "not a valid PostgreSQL URL: the port must be a number"),
        ("postgresql://127.0.0.1/news?bogus=1", 'invalid URI query parameter: "bogus"'),
        ("postgresql://[::1/news", "IPv6 host address in URI: the URL"),
        ("''", "must not be empty"),
    ],
)
def test_any_other_database_is_an_error_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, what: str
) -> None:
    code, out, err = check(write(tmp_path, value), capsys)
    assert code == 1 and out == ""
    assert err.startswith("monitor: configuration error: ")
    assert "monitor.yaml:2:" in err and "database" in err
    assert what in err, err
    assert "Traceback" not in err


def test_a_refused_url_with_a_secret_does_not_echo_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_TEST_DBPASS", "hunter2-db-secret")
    code, _, err = check(write(tmp_path, "mysql://root:${MONITOR_TEST_DBPASS}@127.0.0.1/news"), capsys)
    assert code == 1
    assert "hunter2" not in err


def test_once_on_an_unsupported_scheme_creates_no_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["once", "--config", str(write(tmp_path, "mysql://127.0.0.1/news"))])
    assert code == 1
    assert "unsupported database scheme" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["monitor.yaml"]


def test_parse_database_passes_values_through() -> None:
    url = PostgresURL("postgresql://127.0.0.1/x")
    assert parse_database(url) is url
    assert parse_database(Path("a.db")) == Path("a.db")
    assert url.with_dbname("other").dbname == "other"
    assert repr(PostgresURL("postgresql://u:pw-secret@h/x")) == "PostgresURL('postgresql://u:***@h/x')"


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        (
            "cluster:\n  lease: 10s\n",
            "monitor.yaml:3:",
            "cluster.lease (10s) must be longer than fetch.total_timeout (60s)",
        ),
        ("fetch:\n  total_timeout: 300\n", "monitor.yaml:3:", "cluster.lease (180s) must be longer"),
        ("cluster:\n  heartbeat: 10s\n  dead_after: 15s\n", "monitor.yaml:3:", "at least two heartbeats"),
        ("cluster:\n  node: 'a b'\n", "monitor.yaml:3:", "a node name holds"),
        ("cluster:\n  delivery_lease: 0s\n", "monitor.yaml:3:", "must be longer than 0s"),
    ],
)
def test_cluster_settings_are_checked_at_their_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str, what: str
) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text("database: ./m.db\n" + text, encoding="utf-8")
    code, out, err = check(path, capsys)
    assert code == 1 and out == ""
    assert where in err and what in err, err


def test_an_empty_node_name_means_the_host_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONITOR_TEST_NODE", raising=False)
    path = tmp_path / "monitor.yaml"
    path.write_text("database: ./m.db\ncluster:\n  node: ${MONITOR_TEST_NODE:-}\n", encoding="utf-8")
    assert load_config(path).cluster.node is None
