"""Run `monitor` with stdout and stderr on a real pseudo-terminal (for progress lines, shown only there)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

__all__ = ["on_a_terminal"]


def on_a_terminal(argv: list[str], cwd: Path) -> tuple[int, str]:
    """Run `monitor ARGV` with stdout and stderr on a pseudo-terminal, as a person at a terminal would."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", *argv],
        stdout=secondary,
        stderr=secondary,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    return process.wait(timeout=300), b"".join(chunks).decode("utf-8", errors="replace")
