"""CPU per conditional GET answered 304: monitor's Fetcher, bare httpx, and a minimal HTTP/1.1 client.

Issue 10 item 6 asks whether httpx's per-request cost (its connection-pool scan, encode/httpx#3215) or the
transport needs a change. Same generated farm on 127.0.0.1 (bench/feedfarm.py, its own process, so its CPU is
not counted), every feed answering 304 to its ETag, the same concurrency for every client, CPU of this process
(time.process_time) per request, median of `--repeat` passes over all feeds:

- `monitor Fetcher, aiohttp` and `monitor Fetcher, httpx`: monitor.fetch.Fetcher, as the daemon uses it
  (network policy, per-host gate off, size caps, redirects by hand, the result object), on each of its
  transports (`fetch.transport`; aiohttp is the default);
- `httpx`: one httpx.AsyncClient with the same transport settings and nothing else (a floor for httpx);
- `httpx, 1 connection`: the same with the pool limited to one connection (the pool scan is then trivial);
- `aiohttp`: a bare aiohttp ClientSession (a floor for aiohttp);
- `raw`: asyncio streams, one keep-alive connection per worker, a hand-written request and a minimal
  response reader (the floor for any asyncio client in Python; not something to ship).

    PYTHONPATH=. .venv/bin/python bench/bench_http304.py [--feeds 1000 --concurrency 8 --repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from bench.feedfarm import FeedFarm
from monitor.fetch import Fetcher, FetchSettings, Transport
from monitor.netpolicy import NetworkPolicy

Get = Callable[[str, str], Awaitable[int]]


async def first_etags(urls: list[str]) -> dict[str, str]:
    async with httpx.AsyncClient() as client:
        return {url: (await client.get(url)).headers["etag"] for url in urls}


async def run_pass(urls: list[str], etags: dict[str, str], get: Get, concurrency: int) -> float:
    queue = list(urls)

    async def worker() -> None:
        while queue:
            url = queue.pop()
            status = await get(url, etags[url])
            assert status == 304, status

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - started) / len(urls) * 1000


async def measure_monitor(
    urls: list[str], etags: dict[str, str], args: argparse.Namespace, transport: Transport
) -> list[float]:
    settings = FetchSettings(per_host_concurrency=0, per_host_gap=0.0, transport=transport)
    policy = NetworkPolicy.from_setting(["127.0.0.1/32"])
    async with Fetcher(settings, policy) as fetcher:

        async def get(url: str, etag: str) -> int:
            result = await fetcher.fetch(url, etag=etag)
            return 304 if result.not_modified else 200

        await run_pass(urls[:50], etags, get, args.concurrency)  # warm the pool
        return [await run_pass(urls, etags, get, args.concurrency) for _ in range(args.repeat)]


async def measure_httpx(
    urls: list[str], etags: dict[str, str], args: argparse.Namespace, connections: int | None
) -> list[float]:
    limits = httpx.Limits(max_connections=connections) if connections else httpx.Limits()
    transport = httpx.AsyncHTTPTransport(http1=True, http2=False, trust_env=False, limits=limits)
    async with httpx.AsyncClient(transport=transport, trust_env=False) as client:

        async def get(url: str, etag: str) -> int:
            response = await client.get(url, headers={"If-None-Match": etag})
            return response.status_code

        await run_pass(urls[:50], etags, get, args.concurrency)
        return [await run_pass(urls, etags, get, args.concurrency) for _ in range(args.repeat)]


async def measure_aiohttp(urls: list[str], etags: dict[str, str], args: argparse.Namespace) -> list[float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def get(url: str, etag: str) -> int:
            async with session.get(url, headers={"If-None-Match": etag}, allow_redirects=False) as response:
                await response.read()
                return response.status

        await run_pass(urls[:50], etags, get, args.concurrency)
        return [await run_pass(urls, etags, get, args.concurrency) for _ in range(args.repeat)]


async def measure_raw(urls: list[str], etags: dict[str, str], args: argparse.Namespace) -> list[float]:
    parts = urlsplit(urls[0])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(args.concurrency):
        pool.put_nowait(await asyncio.open_connection(host, port))

    async def get(url: str, etag: str) -> int:
        reader, writer = await pool.get()
        path = urlsplit(url).path
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nIf-None-Match: {etag}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        if length:
            await reader.readexactly(length)
        pool.put_nowait((reader, writer))
        return int(head.split(b" ", 2)[1])

    await run_pass(urls[:50], etags, get, args.concurrency)
    try:
        return [await run_pass(urls, etags, get, args.concurrency) for _ in range(args.repeat)]
    finally:
        while not pool.empty():
            _, writer = pool.get_nowait()
            writer.close()


async def main_async(args: argparse.Namespace) -> None:
    farm = FeedFarm(args.feeds, items_per_feed=5)
    try:
        etags = await first_etags(farm.urls)
        rows = [
            ("monitor Fetcher, aiohttp transport", await measure_monitor(farm.urls, etags, args, "aiohttp")),
            ("monitor Fetcher, httpx transport", await measure_monitor(farm.urls, etags, args, "httpx")),
            ("httpx AsyncClient", await measure_httpx(farm.urls, etags, args, None)),
            ("httpx, pool of 1 connection", await measure_httpx(farm.urls, etags, args, 1)),
            ("aiohttp ClientSession", await measure_aiohttp(farm.urls, etags, args)),
            ("raw asyncio streams", await measure_raw(farm.urls, etags, args)),
        ]
    finally:
        farm.stop()
    raw = statistics.median(rows[-1][1])
    print(f"{args.feeds} feeds, concurrency {args.concurrency}, median of {args.repeat} passes")
    print("| client | CPU ms per 304 | × raw |")
    print("|---|---:|---:|")
    for name, values in rows:
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {median / raw:.1f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
