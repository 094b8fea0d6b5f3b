"""Worker processes for the CPU work of a poll: parse, keys, normalize, analysis, match, story features.

The event loop fetches; the store thread reads and writes the database and assigns stories in order. What lies
between is pure and most of a poll's CPU, so it runs here, in processes of its own, and the daemon's two (or
more) cores work at once: while a worker parses one feed, the loop fetches the next ones and the store thread
commits the one before. Design and measurements: docs/design/workers.md.

One poll of a feed with a body makes two calls to a worker, around one store round trip on the main side:

    read     body → parsed entries, keyed by guid/link (kept in the worker), the keys, title, warnings, hints
    (main)   store.unseen_keys(keys)                               on the store thread, as in-process
    analyse  the unseen entries → Item, matches, PreparedItem      normalize, analyse, match, stories.prepare

and the store thread then makes the alert decisions and the one transaction, as in-process. The entries stay in
the worker between the two calls (they are lazy: their text is converted only for the unseen ones, and their
closures do not pickle), so both calls of a feed go to the same worker: a *lane*, a ProcessPoolExecutor of one
process. A feed keeps its lane for the pool's life (the least loaded lane when first seen), which also keeps its
language memory (monitor.feedlanguage) in one process, as in-process.

What the workers hold, once per pool: the rule set (its source form, compiled again in the worker), the story
settings (an empty StoryIndex, for `prepare` only: no worker loads the index) and the languages detection
prefers. A pool belongs to one runtime, i.e. one version of monitor.yaml and the rules: on reload the daemon
drains the polls in flight (recorded with the rules they started with), closes the pool and opens a new one with
the new rule set, so a result matched with an old rule set never reaches a pipeline of the new one.

A worker that dies (the OOM killer, a crash in a C library) breaks its lane: every feed in flight on it gets
BrokenProcessPool, the lane is started again and each of those feeds is processed again from its body (which
the main side still holds). Nothing of such a feed was recorded, so nothing is lost or marked seen. A feed that
breaks a fresh worker MAX_ATTEMPTS times is the feed's failure (WorkerCrashError, recorded with the usual
backoff), never the daemon's. Workers ignore SIGINT, SIGTERM and SIGHUP (a terminal or systemd signals the
whole group; the daemon itself drains and then closes the pool), and exit by themselves when the daemon is gone
(a kill -9 leaves no orphans).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.reduction import ForkingPickler
from typing import Any, Literal, TypeVar

from monitor.analysis import Analysis, analyse_item
from monitor.cachehints import feed_hints
from monitor.config import MonitorConfig, StoryOptions
from monitor.errors import MonitorError, ParseError
from monitor.feedlanguage import FeedLanguages
from monitor.normalize import keyed_entries, normalize_entry
from monitor.parse import read_feed
from monitor.rules import RuleSet
from monitor.rules.schema import Actor, Rule
from monitor.stories import PreparedItem, StoryIndex
from monitor.text import prefer_languages
from monitor.types import FeedHints, Hit, Item, Match, PendingEntry, PendingFeed

__all__ = [
    "MAX_ATTEMPTS",
    "AnalysedEntry",
    "FeedSource",
    "FeedWork",
    "KeyedFeed",
    "WorkResult",
    "WorkerCrashError",
    "WorkerError",
    "WorkerPool",
    "WorkerSetup",
    "empty_story_index",
    "story_summary",
    "usable_cpus",
    "worker_count",
]

log = logging.getLogger("monitor.workers")

# `workers: auto` starts one worker per usable CPU but one (the main process keeps a core busy with the fetches,
# the store and the in-order story assignment), and at most this many: past it the main side's serial part is
# the bound (docs/design/workers.md), and each worker costs its own memory.
MAX_AUTO_WORKERS = 8
# How often a feed is tried on a fresh worker after its worker died, before it counts as the feed's failure.
MAX_ATTEMPTS = 3
# Parsed feeds a worker keeps between `read` and `analyse` (one per poll in flight on it). A feed pushed out
# (a store round trip slower than this many others) is read again from its body: slower, never wrong.
CACHE_LIMIT = 128
# How often a worker checks that the daemon is still there.
ORPHAN_CHECK_SECONDS = 1.0
# How long closing the pool waits for a worker busy with a task before it is killed.
CLOSE_TIMEOUT = 10.0

_T = TypeVar("_T")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. under taskset or a cgroup cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def worker_count(setting: int | Literal["auto"], cpus: int | None = None) -> int:
    """The number of worker processes for the `workers` setting; 0 means in-process."""
    if setting != "auto":
        return setting
    cpus = usable_cpus() if cpus is None else cpus
    # One CPU: a worker would only add pickling and memory to the same core.
    return 0 if cpus < 2 else min(cpus - 1, MAX_AUTO_WORKERS)


def empty_story_index(options: StoryOptions) -> StoryIndex:
    """A story index with the configured settings and no items: the daemon loads its one index into it; a
    worker uses it for `prepare` only, which depends on the settings alone."""
    return StoryIndex(window=options.window)


def story_summary(item: Item) -> str:
    """The text the story index reads besides the title: the summary, else the start of the content."""
    return item.summary or item.content[:1000]


# -- the pure work of one feed, the same in a worker and in-process -------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedSource:
    """What the pure work needs to know of a feed's configuration."""

    url: str
    title: str | None = None  # the configured title, which wins over the feed's own
    tags: tuple[str, ...] = ()
    language: str | None = None  # the configured language, which wins over the declared and detected ones


@dataclass(frozen=True, slots=True)
class KeyedFeed:
    """A parsed body as the main side needs it before it asks the store which keys are new."""

    title: str | None
    language: str | None
    warnings: tuple[str, ...]
    entries: int  # entries in the document (after the parser's cap and empty-entry filter)
    keys: tuple[str, ...]  # identity keys in document order, first occurrence of each
    hints: FeedHints


@dataclass(frozen=True, slots=True)
class AnalysedEntry:
    """One unseen entry made into an Item, with its matches and story features. `failure` set: the entry could
    not be analysed (a bug, or input no stage foresaw): it is skipped and tried again on the next fetch."""

    item: Item
    matches: tuple[Match, ...] = ()
    prepared: PreparedItem | None = None
    failure: str | None = None
    traceback: str | None = None


@dataclass(frozen=True, slots=True)
class _Parsed:
    feed: PendingFeed
    keyed: dict[str, PendingEntry]


class FeedWork:
    """The CPU work of one feed: pure functions of the body, the rule set, the story settings and the per-feed
    language memory (which `items` updates, in entry order, as normalize always did)."""

    def __init__(self, ruleset: RuleSet, stories: StoryIndex, feed_languages: FeedLanguages) -> None:
        self.ruleset = ruleset
        self.stories = stories
        self.feed_languages = feed_languages

    def read(
        self, source: FeedSource, body: bytes, content_type: str | None, base_url: str | None
    ) -> tuple[KeyedFeed, _Parsed]:
        """Parse and key the body (ParseError for one that is no feed). Only the entries' identity is read."""
        feed = read_feed(body, source=source.url, content_type=content_type, base_url=base_url)
        keyed = keyed_entries(feed, feed_url=source.url)
        summary = KeyedFeed(
            title=feed.title,
            language=feed.language,
            warnings=feed.warnings,
            entries=len(feed.entries),
            keys=tuple(keyed),
            hints=feed_hints(body),
        )
        return summary, _Parsed(feed, keyed)

    def items(self, source: FeedSource, parsed: _Parsed, unseen: Collection[str]) -> list[Item]:
        """The unseen entries as Items, in entry order. An exception here is the feed's (as it always was)."""
        feed_title = source.title or parsed.feed.title or source.url
        return [
            normalize_entry(
                pending.entry(),
                feed_url=source.url,
                feed_title=feed_title,
                feed_language=parsed.feed.language,
                feed_tags=source.tags,
                language_override=source.language,
                feed_languages=self.feed_languages,
            )
            for key, pending in parsed.keyed.items()
            if key in unseen
        ]

    def analyse(self, item: Item) -> AnalysedEntry:
        """One analysis per item (tokens and language, shared by the matcher and the story index), its matches
        and its story features. An exception is the entry's alone: it comes back as `failure`."""
        try:
            analysis = analyse_item(item)
            matches, actors = self.ruleset.match_with_actors(item, analysis)
            prepared = self.stories.prepare(item.title, story_summary(item), analysis=analysis, actors=actors)
        except Exception as exc:
            return AnalysedEntry(
                item, failure=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
            )
        return AnalysedEntry(item, tuple(matches), prepared)


# -- the worker process ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker is given once, when it starts: the rule set in its source form (the compiled one holds
    locks and re2 objects, which do not pickle; compiling again takes milliseconds), the story settings, the
    languages detection prefers, and the daemon's pid (to exit when it is gone)."""

    rules: tuple[Rule, ...]
    actors: Mapping[str, Actor]
    stories: StoryOptions
    preferred_languages: tuple[str, ...]
    main_pid: int
    ruleset_type: type[RuleSet] = RuleSet  # a subclass compiles the same way (tests inject failures so)

    @classmethod
    def of(cls, config: MonitorConfig, ruleset: RuleSet, preferred_languages: Sequence[str]) -> WorkerSetup:
        return cls(
            ruleset.rules,
            ruleset.actors,
            config.stories,
            tuple(preferred_languages),
            os.getpid(),
            type(ruleset),
        )


@dataclass(frozen=True, slots=True)
class _Failure:
    """An exception in a worker, as text: an exception object might not unpickle in the daemon (and one that
    does not breaks the whole pool), so none is sent back."""

    kind: str
    message: str
    traceback: str


@dataclass(frozen=True, slots=True)
class _ParseFailed:
    message: str


class _WorkerState:
    def __init__(self, setup: WorkerSetup) -> None:
        ruleset = setup.ruleset_type(setup.rules, setup.actors)
        self.work = FeedWork(ruleset, empty_story_index(setup.stories), FeedLanguages())
        self.cache: OrderedDict[int, tuple[FeedSource, _Parsed]] = OrderedDict()


_state: _WorkerState | None = None


def _slim_analysis(analysis: Analysis) -> tuple[type[Analysis], tuple[dict[str, str], str | None]]:
    """An Analysis crosses back to the daemon without its token cache (the daemon reads its language; a field
    it would read after all is tokenized again there, on first use): a quarter of the bytes of a result (210 -> 155 KB for a 50-item feed)."""
    return Analysis, (analysis._texts, analysis.language)


def _by_constructor(value: Hit | Match) -> tuple[type[Hit | Match], tuple[Any, ...]]:
    """A frozen dataclass rebuilt by one call of its constructor, not field by field through its setstate:
    hits and matches are most of the objects a result holds, and this takes about a third off their
    unpickling in the daemon (bench/RESULTS.md)."""
    return type(value), tuple(getattr(value, field.name) for field in dataclasses.fields(value))


def _initialize(setup: WorkerSetup) -> None:
    global _state
    # The daemon decides when its workers stop: a Ctrl-C or systemd's SIGTERM to the whole group must not kill
    # a worker while the daemon drains the polls that wait for it.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    prefer_languages(setup.preferred_languages)
    ForkingPickler.register(Analysis, _slim_analysis)
    for kind in (Hit, Match):
        ForkingPickler.register(kind, _by_constructor)
    _state = _WorkerState(setup)
    threading.Thread(
        target=_exit_with, args=(setup.main_pid,), name="monitor-orphan-check", daemon=True
    ).start()


def _exit_with(main_pid: int) -> None:
    """Exit when the daemon is gone (kill -9, a crash): a worker's task queue never reports it."""
    while True:
        time.sleep(ORPHAN_CHECK_SECONDS)
        try:
            os.kill(main_pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            os._exit(0)  # the pid belongs to another user's process now: the daemon is gone


def _guarded(fn: Callable[..., _T], *args: Any) -> _T | _Failure:
    try:
        return fn(*args)
    except Exception as exc:
        return _Failure(type(exc).__name__, str(exc), traceback.format_exc())


def _the_state() -> _WorkerState:
    if _state is None:
        raise RuntimeError("worker not initialized")
    return _state


def _do_ping() -> int:
    _the_state()
    return os.getpid()


def _do_read(
    token: int, source: FeedSource, body: bytes, content_type: str | None, base_url: str | None
) -> KeyedFeed | _ParseFailed:
    state = _the_state()
    try:
        summary, parsed = state.work.read(source, body, content_type, base_url)
    except ParseError as exc:
        return _ParseFailed(exc.message)
    state.cache[token] = (source, parsed)
    while len(state.cache) > CACHE_LIMIT:
        state.cache.popitem(last=False)
    return summary


def _do_analyse(token: int, unseen: frozenset[str]) -> list[AnalysedEntry] | None:
    state = _the_state()
    cached = state.cache.pop(token, None)
    if cached is None:
        return None
    source, parsed = cached
    return [state.work.analyse(item) for item in state.work.items(source, parsed, unseen)]


def _do_read_and_analyse(
    source: FeedSource, body: bytes, content_type: str | None, base_url: str | None, unseen: frozenset[str]
) -> list[AnalysedEntry] | _ParseFailed:
    state = _the_state()
    try:
        _, parsed = state.work.read(source, body, content_type, base_url)
    except ParseError as exc:
        return _ParseFailed(exc.message)
    return [state.work.analyse(item) for item in state.work.items(source, parsed, unseen)]


def _do_discard(token: int) -> None:
    _the_state().cache.pop(token, None)


# The tasks, by name (they pickle by reference), each returning a _Failure instead of raising.
def _ping() -> int | _Failure:
    return _guarded(_do_ping)


def _read(*args: Any) -> KeyedFeed | _ParseFailed | _Failure:
    return _guarded(_do_read, *args)


def _analyse(*args: Any) -> list[AnalysedEntry] | _Failure | None:
    return _guarded(_do_analyse, *args)


def _read_and_analyse(*args: Any) -> list[AnalysedEntry] | _ParseFailed | _Failure:
    return _guarded(_do_read_and_analyse, *args)


def _discard(*args: Any) -> _Failure | None:
    return _guarded(_do_discard, *args)


# -- the daemon's side ----------------------------------------------------------------------------------------


class WorkerError(MonitorError, RuntimeError):
    """A worker raised while processing a feed (a bug, or input no stage foresaw): the feed's failure."""

    def __init__(self, kind: str, message: str, remote_traceback: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.remote_traceback = remote_traceback


class WorkerCrashError(MonitorError, RuntimeError):
    """The worker processing a feed died MAX_ATTEMPTS times (the feed's failure; nothing was recorded)."""


class _RemoteTraceback(Exception):
    """The worker's traceback, as the cause of a WorkerError, so that the daemon's log shows where it failed."""

    def __init__(self, text: str) -> None:
        super().__init__(text)

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""'


@dataclass(frozen=True, slots=True)
class WorkResult:
    """What the workers made of one feed's body: the keyed feed, the keys the store had not seen, and the
    unseen entries analysed (in entry order)."""

    keyed: KeyedFeed
    unseen: frozenset[str]
    analysed: tuple[AnalysedEntry, ...]


class _Lane:
    """One worker process behind a ProcessPoolExecutor of its own, started again after it died."""

    def __init__(self, number: int, setup: WorkerSetup, context: Any) -> None:
        self.number = number
        self._setup = setup
        self._context = context
        self._executor: ProcessPoolExecutor | None = None
        self.feeds = 0  # feeds that are given this lane
        self.starts = 0

    def executor(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=self._context,
                initializer=_initialize,
                initargs=(self._setup,),
            )
            self.starts += 1
        return self._executor

    def broken(self, executor: ProcessPoolExecutor) -> bool:
        """Forget `executor` after its worker died; True when this call is the one that did (the first of the
        feeds in flight to notice), so the crash is logged once."""
        if executor is not self._executor:
            return False
        self._executor = None
        executor.shutdown(wait=False, cancel_futures=True)
        return True

    def pids(self) -> list[int]:
        return self.pids_of(self._executor) if self._executor is not None else []

    def close(self, timeout: float) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        pids = self.pids_of(executor)
        done = threading.Event()

        def shutdown() -> None:
            executor.shutdown(wait=True, cancel_futures=True)
            done.set()

        closer = threading.Thread(target=shutdown, name="monitor-worker-close", daemon=True)
        closer.start()
        if not done.wait(timeout):
            # A task that does not end (a pathological document): its result is not wanted any more.
            log.warning("worker %d did not stop within %gs; killed", self.number, timeout)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            closer.join(timeout)

    @staticmethod
    def pids_of(executor: ProcessPoolExecutor) -> list[int]:
        # The executor's processes are not public API: only tests and the last resort of `close` read them.
        processes: dict[int, Any] = getattr(executor, "_processes", None) or {}
        return [pid for pid, process in processes.items() if process.is_alive()]


async def _call(executor: ProcessPoolExecutor, fn: Callable[..., object], *args: Any) -> object:
    """Run a task on `executor`'s worker; its _Failure raised here as a WorkerError."""
    result = await asyncio.wrap_future(executor.submit(fn, *args))
    if isinstance(result, _Failure):
        raise WorkerError(result.kind, result.message, result.traceback) from _RemoteTraceback(
            result.traceback
        )
    return result


class WorkerPool:
    """`size` worker processes (lanes) for the pure work of polls; see the module doc. Used from the event loop
    only (not thread-safe)."""

    def __init__(self, size: int, setup: WorkerSetup, *, start_method: str = "forkserver") -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs at least one worker, not {size}")
        context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            # The fork server imports the pure stages once; each worker (and each restart) is a fork of it,
            # sharing those pages, instead of a fresh interpreter importing everything again.
            context.set_forkserver_preload(["monitor.workers"])
        self.size = size
        self._lanes = [_Lane(number, setup, context) for number in range(size)]
        self._lane_of: dict[str, _Lane] = {}
        self._tokens = itertools.count()
        self.crashes = 0  # worker deaths seen (each counted once)
        self._launcher: threading.Thread | None = None
        self._launched: list[Future[object]] = []
        self._launch_error: BaseException | None = None
        self._ready: asyncio.Future[bool] | None = None

    def launch(self) -> None:
        """Start every worker without waiting: the first start waits for the fork server's imports, so it
        runs on a thread of its own while the caller opens the store and loads the story index."""
        if self._launcher is None:
            self._launcher = threading.Thread(target=self._submit_pings, name="monitor-workers-start")
            self._launcher.start()

    def _submit_pings(self) -> None:
        try:
            self._launched = [lane.executor().submit(_ping) for lane in self._lanes]
        except BaseException as exc:  # reported by `start`
            self._launch_error = exc

    async def start(self) -> list[int]:
        """Start every worker (if `launch` did not) and wait until each has its rule set, so a worker that
        cannot start fails the start, not the first poll. Returns their pids."""
        self.launch()
        assert self._launcher is not None
        await asyncio.to_thread(self._launcher.join)
        if self._launch_error is not None:
            raise self._launch_error
        pids = []
        for future in self._launched:
            result = await asyncio.wrap_future(future)
            if isinstance(result, _Failure):
                raise WorkerError(result.kind, result.message, result.traceback)
            if isinstance(result, int):
                pids.append(result)
        return pids

    async def ready(self) -> bool:
        """Start the workers on the first call and wait until they are up; True when they are. The pipeline asks
        on the first feed body that needs parsing, so a run of 304s (a round of `monitor once` in which nothing
        changed) starts no process at all. Concurrent first callers wait for the one start. False (logged once)
        when the workers could not start (no /dev/shm, a process limit): the caller then works in-process, as
        alerting matters more than speed."""
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._start_or_give_up())
        # Shielded: a poll cancelled while it waits (the drain timeout) must not cancel the start for the others.
        return await asyncio.shield(self._ready)

    async def _start_or_give_up(self) -> bool:
        try:
            await self.start()
        except Exception as exc:
            reason = str(exc) if isinstance(exc, MonitorError) else f"{type(exc).__name__}: {exc}"
            log.error("worker processes did not start (%s); working in-process", reason)
            await asyncio.gather(*(asyncio.to_thread(lane.close, CLOSE_TIMEOUT) for lane in self._lanes))
            return False
        return True

    def pids(self) -> list[int]:
        """The pids of the live workers (for tests and the status of the daemon)."""
        return [pid for lane in self._lanes for pid in lane.pids()]

    def _lane(self, url: str) -> _Lane:
        lane = self._lane_of.get(url)
        if lane is None:
            lane = min(self._lanes, key=lambda candidate: candidate.feeds)
            lane.feeds += 1
            self._lane_of[url] = lane
        return lane

    async def process(
        self,
        source: FeedSource,
        body: bytes,
        content_type: str | None,
        base_url: str | None,
        unseen_of: Callable[[tuple[str, ...]], Awaitable[Collection[str]]],
    ) -> WorkResult:
        """Parse and key `body`, ask `unseen_of` (the store, on the main side) which keys are new, and analyse
        those. Raises ParseError for a body that is no feed, WorkerError for an exception in the worker, and
        WorkerCrashError when the worker died on every attempt."""
        lane = self._lane(source.url)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            executor = lane.executor()
            try:
                return await self._process_on(executor, source, body, content_type, base_url, unseen_of)
            except BrokenProcessPool as exc:
                if lane.broken(executor):
                    self.crashes += 1
                    log.error(
                        "worker %d died (%s); started again, its feeds in flight are processed again",
                        lane.number,
                        exc,
                        extra={"feed": source.url},
                    )
                if attempt == MAX_ATTEMPTS:
                    raise WorkerCrashError(
                        f"the worker process died {MAX_ATTEMPTS} times while processing this feed "
                        "(nothing of it was recorded)"
                    ) from exc
        raise AssertionError("unreachable")

    async def _process_on(
        self,
        executor: ProcessPoolExecutor,
        source: FeedSource,
        body: bytes,
        content_type: str | None,
        base_url: str | None,
        unseen_of: Callable[[tuple[str, ...]], Awaitable[Collection[str]]],
    ) -> WorkResult:
        token = next(self._tokens)
        keyed = await _call(executor, _read, token, source, body, content_type, base_url)
        if isinstance(keyed, _ParseFailed):
            raise ParseError(source.url, keyed.message)
        assert isinstance(keyed, KeyedFeed)
        analysed: object = None
        try:
            unseen = frozenset(await unseen_of(keyed.keys))
            if unseen:
                analysed = await _call(executor, _analyse, token, unseen)
                if analysed is None:  # pushed out of the worker's cache meanwhile: read the body again
                    analysed = await _call(
                        executor, _read_and_analyse, source, body, content_type, base_url, unseen
                    )
        finally:
            if analysed is None:
                with contextlib.suppress(BrokenProcessPool, RuntimeError):
                    executor.submit(_discard, token)
        if isinstance(analysed, _ParseFailed):  # the same body parsed the first time: cannot happen
            raise ParseError(source.url, analysed.message)
        assert analysed is None or isinstance(analysed, list)
        return WorkResult(keyed, unseen, tuple(analysed or ()))

    async def close(self, grace: float = CLOSE_TIMEOUT) -> None:
        """Stop every worker: tasks not started are cancelled, one in progress may finish within `grace`
        seconds (then its worker is killed). A pool that never started has nothing to stop."""
        if self._ready is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._ready)
        if self._launcher is not None:
            await asyncio.to_thread(self._launcher.join)
        await asyncio.gather(*(asyncio.to_thread(lane.close, grace) for lane in self._lanes))
