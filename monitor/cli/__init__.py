"""The command line: the only module that prints.

    monitor run      --config FILE      the daemon
    monitor once     --config FILE      poll every feed once, deliver, exit (cron, tests)
    monitor check    --config FILE      validate config and rules
    monitor match    SOURCE...          dry run of the rules over feed files or URLs (no state, no alerts)
    monitor rules test RULE --text ...  check one rule against a text
    monitor rules replay [--since 7d]   run rules over the stored items, by story (changes nothing)
    monitor demo                        offline demo on bundled feeds
    monitor feeds [unpark URL] | alerts [show ID] | stories [show ID] | deliveries [retry ID|--dead | enable CHANNEL]   operator views
    monitor nodes                       the daemons sharing this database
    monitor migrate --from DB --to URL  copy an SQLite database into PostgreSQL
    monitor init [DIR]                  a commented monitor.yaml, a starter rule file, a systemd drop-in
    monitor feeds add|remove URL, feeds import FILE.opml, feeds export   edit the feed list (comments kept)
    monitor silence add --rule ID|--story ID|--feed URL --for 4h --reason ... | list | expire ID   mute alerts

Exit status: see EXIT_CODES (`monitor --help`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from monitor import __version__, logs
from monitor.errors import ConfigError, MonitorError
from monitor.redact import RedactingFilter, RedactingWriter

__all__ = ["build_parser", "emit_json", "main"]

log = logging.getLogger("monitor")

CONFIG_ENV = "MONITOR_CONFIG"

# Printed by `monitor --help` and documented in the README ("Exit codes"); tests/test_cli_conventions.py holds
# both to this list.
EXIT_CODES = """\
exit status:
  0    success; also `once` when some feeds failed (it lists them), and a listing whose reader
       closed the pipe early (`monitor alerts | head -1`)
  1    invalid input or a failed operation: configuration, rules, a source that could not be read, a
       file `init` would overwrite, a refused feed URL, the database could not record a poll;
       `rules test` when the rule does not match
  2    usage error (unknown command or option)
  130  interrupted (Ctrl-C)
"""


def _default_config() -> Path:
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    local = Path("monitor.yaml")
    return local if local.exists() else Path("/etc/monitor/monitor.yaml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor",
        description="News and event-stream monitoring and alerting.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--config",
            "-c",
            type=Path,
            default=None,
            help=f"monitor.yaml (default: ${CONFIG_ENV}, ./monitor.yaml, /etc/monitor/monitor.yaml)",
        )
        return p

    with_config(sub.add_parser("run", help="run the daemon: poll feeds on schedule and deliver alerts"))
    once = with_config(sub.add_parser("once", help="poll every feed once, deliver the alerts, exit"))
    once.add_argument(
        "--deadline",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="stop delivering after this long and list what is still pending (default 300)",
    )
    once.add_argument(
        "--force",
        action="store_true",
        help="also poll feeds in backoff after failures or under a server's Retry-After (skipped otherwise)",
    )
    with_config(sub.add_parser("check", help="validate the configuration and the rules"))

    match = sub.add_parser(
        "match", help="show which rules fire on the entries of feed files or URLs (dry run)"
    )
    match.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="feed file or http(s) URL (with --config: default every feed)",
    )
    match.add_argument(
        "--rules", type=Path, default=None, help="rule file or folder (default: the config's, else bundled)"
    )
    match.add_argument(
        "--config",
        "-c",
        dest="match_config",  # not `config`: without it, match reads no config at all (see _dispatch)
        type=Path,
        default=None,
        help="apply this config's feed settings (tags, language, title) to the sources that are its feed URLs, "
        "its rules and its network policy",
    )
    match.add_argument("--json", action="store_true", help="one JSON object per entry per line")
    match.add_argument("--explain", action="store_true", help="show which terms fired, where, on what text")
    match.add_argument("--all", action="store_true", help="also list entries no rule fired on")
    match.add_argument(
        "--allow-private-networks",
        action="store_true",
        help="let URL sources reach loopback/private addresses",
    )

    rules = sub.add_parser("rules", help="work with rules")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    rules_test = rules_sub.add_parser("test", help="check one rule against a text")
    rules_test.add_argument("rule", help="rule id")
    rules_test.add_argument(
        "--text", required=True, help="the text to test (treated as an item's title+summary)"
    )
    rules_test.add_argument("--language", default=None, help="language of the text (default: detected)")
    rules_test.add_argument("--rules", type=Path, default=None, help="rule file or folder (default: bundled)")
    rules_list = rules_sub.add_parser("list", help="list the rules")
    rules_list.add_argument("--rules", type=Path, default=None, help="rule file or folder (default: bundled)")
    rules_list.add_argument("--json", action="store_true", help="one JSON object per rule per line")
    rules_replay = with_config(
        rules_sub.add_parser(
            "replay",
            help="run rules over the stored items and show what would have alerted, by story (changes nothing)",
        )
    )
    rules_replay.add_argument(
        "--rules", type=Path, default=None, help="rule file or folder (default: the config's rules)"
    )
    rules_replay.add_argument(
        "--since", default="7d", help="items fetched within this long (default 7d; 30d, 12h, ...)"
    )
    rules_replay.add_argument(
        "--rule", action="append", default=[], metavar="ID", help="only this rule (repeatable)"
    )
    rules_replay.add_argument("--json", action="store_true", help="one JSON object per story per line")

    demo = sub.add_parser(
        "demo", help="offline demo: bundled feeds on 127.0.0.1, default rules, shows alerts"
    )
    demo.add_argument("--keep", type=Path, default=None, help="keep the demo's state in this folder")

    init = sub.add_parser(
        "init",
        help="write a commented monitor.yaml, a starter rule file and a systemd drop-in (never overwrites)",
    )
    init.add_argument("directory", nargs="?", type=Path, default=None, metavar="DIR", help="default: .")

    feeds = with_config(
        sub.add_parser(
            "feeds",
            help="list feeds with their schedule, errors and parking; add, remove, import or export them",
        )
    )
    feeds.add_argument(
        "action",
        nargs="?",
        choices=["unpark", "add", "remove", "import", "export"],
        help="unpark: poll a parked feed again; add/remove URL: edit the config file (its comments stay); "
        "import FILE.opml; export: OPML 2.0 on stdout",
    )
    feeds.add_argument(
        "urls", nargs="*", metavar="URL", help="feed URLs (unpark, add, remove), or the OPML file"
    )
    feeds.add_argument("--interval", default=None, help="with add: the feed's poll interval (5m, 1h)")
    feeds.add_argument("--tags", default=None, help="with add: comma-separated tags (de,wire)")
    feeds.add_argument("--title", default=None, help="with add: a title instead of the feed's own")
    feeds.add_argument("--json", action="store_true", help="one JSON object per feed per line")
    alerts = with_config(sub.add_parser("alerts", help="list recent alerts, or show one"))
    alerts.add_argument("action", nargs="?", choices=["show"], help="show one alert with its deliveries")
    alerts.add_argument("alert_id", nargs="?", help="alert id (with show)")
    alerts.add_argument("--json", action="store_true", help="one JSON object per alert per line")
    alerts.add_argument("--limit", type=int, default=50)
    stories = with_config(sub.add_parser("stories", help="list recent stories, or show how one was formed"))
    stories.add_argument(
        "action",
        nargs="?",
        choices=["show"],
        help="show one story: each item, how it joined, on what evidence",
    )
    stories.add_argument("story_id", nargs="?", help="story id (with show)")
    stories.add_argument("--json", action="store_true", help="one JSON object per story per line")
    stories.add_argument("--limit", type=int, default=50)
    deliveries = with_config(
        sub.add_parser(
            "deliveries",
            help="list pending and dead deliveries, retry them, or re-enable a disabled channel",
        )
    )
    deliveries.add_argument(
        "action",
        nargs="?",
        choices=["retry", "enable"],
        help="retry: re-drive deliveries; enable: re-enable a channel disabled after HTTP 410",
    )
    deliveries.add_argument(
        "ids", nargs="*", metavar="ID", help="delivery ids (with retry), or the channel name (with enable)"
    )
    deliveries.add_argument("--dead", action="store_true", help="with retry: every dead delivery")
    deliveries.add_argument("--all", action="store_true", help="list sent deliveries too")
    deliveries.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per delivery per line (disabled channels: stderr)",
    )
    silence = with_config(
        sub.add_parser(
            "silence", help="mute alerts of a rule, story or feed for a while; list or expire silences"
        )
    )
    silence.add_argument("action", choices=["add", "list", "expire"])
    silence.add_argument("silence_id", nargs="?", metavar="ID", help="with expire: the silence's id")
    silence.add_argument("--rule", default=None, metavar="ID", help="with add: the rule to mute")
    silence.add_argument("--story", default=None, metavar="ID", help="with add: the story to mute")
    silence.add_argument("--feed", default=None, metavar="URL", help="with add: the feed to mute")
    silence.add_argument("--for", dest="duration", default="1h", help="with add: how long (4h, 30m, 2d)")
    silence.add_argument("--reason", default=None, help="with add: why (required)")
    silence.add_argument("--all", action="store_true", help="with list: ended silences too")
    silence.add_argument("--json", action="store_true", help="one JSON object per silence per line")
    nodes = with_config(
        sub.add_parser("nodes", help="list the daemons running on this database, their feeds and heartbeats")
    )
    nodes.add_argument("--all", action="store_true", help="also stopped and silent nodes of the last week")
    nodes.add_argument("--json", action="store_true", help="one JSON object per node per line")
    migrate = sub.add_parser(
        "migrate", help="copy an SQLite database into an empty PostgreSQL database, verified by counts"
    )
    migrate.add_argument("--from", dest="source", required=True, metavar="FILE", help="the SQLite database")
    migrate.add_argument(
        "--to", dest="target", required=True, metavar="URL", help="postgresql:// URL (${VAR} allowed)"
    )
    return parser


def setup_logging(verbose: bool, level: str = "INFO") -> None:
    logs.configure(logging.DEBUG if verbose else getattr(logging, level))
    # Our formatters redact every line they write; a handler someone else installed (a test runner's, a
    # library's) gets the record-level filter, so no handler ever sees a `${VAR}` value from a URL.
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        status = _dispatch(args)
        sys.stdout.flush()  # here, so a closed pipe is met inside the handler below and not at exit
        return status
    except BrokenPipeError:
        return _reader_went_away()
    except ConfigError as exc:
        print(f"monitor: configuration error: {exc}", file=sys.stderr)
        return 1
    except MonitorError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _reader_went_away() -> int:
    """The reader of stdout closed it (`monitor alerts | head -1`): stop quietly with status 0.

    0 and not 141 (death by SIGPIPE, what `yes | head` gives): the reader stopped on purpose, and a script under
    `set -o pipefail` should not fail because `head` had enough. Python ignores SIGPIPE, so the write raised
    BrokenPipeError; stdout is pointed at /dev/null so that the interpreter's own flush at exit cannot raise
    again and print "Exception ignored ... BrokenPipeError"."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (a test's capture): nothing left to protect
        pass
    finally:
        os.close(devnull)
    return 0


# command → (module of monitor.cli, handler): only the chosen command's module is imported, so a listing such as
# `monitor alerts` does not pay for the pipeline, the fetcher and the story index at start-up.
_HANDLERS: dict[str, tuple[str, str]] = {
    "run": ("daemon_cmds", "cmd_run"),
    "once": ("daemon_cmds", "cmd_once"),
    "check": ("daemon_cmds", "cmd_check"),
    "match": ("match_cmds", "cmd_match"),
    "rules": ("match_cmds", "cmd_rules"),
    "demo": ("demo_cmd", "cmd_demo"),
    "init": ("init_cmd", "cmd_init"),
    "feeds": ("ops_cmds", "cmd_feeds"),
    "alerts": ("ops_cmds", "cmd_alerts"),
    "stories": ("ops_cmds", "cmd_stories"),
    "deliveries": ("ops_cmds", "cmd_deliveries"),
    "nodes": ("ops_cmds", "cmd_nodes"),
    "silence": ("silence_cmd", "cmd_silence"),
    "migrate": ("ops_cmds", "cmd_migrate"),
}


def _dispatch(args: argparse.Namespace) -> int:
    # Imported here so `monitor --help` stays fast and a broken optional piece cannot break every command.
    module, name = _HANDLERS[args.command]
    handler: Callable[[argparse.Namespace, TextIO], int] = getattr(
        importlib.import_module(f"monitor.cli.{module}"), name
    )
    if getattr(args, "config", "unset") is None:
        args.config = _default_config()
    # Everything the CLI prints passes the redactor: a ${VAR} inside a URL shows as written, not as its value.
    return handler(args, RedactingWriter(sys.stdout))  # type: ignore[arg-type]


def emit_json(out: TextIO, obj: Any) -> None:
    out.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
