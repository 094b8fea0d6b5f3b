"""One thread for the store's blocking calls, so that the event loop never waits on the database.

A store call can block for as long as the database's busy timeout (another process holds SQLite's write lock:
a CLI command, a backup) or a full fsync under `synchronous=FULL`. Made on the event loop, that wait would stall
every fetch, delivery and the status page at once, and systemd's watchdog would kill a daemon that was only
waiting. So the daemon runs each poll's store work, delivery bookkeeping, housekeeping and the status page's
reads here, on one thread of their own.

One thread, not a pool: SQLite has one writer anyway, the story index in memory is not thread-safe, and one
thread keeps the order of story assignment exactly the order in which polls reach it, as on the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["StoreThread"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class StoreThread:
    """Runs blocking store work off the event loop, one call at a time, in submission order."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """Run `fn(*args, **kwargs)` on the store thread and wait for it without blocking the loop."""
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def submit(self, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_R]:
        """Queue `fn(*args, **kwargs)` behind the calls already queued, without waiting for it.

        The caller's context variables (log context, the current feed) go with the call."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="monitor-store")
        context = contextvars.copy_context()
        return self._executor.submit(functools.partial(context.run, fn, *args, **kwargs))

    def close(self) -> None:
        """Wait for the call in progress, if any, and stop the thread. Safe to call twice."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
