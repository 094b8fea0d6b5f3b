"""`monitor init [DIR]`: a commented monitor.yaml, a starter rule file and a systemd drop-in, never overwriting."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

__all__ = ["INIT_FILES", "cmd_init"]

CONFIG = """\
# monitor.yaml, written by `monitor init`. Every key is described in the README ("Configuration reference").
# Check it with:  monitor check --config {config}

# The SQLite file (created on first start); relative paths are taken from this file's folder.
database: ./state/monitor.db

# Your rules: a file or a folder of them. Without this line the bundled rules are used (rare earths, Ukraine
# peace talks, US-Russia cooperation and four actors); `monitor rules list` shows what is loaded.
rules: ./rules

# Feeds and webhooks may reach only public addresses. true (or a list of networks, ["10.1.0.0/16"]) allows
# private and loopback ones as well.
allow_private_networks: false

interval: 10m           # how often a feed is polled, unless the feed says otherwise

# Add feeds with `monitor feeds add URL [--interval 5m --tags de,wire --title NAME]` or
# `monitor feeds import subscriptions.opml`; both keep the comments of this file.
feeds: []
#  - url: https://www.tagesschau.de/xml/rss2/
#    interval: 5m
#    tags: [de]

# Where alerts go. A rule without `notify:` goes to every channel; with none, alerts are stored and shown by
# `monitor alerts` only. Secrets come from the environment: ${{SMTP_PASSWORD}}, ${{WEBHOOK_SECRET}}.
channels: {{}}
#  desk:
#    type: email
#    host: smtp.example.org
#    starttls: true
#    username: ${{SMTP_USER}}
#    password: ${{SMTP_PASSWORD}}
#    sender: monitor@example.org
#    to: [analyst@example.org]
#  hook:
#    type: webhook
#    url: https://hooks.example.org/monitor
#    secret: ${{WEBHOOK_SECRET}}

# The status page, /healthz and /metrics (loopback needs no token).
# status:
#   listen: 127.0.0.1:9464
"""

RULES = """\
# A starter rule file, written by `monitor init`. The README's "Writing rules" explains every key; the bundled
# rules (`monitor rules list` without --rules) are worked examples in German, English and Russian.
#
# Try a rule on a text:      monitor rules test example-topic --rules {rules} --text "Headline"
# Try it on a feed:          monitor match --rules {rules} --explain FEED_URL_OR_FILE

vocabularies:
  example-topic:              # used below as $example-topic
    - rare earth              # the words and their inflections: rare earths, rare-earth
    - Seltenerd*              # any word starting so: Seltenerdmetalle
    - '"Seltene Erden"'       # these exact words
    - =REE                    # case-sensitive

rules:
  - id: example-topic
    title: Rare earth elements (an example, rename it and write your own terms)
    any: [$example-topic]
    # notify: [desk]          # channel names from monitor.yaml; default: every channel
"""

DROP_IN = """\
# A systemd drop-in for systemd/monitor.service, written by `monitor init`: runs the daemon on {config}.
# Install the unit first (README, "Running under systemd"), then:
#   sudo install -D -m 0644 {drop_in} /etc/systemd/system/monitor.service.d/monitor-init.conf
#   sudo systemctl daemon-reload && sudo systemctl restart monitor
[Service]
# An empty assignment clears the unit's own command before the new one is set.
ExecStartPre=
ExecStartPre=/opt/monitor/bin/monitor check --config {config}
ExecStart=
ExecStart=/opt/monitor/bin/monitor run --config {config}
# The unit's file system is read-only apart from /var/lib/monitor (ProtectSystem=strict); the database of this
# config lives in {state}. The unit also hides /home (ProtectHome=yes): keep this folder outside it, e.g.
# `monitor init /srv/monitor`, or set `database: /var/lib/monitor/monitor.db` in monitor.yaml.
ReadWritePaths={state}
"""

# Relative to DIR: what `monitor init` writes.
INIT_FILES = ("monitor.yaml", "rules/starter.yaml", "systemd/monitor.service.d/monitor-init.conf")


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    directory: Path = (args.directory or Path()).expanduser().resolve()
    targets = [directory / name for name in INIT_FILES]
    existing = [path for path in targets if path.exists() or path.is_symlink()]
    if existing:
        for path in existing:
            print(f"monitor init: {path} exists; not overwriting it", file=sys.stderr)
        print(
            "monitor init: nothing written (move those files away, or pick another folder)", file=sys.stderr
        )
        return 1
    config, rules, drop_in = targets
    state = directory / "state"
    contents = {
        config: CONFIG.format(config=config),
        rules: RULES.format(rules=rules.parent),
        drop_in: DROP_IN.format(config=config, drop_in=drop_in, state=state),
    }
    for path, text in contents.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        # "x": never replaces a file, even one created since the check above.
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
        out.write(f"wrote {path}\n")
    out.write(
        "\nNext:\n"
        f"  1. add feeds:        monitor feeds add URL --config {config}   (or: monitor feeds import FILE.opml)\n"
        f"  2. write your rules: {rules}, then: monitor rules test example-topic --rules {rules.parent} "
        '--text "..."\n'
        f"  3. add a channel:    edit channels: in {config}\n"
        f"  4. check and try:    monitor check --config {config} && monitor once --config {config}\n"
        f"  5. run it:           monitor run --config {config}, or under systemd with {drop_in}\n"
    )
    return 0
