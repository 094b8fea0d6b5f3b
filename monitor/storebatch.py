"""Group commit on the store thread: requests that arrive while it is busy are handled in one call.

A 304 writes one row, but on SQLite under `synchronous=FULL` its COMMIT (the WAL append and its fsync) costs
several times the statement: about 0.3 ms of CPU and 3 ms of wall time on the development box, which made the
commit most of what a poll that found nothing new cost. While the store thread works on one call, the
event loop keeps finishing fetches; their 304s wait in `Batch` and go to the store thread together, as one
call and one transaction (Store.commit_not_modified). A request that finds the store thread idle goes at
once, so the batching adds no wait: it only shares the commits that would have queued anyway.

The batch is taken when the store thread starts the call, not when it is queued, so requests that arrive while
the call waits behind others still join it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from monitor.storethread import StoreThread

__all__ = ["Batch"]

_Q = TypeVar("_Q")
_A = TypeVar("_A")


class Batch(Generic[_Q, _A]):
    """Requests of type _Q answered with _A by `handle_many`, a store-thread function that returns one answer
    (or the exception of that request alone) per request, in order. An exception that `handle_many` raises is
    every request's of that call."""

    def __init__(
        self, store_thread: StoreThread, handle_many: Callable[[Sequence[_Q]], Sequence[_A | BaseException]]
    ) -> None:
        self._store_thread = store_thread
        self._handle_many = handle_many
        self._lock = threading.Lock()  # _pending: appended on the event loop, taken on the store thread
        self._pending: list[tuple[_Q, asyncio.Future[_A]]] = []
        self._waiting: set[asyncio.Future[_A]] = set()  # every future not answered yet (event loop side)
        self._drainer: asyncio.Task[None] | None = None
        self.calls = 0  # store-thread calls made, and requests they handled (for tests and benchmarks)
        self.requests = 0

    async def submit(self, request: _Q) -> _A:
        future: asyncio.Future[_A] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._pending.append((request, future))
        self._waiting.add(future)
        future.add_done_callback(self._waiting.discard)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    def _take(self) -> list[tuple[_Q, asyncio.Future[_A]]]:
        with self._lock:
            taken, self._pending = self._pending, []
        return taken

    def _handle_taken(self) -> tuple[list[tuple[_Q, asyncio.Future[_A]]], Sequence[_A | BaseException]]:
        taken = self._take()  # on the store thread, when it gets to this call
        if not taken:
            return taken, []
        try:
            return taken, self._handle_many([request for request, _ in taken])
        except BaseException as exc:  # every request of this call gets it, on the event loop
            return taken, [exc] * len(taken)

    async def _drain(self) -> None:
        try:
            while True:
                with self._lock:
                    if not self._pending:
                        return
                taken, answers = await self._store_thread.run(self._handle_taken)
                if taken:
                    self.calls += 1
                    self.requests += len(taken)
                for (_, future), answer in zip(taken, answers, strict=True):
                    if future.done():  # its poll was cancelled meanwhile
                        continue
                    if isinstance(answer, BaseException):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        except BaseException as exc:
            # Cancelled (shutdown) while a call was queued or running: whoever still waits must not hang. A call
            # already running on the store thread completes there (as any store call cancelled at shutdown).
            self._take()
            for future in list(self._waiting):
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            raise
