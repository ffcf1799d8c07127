"""Build the two API clients from settings: transports, limiters, Kinde's M2M credentials.

Kept apart from the pipeline so tests and benchmarks can hand it other transports (an in-process
``httpx.ASGITransport``) and the pipeline never knows what it talks to.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpcore
import httpx

from migrator import __version__
from migrator.clerk.client import ClerkClient
from migrator.config import Settings
from migrator.errors import ApiError
from migrator.http_backend import ShardedTransport, SocketCachingBackend
from migrator.kinde.client import KindeClient, M2MCredentials
from migrator.limiter import AdaptiveLimiter
from migrator.request_log import LoggingTransport, RequestLog

USER_AGENT = f"clerk-to-kinde-migrator/{__version__}"
# Connection pools per API client: httpcore's bookkeeping grows with (idle x all) connections of a pool, so four
# pools of a quarter of the connections each cost ~15 % less CPU per request than one (docs/benchmarks.md, 2b).
POOL_SHARDS = 4


@asynccontextmanager
async def connect(
    settings: Settings,
    *,
    on_retry: Callable[[str, ApiError, int], None] | None = None,
    clerk_transport: httpx.AsyncBaseTransport | None = None,
    kinde_transport: httpx.AsyncBaseTransport | None = None,
    request_log: RequestLog | None = None,
) -> AsyncIterator[tuple[ClerkClient, KindeClient]]:
    """Open both clients; ``settings.require_credentials()`` must have passed. With ``request_log``,
    every request (each retry too) is a line of it."""
    assert settings.clerk_secret_key and settings.kinde_management_client_secret and settings.kinde_domain
    timeout = httpx.Timeout(settings.timeout, connect=min(10.0, settings.timeout))
    connections = settings.concurrency + 8
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    if request_log is not None:
        clerk_pool = pooled_transport(limits, proxy=environment_proxy(settings.clerk_api_url))
        kinde_pool = pooled_transport(limits, proxy=environment_proxy(settings.kinde_domain))
        clerk_transport = LoggingTransport(clerk_transport or clerk_pool, "clerk", request_log)
        kinde_transport = LoggingTransport(kinde_transport or kinde_pool, "kinde", request_log)
    secret_key = settings.clerk_secret_key.get_secret_value()
    clerk_http = _http(settings.clerk_api_url, timeout, limits, clerk_transport, Authorization=f"Bearer {secret_key}")
    kinde_http = _http(settings.kinde_domain, timeout, limits, kinde_transport)
    async with clerk_http, kinde_http:
        clerk = ClerkClient(
            clerk_http,
            _limiter(settings.clerk_max_rps, settings.clerk_max_rps, settings.max_wait),
            max_attempts=settings.max_attempts,
            on_retry=on_retry,
            max_wait=settings.max_wait,
        )
        credentials = M2MCredentials(
            client_id=settings.kinde_management_client_id or "",
            client_secret=settings.kinde_management_client_secret,
            audience=settings.audience,
        )
        kinde = KindeClient(
            kinde_http,
            _limiter(settings.kinde_initial_rps, settings.kinde_max_rps, settings.max_wait),
            credentials,
            max_attempts=settings.max_attempts,
            on_retry=on_retry,
            max_wait=settings.max_wait,
        )
        yield clerk, kinde


def _http(
    base_url: str,
    timeout: httpx.Timeout,
    limits: httpx.Limits,
    transport: httpx.AsyncBaseTransport | None,
    **headers: str,
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"User-Agent": USER_AGENT, **headers},
        timeout=timeout,
        limits=limits,
        transport=transport,
    )


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, ``NO_PROXY``
    honoured). httpx reads these only for the transports it builds itself; a run builds its own."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


def pooled_transport(
    limits: httpx.Limits, shards: int = POOL_SHARDS, proxy: str | None = None
) -> httpx.AsyncBaseTransport:
    """A run's transport: ``shards`` pools taking requests in turn, ``limits`` split between them (rounded up),
    through ``proxy`` when there is one."""
    if shards <= 1:
        return _one_pool(limits, proxy)

    def share(count: int | None) -> int | None:
        return None if count is None else -(-count // shards)  # None: no limit

    each = httpx.Limits(
        max_connections=share(limits.max_connections),
        max_keepalive_connections=share(limits.max_keepalive_connections),
        keepalive_expiry=limits.keepalive_expiry,
    )
    return ShardedTransport([_one_pool(each, proxy) for _ in range(shards)])


def _one_pool(limits: httpx.Limits, proxy: str | None = None) -> httpx.AsyncHTTPTransport:
    """httpx's transport, its pool on :class:`SocketCachingBackend` (~15 % less CPU per request, benchmark 2b).

    httpx 0.28 takes no network backend (encode/httpx#3749 adds one), so it is set on the pool httpx built;
    if a later httpx builds something else, the transport stays as httpx made it: slower, never wrong.
    """
    transport = httpx.AsyncHTTPTransport(limits=limits, proxy=proxy)
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore.AsyncConnectionPool) and hasattr(pool, "_network_backend"):
        pool._network_backend = SocketCachingBackend()
    return transport


def _limiter(initial_rate: float, max_rate: float, max_wait: float) -> AdaptiveLimiter:
    return AdaptiveLimiter(initial_rate=initial_rate, max_rate=max_rate, max_wait=max_wait)
