"""monitor.storebatch.Batch on a real StoreThread: requests that arrive while the store thread is busy are
handled together, each gets its own answer or its own exception, and nothing waits forever."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from monitor.storebatch import Batch
from monitor.storethread import StoreThread


def test_requests_queued_behind_a_busy_store_thread_go_in_one_call() -> None:
    calls: list[list[int]] = []
    release = threading.Event()

    def handle(requests: Sequence[int]) -> list[int | BaseException]:
        calls.append(list(requests))
        return [ValueError(f"odd {r}") if r % 2 else r * 10 for r in requests]

    async def main() -> list[int | BaseException]:
        thread = StoreThread()
        batch: Batch[int, int] = Batch(thread, handle)
        busy = asyncio.ensure_future(thread.run(release.wait, 5))  # the store thread is busy with a commit
        await asyncio.sleep(0.05)
        tasks = [asyncio.ensure_future(batch.submit(n)) for n in range(6)]
        await asyncio.sleep(0.05)
        assert not any(t.done() for t in tasks)  # waiting behind the busy call, not handled one by one
        release.set()
        answers = await asyncio.gather(*tasks, return_exceptions=True)
        await busy
        assert (batch.calls, batch.requests) == (1, 6)
        # Idle store thread: a request goes at once, alone.
        assert await batch.submit(8) == 80
        thread.close()
        return answers

    answers = asyncio.run(main())
    assert calls == [[0, 1, 2, 3, 4, 5], [8]]
    assert answers[0::2] == [0, 20, 40]
    assert [str(a) for a in answers[1::2]] == ["odd 1", "odd 3", "odd 5"]


def test_an_exception_of_the_whole_call_reaches_every_request_of_it() -> None:
    def handle(requests: Sequence[int]) -> list[int | BaseException]:
        raise OSError("disk full")

    async def main() -> None:
        thread = StoreThread()
        batch: Batch[int, int] = Batch(thread, handle)
        results = await asyncio.gather(*(batch.submit(n) for n in range(3)), return_exceptions=True)
        assert all(isinstance(r, OSError) and str(r) == "disk full" for r in results)
        with pytest.raises(OSError):  # the next request still gets an answer: the batch is not wedged
            await batch.submit(4)
        thread.close()

    asyncio.run(main())


def test_cancelling_the_drainer_leaves_no_request_waiting() -> None:
    release = threading.Event()

    def handle(requests: Sequence[int]) -> list[int | BaseException]:
        return list(requests)

    async def main() -> None:
        thread = StoreThread()
        batch: Batch[int, int] = Batch(thread, handle)
        busy = asyncio.ensure_future(thread.run(release.wait, 5))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(batch.submit(1))
        await asyncio.sleep(0.05)
        assert batch._drainer is not None
        batch._drainer.cancel()  # shutdown while the call is queued
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 2)
        release.set()
        await busy
        assert await batch.submit(2) == 2
        thread.close()

    asyncio.run(main())
