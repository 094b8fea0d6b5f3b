"""Output conventions of the command line: `--json` on every listing (JSON and nothing else on stdout), a quiet
exit 0 on a closed pipe, exit codes in `--help` and the README, and the README documenting every command that
`--help` lists."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from monitor.cli import EXIT_CODES, build_parser, main
from tests.support.daemonproc import FeedBuilder, write_config
from tests.support.feedserver import FeedServer
from tests.support.receivers import WebhookReceiver
from tests.support.terminal import on_a_terminal

# Every command that lists things; each must take --json.
LISTINGS = (
    ("feeds",),
    ("alerts",),
    ("stories",),
    ("deliveries",),
    ("nodes",),
    ("match", "feed.xml"),
    ("rules", "list"),
    ("rules", "replay"),
)


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_every_listing_command_takes_json(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in LISTINGS:
        words = [word for word in argv if not word.endswith(".xml")]
        assert "--json" in _help(capsys, *words), f"monitor {' '.join(words)} has no --json"


def test_listings_with_json_write_one_object_per_line_and_nothing_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real state: alerts from a feed on 127.0.0.1, their deliveries dead at a receiver that answered 410 Gone,
    which also disabled the channel (the warning `deliveries` used to print first on stdout)."""
    feed = FeedBuilder()
    feed.add_headlines("c", range(3))
    with FeedServer() as server, WebhookReceiver(default_status=410) as hook:
        server.set("/wire.xml", feed.rss())
        config = write_config(tmp_path, feed_urls=[server.url("/wire.xml")], hook_url=hook.url)
        assert main(["once", "--config", str(config), "--deadline", "60"]) == 0
        assert hook.requests
    capsys.readouterr()
    (tmp_path / "feed.xml").write_bytes(feed.rss())
    counts = {}
    for argv in LISTINGS:
        words = [str(tmp_path / word) if word.endswith(".xml") else word for word in argv]
        extra = ["--all"] if argv[0] in ("deliveries", "nodes") else []
        config_args = [] if argv[0] == "match" or argv == ("rules", "list") else ["--config", str(config)]
        assert main([*words, "--json", *extra, *config_args]) == 0, argv
        captured = capsys.readouterr()
        lines = captured.out.splitlines()
        objects = [json.loads(line) for line in lines]  # every line is JSON
        assert all(isinstance(obj, dict) for obj in objects), argv
        counts[" ".join(word for word in argv if not word.endswith(".xml"))] = len(objects)
        if argv[0] == "deliveries":
            assert "CHANNEL DISABLED hook" in captured.err
            assert {obj["status"] for obj in objects} >= {"dead"}
    assert counts["feeds"] == 1 and counts["alerts"] >= 3 and counts["stories"] >= 3
    assert counts["match"] == 3 and counts["rules list"] >= 8 and counts["deliveries"] >= 1
    assert counts["rules replay"] == counts["stories"]  # every stored story here has an alert


def test_a_closed_pipe_ends_quietly_with_status_0(tmp_path: Path, repo_dir: Path) -> None:
    """`monitor match --json ... | head -1` under `set -o pipefail`: far more output than a pipe holds, so the
    writes after `head` left do meet the closed pipe."""
    items = "".join(
        f"<item><guid>q-{n}</guid><title>Local bakery wins award {n}</title>"
        f"<description>{escape('Bread, rolls and a record queue. ' * 8)}</description></item>"
        for n in range(1500)
    )
    big = tmp_path / "big.xml"
    big.write_text(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><language>en</language>{items}'
        "</channel></rss>",
        encoding="utf-8",
    )
    command = f"set -o pipefail; {sys.executable} -m monitor match --json --all {big} | head -1"
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, cwd=repo_dir, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1 and json.loads(result.stdout)["title"].startswith(
        "Local bakery"
    )
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.stderr == ""


def _codes(text: str, pattern: str) -> set[int]:
    return {int(code) for code in re.findall(pattern, text, re.MULTILINE)}


def test_exit_codes_are_in_help_and_in_the_readme(repo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shown = _help(capsys)
    assert "exit status:" in shown
    in_help = _codes(shown.split("exit status:", 1)[1], r"^  (\d+)\s")
    assert in_help == _codes(EXIT_CODES, r"^  (\d+)\s") == {0, 1, 2, 130}
    readme = (repo_dir / "README.md").read_text(encoding="utf-8")
    table = readme.split("| Exit status | Meaning |", 1)[1].split("\n\n", 1)[0]
    assert _codes(table, r"^\| (\d+) \|") == in_help


def _listed_commands(help_text: str) -> list[str]:
    """The commands a `--help` lists: the `{a,b,c}` choices of its positional argument, or the indented names
    under it when it has a metavar (the subcommands)."""
    positional = help_text.split("positional arguments:", 1)[1].split("\noptions:", 1)[0]
    choices = re.search(r"\{([\w,-]+)\}", positional)
    if choices:
        return choices.group(1).split(",")
    return re.findall(r"^    ([a-z][\w-]*)\s", positional, re.MULTILINE)


def test_the_readme_documents_every_command_help_lists(
    repo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (repo_dir / "README.md").read_text(encoding="utf-8")
    top = _listed_commands(_help(capsys))
    assert {"run", "init", "feeds", "rules", "deliveries"} <= set(top)
    commands: list[str] = []
    for name in top:
        commands.append(f"monitor {name}")
        sub_help = _help(capsys, name)
        if "positional arguments:" in sub_help:
            commands += [f"monitor {name} {action}" for action in _listed_commands(sub_help)]
    assert "monitor feeds import" in commands and "monitor rules list" in commands
    missing = [command for command in commands if f"`{command}" not in readme]
    assert not missing, f"listed by --help but not documented in README.md: {missing}"
    # And the parser agrees with what --help printed (nothing hidden from it).
    assert len(top) == len(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def test_once_shows_its_progress_on_a_terminal_only(tmp_path: Path, repo_dir: Path) -> None:
    with FeedServer() as server:
        for name in ("a", "b", "c"):
            server.set(f"/{name}.xml", FeedBuilder().rss())
        config = write_config(tmp_path, feed_urls=[server.url(f"/{name}.xml") for name in ("a", "b", "c")])
        status, screen = on_a_terminal(["once", "--config", str(config)], repo_dir)
        assert status == 0, screen
        assert "\rpolling feeds: 3/3" in screen
        assert "3 feeds polled, 0 failed" in screen
        piped = subprocess.run(
            [sys.executable, "-m", "monitor", "once", "--config", str(config)],
            capture_output=True, text=True, cwd=repo_dir, timeout=300, check=False,
        )  # fmt: skip
        assert piped.returncode == 0 and "polling feeds" not in piped.stdout + piped.stderr
