"""The delivery worker: drain due deliveries from the outbox, send them, record the outcome.

Semantics (at-least-once):
- A delivery is marked sent only after its channel's `send` returned, i.e. the receiver accepted it. A crash
  between acceptance and `mark_sent` leaves it pending; it is sent again with the same id (webhook-id,
  Message-ID), which is how receivers recognise the duplicate.
- Channels run concurrently, each with its own concurrency limit, rate limit and send deadline, so a slow or
  failing channel never delays the others.
- A retryable failure (5xx, 408, 429, timeouts, connection errors, SMTP 4xx) schedules the next attempt on the
  retry policy (retry.py), honouring Retry-After; when the policy gives up, the delivery is dead.
- A non-retryable failure (other 4xx, SMTP 5xx, a body that cannot be built) makes the delivery dead at once.
- 410 Gone makes the delivery dead and disables the channel (logged as an error); the channel's other
  deliveries are parked until an operator re-enables it.
- When a channel fails at the transport level (no answer, 429, 503, SMTP 421) its remaining deliveries of this
  run are not attempted: they are rescheduled as if they had failed the same way. A receiver that is down then
  costs one timeout per run, not one per delivery. A delivery the retry policy would give up on is tried for
  real all the same: a delivery goes dead only after a real attempt, never by ageing behind other failures.
- A failure nobody foresaw (a channel's bug, an exception whose repr fails, a bug in the worker itself) still
  gives the delivery a last error and a next attempt on the schedule, and eventually the dead-letter queue.
- Deliveries the rate limit cannot let through soon are put back until the bucket has room; that is not a
  failure (see retry.py on why this does not advance them towards the dead-letter queue).
- A delivery for a channel that is disabled, or no longer configured (the config may come back on reload), is
  parked: retried no more often than every `PARK_INTERVAL`, and dead once the retry policy gives up on it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from monitor.errors import DeliveryError, EndpointGoneError
from monitor.notify.base import Channel
from monitor.notify.limits import RateLimiter
from monitor.notify.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from monitor.storethread import StoreThread
from monitor.timeutil import format_duration, utcnow
from monitor.types import DeliveryRequest

__all__ = ["PARK_INTERVAL", "DeliveryQueue", "DeliveryReport", "deliver_due"]

log = logging.getLogger("monitor.notify")

PARK_INTERVAL = timedelta(minutes=5)
MAX_INLINE_RATE_WAIT = 2.0  # seconds a send may wait for the rate limit before it is put back instead
MAX_ERRORS_PER_CHANNEL = 10  # in a report; the store keeps every delivery's last error

# Rate limiters live as long as their channel object, across runs (a new config builds new channels).
_limiters: weakref.WeakKeyDictionary[Channel, RateLimiter] = weakref.WeakKeyDictionary()


class DeliveryQueue(Protocol):
    """The outbox as the worker sees it (the store implements it)."""

    def claim_due(self, now: datetime, limit: int, channel: str | None = None) -> list[DeliveryRequest]:
        """Due pending deliveries (of `channel` only, when given), oldest first, reserved for this worker for a
        while."""
        ...

    def mark_sent(self, delivery_id: str, now: datetime) -> None: ...

    def mark_retry(self, delivery_id: str, error: str, now: datetime, retry_at: datetime) -> None: ...

    def mark_dead(self, delivery_id: str, error: str, now: datetime) -> None: ...

    def disable_channel(self, channel: str, reason: str, now: datetime) -> None: ...

    def disabled_channels(self) -> set[str]: ...


@dataclass(slots=True)
class DeliveryReport:
    """What one run did: counts, channels disabled, and per channel the errors met (first few)."""

    sent: int = 0
    retried: int = 0  # failed, another attempt is scheduled
    dead: int = 0
    deferred: int = 0  # not attempted this run (rate limit, channel down/disabled/unknown); rescheduled
    disabled: list[str] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add_error(self, channel: str, message: str) -> None:
        messages = self.errors.setdefault(channel, [])
        if len(messages) < MAX_ERRORS_PER_CHANNEL:
            messages.append(message)

    def __str__(self) -> str:
        text = f"sent {self.sent}, retried {self.retried}, dead {self.dead}, deferred {self.deferred}"
        if self.disabled:
            text += f"; disabled: {', '.join(self.disabled)}"
        for channel, messages in sorted(self.errors.items()):
            text += f"; {channel}: {messages[0]}" + (
                f" (+{len(messages) - 1} more)" if len(messages) > 1 else ""
            )
        return text


def _stops_channel(error: DeliveryError) -> bool:
    """Whether this failure says the receiver as a whole is unavailable, not just this one delivery."""
    return error.retryable and error.status in (None, 421, 429, 503)


@dataclass(slots=True)
class _Run:
    queue: DeliveryQueue
    channels: Mapping[str, Channel]
    disabled: set[str]
    retry: RetryPolicy
    rng: random.Random
    clock: Callable[[], datetime]
    report: DeliveryReport

    async def channel(self, name: str, requests: Sequence[DeliveryRequest]) -> None:
        channel = self.channels.get(name)
        if name in self.disabled:
            for request in requests:
                self.park(request, f"channel {name!r} is disabled (re-enable it after fixing the receiver)")
            return
        if channel is None:
            for request in requests:
                self.park(request, f"channel {name!r} is not configured (removed from the config?)")
            return
        limiter = None
        if channel.limits.rate is not None:
            limiter = _limiters.get(channel)
            if limiter is None or limiter.rate != channel.limits.rate:
                limiter = _limiters[channel] = RateLimiter(channel.limits.rate)
        state = _ChannelState(asyncio.Semaphore(channel.limits.concurrency))
        await asyncio.gather(*(self.one(channel, state, limiter, request) for request in requests))

    async def one(
        self, channel: Channel, state: _ChannelState, limiter: RateLimiter | None, request: DeliveryRequest
    ) -> None:
        try:
            await self.attempt(channel, state, limiter, request)
        except Exception as unexpected:
            # A bug in the worker's own handling (not the channel's: that is caught below) must still leave
            # the delivery with a last error and a next attempt, never claimed and silent.
            log.exception("delivery %s to %r: unexpected error in the worker", request.id, channel.name)
            try:
                self.failed(request, DeliveryError(channel.name, f"unexpected {_describe(unexpected)}"))
            except Exception:
                log.exception("delivery %s: cannot record the failure; parked", request.id)
                now = self.clock()
                self.queue.mark_retry(
                    request.id, f"unexpected {_describe(unexpected)}", now, now + PARK_INTERVAL
                )

    async def attempt(
        self, channel: Channel, state: _ChannelState, limiter: RateLimiter | None, request: DeliveryRequest
    ) -> None:
        async with state.slots:
            if state.stopped is not None and not self.retry.gives_up(
                now=self.clock(), created_at=request.created_at, attempt=request.attempt
            ):
                self.defer_after(request, state.stopped)
                return
            # A delivery the policy would give up on is tried for real even when the channel failed earlier in
            # this run: a delivery goes dead only after a real attempt, never by ageing in the queue.
            if limiter is not None:
                wait = limiter.reserve(MAX_INLINE_RATE_WAIT)
                if wait is None:
                    self.defer(request, limiter.wait_time(), f"rate limit {channel.limits.rate}")
                    return
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                await asyncio.wait_for(channel.send(request), timeout=channel.limits.deadline)
            except EndpointGoneError as exc:
                self.gone(request, exc)
                state.stopped = exc
            except DeliveryError as exc:
                self.failed(request, exc)
                if _stops_channel(exc):
                    state.stopped = exc
            except TimeoutError:
                timeout = DeliveryError(channel.name, f"no answer within {channel.limits.deadline:g}s")
                self.failed(request, timeout)
                state.stopped = timeout
            except Exception as unexpected:  # a bug in a channel must not stop the other deliveries
                log.exception("channel %r raised unexpectedly on delivery %s", channel.name, request.id)
                self.failed(request, DeliveryError(channel.name, f"unexpected {_describe(unexpected)}"))
            else:
                self.queue.mark_sent(request.id, self.clock())
                self.report.sent += 1

    def failed(self, request: DeliveryRequest, error: DeliveryError) -> None:
        now = self.clock()
        self.report.add_error(request.channel, error.message)
        retry_at = None
        if error.retryable:
            retry_at = self.retry.next_attempt(
                now=now,
                created_at=request.created_at,
                attempt=request.attempt,
                retry_after=error.retry_after,
                rng=self.rng,
            )
        if retry_at is None:
            self.dead(
                request,
                error.message if not error.retryable else f"{error.message} ({self.gave_up(request, now)})",
                now,
            )
            return
        self.queue.mark_retry(request.id, error.message, now, retry_at)
        self.report.retried += 1
        log.warning(
            "delivery %s to %r failed (attempt %d): %s; next attempt at %s",
            request.id,
            request.channel,
            request.attempt,
            error.message,
            retry_at.isoformat(timespec="seconds"),
        )

    def gave_up(self, request: DeliveryRequest, now: datetime) -> str:
        age = format_duration(now - request.created_at) if request.created_at else "unknown"
        return f"gave up after {request.attempt} attempts, delivery age {age}"

    def dead(self, request: DeliveryRequest, reason: str, now: datetime) -> None:
        self.queue.mark_dead(request.id, reason, now)
        self.report.dead += 1
        log.error("delivery %s to %r is dead: %s", request.id, request.channel, reason)

    def gone(self, request: DeliveryRequest, error: EndpointGoneError) -> None:
        now = self.clock()
        self.report.add_error(request.channel, error.message)
        self.dead(request, error.message, now)
        self.queue.disable_channel(request.channel, error.message, now)
        self.disabled.add(request.channel)
        self.report.disabled.append(request.channel)
        log.error(
            "CHANNEL DISABLED: %r answered 410 Gone (%s). Its deliveries are parked until an operator "
            "re-enables it and re-drives them (monitor deliveries retry).",
            request.channel,
            error.message,
        )

    def defer_after(self, request: DeliveryRequest, cause: DeliveryError) -> None:
        """Not attempted because the channel failed earlier in this run: rescheduled as if it failed too."""
        if isinstance(cause, EndpointGoneError):
            self.park(request, f"channel {request.channel!r} is disabled: {cause.message}")
            return
        now = self.clock()
        message = f"not attempted, the channel failed earlier in this run: {cause.message}"
        retry_at = self.retry.next_attempt(
            now=now,
            created_at=request.created_at,
            attempt=request.attempt,
            retry_after=cause.retry_after,
            rng=self.rng,
        )
        if retry_at is None:
            self.dead(request, f"{message} ({self.gave_up(request, now)})", now)
            return
        self.queue.mark_retry(request.id, message, now, retry_at)
        self.report.deferred += 1

    def defer(self, request: DeliveryRequest, seconds: float, why: str) -> None:
        now = self.clock()
        # A little spread, so the deliveries put back together do not all come due in the same instant.
        delay = timedelta(seconds=seconds * (1.0 + 0.1 * self.rng.random()))
        self.queue.mark_retry(request.id, f"deferred by the channel's {why}", now, now + delay)
        self.report.deferred += 1

    def park(self, request: DeliveryRequest, message: str) -> None:
        now = self.clock()
        retry_at = self.retry.next_attempt(
            now=now,
            created_at=request.created_at,
            attempt=request.attempt,
            retry_after=None,
            rng=self.rng,
            at_least=PARK_INTERVAL,
        )
        if retry_at is None:
            self.dead(request, f"{message} ({self.gave_up(request, now)})", now)
            return
        self.queue.mark_retry(request.id, message, now, retry_at)
        self.report.deferred += 1
        self.report.add_error(request.channel, message)


def _describe(exc: BaseException) -> str:
    """repr(exc), or its type's name when even that fails (a third-party exception with a broken repr)."""
    try:
        return repr(exc)
    except Exception:
        return f"{type(exc).__name__} (its description failed)"


@dataclass(slots=True)
class _ChannelState:
    slots: asyncio.Semaphore
    stopped: DeliveryError | None = None  # set when the channel as a whole failed in this run


async def deliver_due(
    queue: DeliveryQueue,
    channels: Mapping[str, Channel],
    *,
    now: datetime | None = None,
    limit: int = 100,
    rng: random.Random | None = None,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
    channel: str | None = None,
    store_thread: StoreThread | None = None,
) -> DeliveryReport:
    """Claim up to `limit` due deliveries, send them (channels concurrently), record each outcome.

    With `channel`, only that channel's deliveries are claimed: the daemon runs one such worker per channel, so
    a channel that is slow or down never holds up another's next run. `now` fixes the clock for the whole run
    (tests); by default each outcome is recorded at the time it happened. Errors of the queue (the store)
    propagate; errors of channels never do.

    With `store_thread`, the queue is called there, never on the event loop (monitor.storethread): the claim
    and the read of disabled channels are awaited; each outcome is handed to the thread as it happens and the
    run waits for all of them at its end. Recording an outcome a moment after the send is what at-least-once
    allows anyway: a crash in between leaves the delivery claimed, and it is sent again with the same id."""
    clock: Callable[[], datetime] = (lambda: now) if now is not None else utcnow
    report = DeliveryReport()
    if store_thread is None:
        requests = queue.claim_due(clock(), limit, channel)
        disabled = queue.disabled_channels() if requests else set()
    else:
        requests = await store_thread.run(queue.claim_due, clock(), limit, channel)
        disabled = await store_thread.run(queue.disabled_channels) if requests else set()
    if not requests:
        return report
    by_channel: dict[str, list[DeliveryRequest]] = {}
    for request in requests:
        by_channel.setdefault(request.channel, []).append(request)
    recorder = _RecordBehind(queue, store_thread) if store_thread is not None else None
    run = _Run(recorder or queue, channels, set(disabled), retry, rng or random.Random(), clock, report)
    try:
        await asyncio.gather(*(run.channel(name, batch) for name, batch in by_channel.items()))
    finally:
        if recorder is not None:
            await recorder.flush()
    return report


class _RecordBehind:
    """A DeliveryQueue whose writes go to the store thread without waiting for them, in order; `flush` waits
    for all of them and raises the first error (a StoreError: the deliveries it concerned stay claimed and
    are sent again once their claim runs out). Reads are not offered: the run makes none."""

    def __init__(self, queue: DeliveryQueue, thread: StoreThread) -> None:
        self._queue = queue
        self._thread = thread
        self._pending: list[concurrent.futures.Future[None]] = []

    def claim_due(self, now: datetime, limit: int, channel: str | None = None) -> list[DeliveryRequest]:
        raise NotImplementedError("claims are awaited on the store thread by deliver_due")

    def disabled_channels(self) -> set[str]:
        raise NotImplementedError("read once by deliver_due")

    def mark_sent(self, delivery_id: str, now: datetime) -> None:
        self._pending.append(self._thread.submit(self._queue.mark_sent, delivery_id, now))

    def mark_retry(self, delivery_id: str, error: str, now: datetime, retry_at: datetime) -> None:
        self._pending.append(self._thread.submit(self._queue.mark_retry, delivery_id, error, now, retry_at))

    def mark_dead(self, delivery_id: str, error: str, now: datetime) -> None:
        self._pending.append(self._thread.submit(self._queue.mark_dead, delivery_id, error, now))

    def disable_channel(self, channel: str, reason: str, now: datetime) -> None:
        self._pending.append(self._thread.submit(self._queue.disable_channel, channel, reason, now))

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        results = await asyncio.gather(*(asyncio.wrap_future(f) for f in pending), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
