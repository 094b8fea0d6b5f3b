"""The Fetcher's aiohttp transport (`fetch.transport: aiohttp`, the default): one pooled `aiohttp.ClientSession`
whose resolver is the network policy.

Why aiohttp: a conditional GET answered 304 costs about a tenth of httpx's CPU on it (bench/RESULTS.md, "CPU per
304"), and a round in which nothing changed is mostly such requests. Why the policy sits where it does:

- `PolicyResolver` (an `aiohttp.abc.AbstractResolver`) resolves each host name itself and refuses the
  connection unless every address is allowed (as `NetworkPolicy.check_url` does); the connector then connects
  only to the addresses it handed over. No second lookup happens between the check and the connect, so a DNS
  answer that changes in between (DNS rebinding) cannot reach a refused address. The resolver runs for every new
  connection, redirect hops included (use_dns_cache is off: a cached answer would be a checked one, but a fresh
  lookup per connection is what httpx's transport does too).
- aiohttp never asks the resolver about an IP literal (it connects to it directly), so `get` judges a literal
  host itself, before anything connects: the same refusal, for every hop.
- TLS verifies the URL's host name (SNI and certificate) against certifi's trust store, as httpx does, or
  against the `ssl_context` given; the context is made on the first https request, not at start-up.
- No environment proxy (trust_env off: a proxy would connect on our behalf, past the address check), no
  decompression by aiohttp (the Fetcher decodes with a cap, monitor.fetch `_Inflate`), no redirects followed
  by aiohttp (the Fetcher follows them hop by hop).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from types import TracebackType
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from monitor.errors import FetchError, NetworkPolicyError, find_cause
from monitor.fetch import FetchSettings, request_headers, seconds
from monitor.netpolicy import NetworkPolicy

__all__ = ["AddressRefusedError", "AiohttpWire", "PolicyResolver"]

# Header lines longer than aiohttp's default of 8,190 bytes occur (long Link or Set-Cookie headers); h11, under
# httpx, reads up to 16 KB.
MAX_HEADER_BYTES = 16 * 1024


class AddressRefusedError(OSError):
    """Raised by the resolver; `get` turns it into a NetworkPolicyError naming the feed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class PolicyResolver(AbstractResolver):
    """Resolves a host name and hands the connector its addresses only if the policy allows every one."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve host {host!r}: {exc.strerror}") from exc
        results: dict[str, ResolveResult] = {}  # distinct addresses in resolver order
        for info_family, _type, proto, _canon, sockaddr in infos:
            text = str(sockaddr[0])
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not self._policy.is_allowed(address):
                raise AddressRefusedError(self._policy.describe_refusal(host, address))
            results.setdefault(
                text,
                {
                    "hostname": host,
                    "host": text,
                    "port": int(sockaddr[1]),
                    "family": info_family,
                    "proto": proto,
                    "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                },
            )
        if not results:
            raise OSError(f"host {host!r} has no address")
        return list(results.values())

    async def close(self) -> None:
        return None


class AiohttpWire:
    def __init__(
        self, settings: FetchSettings, policy: NetworkPolicy, ssl_context: ssl.SSLContext | None
    ) -> None:
        self._settings = settings
        self._policy = policy
        self._ssl_context = ssl_context
        connector = aiohttp.TCPConnector(
            resolver=PolicyResolver(policy),
            use_dns_cache=False,
            limit=100,
            limit_per_host=0,  # per-host politeness is monitor.hostlimits' job
            keepalive_timeout=5.0,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=request_headers(settings),
            timeout=aiohttp.ClientTimeout(
                total=None,  # the Fetcher's own deadline covers the whole fetch
                connect=settings.connect_timeout,  # a free connection from the pool, and connecting
                sock_connect=settings.connect_timeout,
                sock_read=settings.read_timeout,
            ),
            auto_decompress=False,
            trust_env=False,
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
        )

    def get(self, url: str, hop_url: str, headers: dict[str, str]) -> _Exchange:
        return _Exchange(self, url, hop_url, headers)

    def join(self, base: str, location: str) -> str:
        return str(URL(base).join(URL(location)).with_fragment(None))

    async def aclose(self) -> None:
        await self._session.close()

    def refusal_of_literal(self, hop_url: str) -> str | None:
        """Why the policy refuses `hop_url`'s host when it is an IP literal (which aiohttp does not resolve)."""
        host = urlsplit(hop_url).hostname or ""
        try:
            address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return None  # a name: the resolver judges it
        return None if self._policy.is_allowed(address) else self._policy.describe_refusal(host, address)

    def ssl_for(self, hop_url: str) -> ssl.SSLContext | bool:
        if not hop_url.startswith("https:"):
            return True  # aiohttp's default; unused for http
        if self._ssl_context is None:
            self._ssl_context = _default_context()
        return self._ssl_context


def _default_context() -> ssl.SSLContext:
    """Verification against certifi's CA bundle, as httpx does by default (the same trust on both transports)."""
    try:
        import certifi
    except ImportError:  # certifi comes with httpx; without it the system's trust store
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class _Response:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def reason(self) -> str:
        return self._response.reason or ""

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    def header_list(self, name: str) -> list[str]:
        return self._response.headers.getall(name, [])

    def raw(self, chunk_size: int) -> AsyncIterator[bytes]:
        return self._response.content.iter_chunked(chunk_size)

    async def drain(self, limit: int) -> None:
        # A failure while draining changes nothing about the answer we already have: not an error (the
        # connection, not read to its end, is then closed on release).
        content = self._response.content
        seen = 0
        try:
            while seen <= limit and not content.at_eof():
                chunk = await content.readany()
                if not chunk:
                    return
                seen += len(chunk)
        except aiohttp.ClientError:
            return


class _Exchange:
    """One GET through the session, with aiohttp's exceptions turned into FetchErrors naming the feed."""

    def __init__(self, wire: AiohttpWire, url: str, hop_url: str, headers: dict[str, str]) -> None:
        self._wire = wire
        self._url = url
        self._hop_url = hop_url
        self._headers = headers
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> _Response:
        refusal = self._wire.refusal_of_literal(self._hop_url)
        if refusal is not None:
            raise NetworkPolicyError(self._url, f"{self._where()}{refusal}")
        try:
            self._response = await self._wire._session.get(
                self._hop_url,
                headers=self._headers,
                allow_redirects=False,
                ssl=self._wire.ssl_for(self._hop_url),
            )
        except Exception as exc:
            raise self._error(exc) from exc
        return _Response(self._response)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        response, self._response = self._response, None
        if response is not None:
            # Back to the pool when read to its end; aiohttp closes a connection whose body was not.
            response.release()
        if isinstance(exc_value, aiohttp.ClientError):
            raise self._error(exc_value) from exc_value

    def _where(self) -> str:
        return "" if self._hop_url == self._url else f"redirected to {self._hop_url}: "

    def _error(self, exc: BaseException) -> BaseException:
        """The FetchError for an exception raised while sending or reading; other exceptions pass unchanged."""
        url, settings = self._url, self._wire._settings
        refused = find_cause(exc, AddressRefusedError)
        if refused is not None:
            return NetworkPolicyError(url, f"{self._where()}{refused.reason}")
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return FetchError(url, f"connect timed out after {seconds(settings.connect_timeout)}")
        if isinstance(exc, aiohttp.SocketTimeoutError):
            return FetchError(url, f"read timed out after {seconds(settings.read_timeout)}")
        if isinstance(exc, aiohttp.ServerTimeoutError):
            return FetchError(url, f"timed out: {exc}")
        if isinstance(exc, aiohttp.InvalidURL):
            return FetchError(url, f"invalid URL: {exc}", retryable=False)
        if isinstance(exc, aiohttp.ClientConnectorError):
            return FetchError(url, _describe_connect_error(exc))
        if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
            return FetchError(url, f"protocol error: {exc}")
        if isinstance(exc, aiohttp.ClientResponseError):  # a head that does not parse
            return FetchError(url, f"protocol error: {exc.message}")
        if isinstance(exc, aiohttp.ClientError):
            return FetchError(url, f"connection failed: {exc}")
        return exc


def _describe_connect_error(exc: aiohttp.ClientConnectorError) -> str:
    """The same words as the httpx transport's (monitor.policed_http.describe_connect_error)."""
    if find_cause(exc, ConnectionRefusedError) is not None:
        return "connection refused"
    if find_cause(exc, ConnectionResetError) is not None:
        return "connection reset"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"cannot connect: {exc.certificate_error}"
    cause = exc.os_error
    text = str(cause).strip()
    if text.startswith(("cannot resolve", "host ")):  # the resolver's own words
        return text
    return f"cannot connect: {text}" if text else "cannot connect"
