"""The Fetcher's httpx transport (`fetch.transport: httpx`): one pooled `httpx.AsyncClient` whose network backend
checks every resolved address against the policy (monitor.policed_http). The transport of earlier versions, kept
behind the Fetcher's seam (monitor.fetch.Wire); aiohttp is the default (monitor.fetch_aiohttp)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from types import TracebackType

import httpx

from monitor.errors import FetchError, NetworkPolicyError
from monitor.fetch import FetchSettings, request_headers, seconds
from monitor.netpolicy import NetworkPolicy
from monitor.policed_http import AddressRefused, describe_connect_error, find_cause, policed_transport

__all__ = ["HttpxWire"]


class HttpxWire:
    def __init__(
        self, settings: FetchSettings, policy: NetworkPolicy, ssl_context: ssl.SSLContext | None
    ) -> None:
        self._settings = settings
        self._client = httpx.AsyncClient(
            transport=policed_transport(policy, ssl_context),
            timeout=httpx.Timeout(
                connect=settings.connect_timeout,
                read=settings.read_timeout,
                write=settings.read_timeout,
                pool=settings.connect_timeout,
            ),
            follow_redirects=False,
            trust_env=False,  # an environment proxy would connect on our behalf, past the address check
            headers=request_headers(settings),
        )

    def get(self, url: str, hop_url: str, headers: dict[str, str]) -> _Exchange:
        return _Exchange(self._client, url, hop_url, headers, self._settings)

    def join(self, base: str, location: str) -> str:
        try:
            return str(httpx.URL(base).join(location).copy_with(fragment=None))
        except httpx.InvalidURL as exc:
            raise ValueError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._client.aclose()


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def reason(self) -> str:
        return self._response.reason_phrase

    def header(self, name: str) -> str | None:
        value: str | None = self._response.headers.get(name)
        return value

    def header_list(self, name: str) -> list[str]:
        return self._response.headers.get_list(name)

    def raw(self, chunk_size: int) -> AsyncIterator[bytes]:
        return self._response.aiter_raw(chunk_size)

    async def drain(self, limit: int) -> None:
        # A failure while draining changes nothing about the answer we already have: not an error.
        seen = 0
        try:
            async for chunk in self._response.aiter_raw():
                seen += len(chunk)
                if seen > limit:
                    return
        except httpx.HTTPError:
            return


class _Exchange:
    """`client.stream(...)` with httpx's exceptions turned into FetchErrors naming the feed."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        hop_url: str,
        headers: dict[str, str],
        settings: FetchSettings,
    ) -> None:
        self._client = client
        self._url = url
        self._hop_url = hop_url
        self._headers = headers
        self._settings = settings
        self._response: httpx.Response | None = None

    async def __aenter__(self) -> _Response:
        try:
            request = self._client.build_request("GET", self._hop_url, headers=self._headers)
            self._response = await self._client.send(request, stream=True)
        except Exception as exc:
            raise _transport_error(self._url, self._hop_url, exc, self._settings) from exc
        return _Response(self._response)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        response, self._response = self._response, None
        if response is not None:
            await response.aclose()
        if isinstance(exc_value, httpx.HTTPError | AddressRefused):
            raise _transport_error(self._url, self._hop_url, exc_value, self._settings) from exc_value


def _transport_error(url: str, hop_url: str, exc: BaseException, settings: FetchSettings) -> BaseException:
    """The FetchError for an exception raised while sending or reading; other exceptions pass unchanged."""
    refused = find_cause(exc, AddressRefused)
    if refused is not None:
        where = "" if hop_url == url else f"redirected to {hop_url}: "
        return NetworkPolicyError(url, f"{where}{refused}")
    if isinstance(exc, httpx.ConnectTimeout):
        return FetchError(url, f"connect timed out after {seconds(settings.connect_timeout)}")
    if isinstance(exc, httpx.ReadTimeout):
        return FetchError(url, f"read timed out after {seconds(settings.read_timeout)}")
    if isinstance(exc, httpx.TimeoutException):
        return FetchError(url, f"timed out: {exc}")
    if isinstance(exc, httpx.ConnectError):
        return FetchError(url, describe_connect_error(exc))
    if isinstance(exc, httpx.RemoteProtocolError):
        return FetchError(url, f"protocol error: {exc}")
    if isinstance(exc, httpx.DecodingError):
        return FetchError(url, f"cannot decode the response: {exc}")
    if isinstance(exc, httpx.TransportError):
        return FetchError(url, f"connection failed: {exc}")
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return FetchError(url, f"invalid URL: {exc}", retryable=False)
    if isinstance(exc, httpx.HTTPError):
        return FetchError(url, str(exc))
    return exc
