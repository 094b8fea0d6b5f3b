"""HTTP connections that only reach addresses the network policy allows (feeds and webhooks alike).

`policed_transport` gives an httpx transport whose connection pool resolves each host itself, refuses the
connection unless every address is allowed, and connects to a checked address. No second DNS lookup happens
between the check and the connect, so a DNS answer that changes in between (DNS rebinding) cannot reach a
refused address. TLS still verifies the host name and sends SNI; the Host header is unchanged.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable

import httpcore
import httpx

from monitor.errors import find_cause
from monitor.netpolicy import NetworkPolicy, resolve

__all__ = [
    "AddressRefused",
    "PolicyCheckingBackend",
    "describe_connect_error",
    "find_cause",
    "policed_transport",
]


class AddressRefused(httpcore.ConnectError):
    """Raised inside the connection pool; callers turn it into a policy error naming their URL."""

    def __init__(self, host: str, address: str, reason: str | None = None) -> None:
        self.host = host
        self.address = address
        super().__init__(reason or f"host {host!r} resolves to {address}, a non-public address")


class PolicyCheckingBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to addresses the policy allows.

    It resolves the host itself, refuses the connection unless every address is allowed (as
    `NetworkPolicy.check_url` does), and connects to the checked address, so no second DNS lookup can
    substitute another one. httpcore still uses the host name for TLS (SNI, certificate check) and httpx
    for the Host header, so nothing else changes.
    """

    def __init__(self, policy: NetworkPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's backend interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve(f"{host}:{port}", host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        if not addresses:
            raise httpcore.ConnectError(f"host {host!r} has no address")
        for address in addresses:
            if not self._policy.is_allowed(address):
                raise AddressRefused(host, str(address), self._policy.describe_refusal(host, address))
        last_error: httpcore.ConnectError | None = None
        # Distinct addresses in resolver order (getaddrinfo lists one address once per socket type).
        for address in dict.fromkeys(addresses):
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                last_error = exc
        assert last_error is not None
        raise httpcore.ConnectError(describe_connect_error(last_error)) from last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's backend interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for feeds")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def policed_transport(
    policy: NetworkPolicy, ssl_context: ssl.SSLContext | None = None
) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(http1=True, http2=False, trust_env=False)
    # httpx offers no public hook for the network backend; swap in a pool that uses ours. The test suite
    # fetches through a host name whose address the policy refuses, so a change in httpx that breaks this swap
    # fails loudly there.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        http1=True,
        http2=False,
        network_backend=PolicyCheckingBackend(policy),
    )
    return transport


def describe_connect_error(exc: BaseException) -> str:
    if find_cause(exc, ConnectionRefusedError) is not None:
        return "connection refused"
    if find_cause(exc, ConnectionResetError) is not None:
        return "connection reset"
    text = str(exc).strip()
    if text == "connection refused" or text.startswith("cannot resolve"):
        return text
    innermost = exc
    while innermost.__cause__ is not None:
        innermost = innermost.__cause__
    return f"cannot connect: {innermost}" if str(innermost) else "cannot connect"
