"""A one-line progress display for long commands, shown only to a person at a terminal.

`Progress.for_output(out, label, total, as_json=...)` is live only when stdout and stderr are both terminals and
the output is not JSON: piped, redirected or machine-read output never holds a progress line. The line goes to
stderr, redrawn in place (carriage return) at most every REDRAW seconds, and is erased when done, so what stays
on the screen is the command's own output. About forty lines of our own rather than rich: one counter on one
line needs no layout engine, and the CLI keeps its dependencies to what the daemon needs.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

REDRAW = 0.1  # seconds between redraws: often enough to look alive, rare enough to cost nothing


class Progress:
    def __init__(self, label: str, total: int | None, stream: TextIO | None) -> None:
        self.label = label
        self.total = total
        self._stream = stream  # None: off
        self._drawn = 0.0
        self._width = 0
        self._shown_label = ""

    @classmethod
    def for_output(cls, out: TextIO, label: str, total: int | None, *, as_json: bool = False) -> Progress:
        live = not as_json and _is_tty(out) and _is_tty(sys.stderr)
        return cls(label, total, sys.stderr if live else None)

    @property
    def live(self) -> bool:
        return self._stream is not None

    def update(self, done: int) -> None:
        if self._stream is None:
            return
        now = time.monotonic()
        # A new label (migrate's next table) is drawn at once, so no step goes by unseen.
        if now - self._drawn < REDRAW and done != self.total and self.label == self._shown_label:
            return
        self._drawn = now
        self._shown_label = self.label
        of = f"/{self.total}" if self.total is not None else ""
        text = f"{self.label}: {done}{of}"
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()
        self._width = len(text)

    def close(self) -> None:
        if self._stream is not None and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real stream
        return False
