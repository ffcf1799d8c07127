"""Build the two API clients from settings: transports, limiters, Kinde's M2M credentials.

Kept apart from the pipeline so tests and benchmarks can hand it other transports (an in-process
``httpx.ASGITransport``) and the pipeline never knows what it talks to. Every command reaches an API
the same way: :func:`api_transport` (httpx's own transport, the connection limits, the proxy the
environment names), wrapped to log each request when the command keeps a request log.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx

from migrator import __version__
from migrator.clerk.client import ClerkClient
from migrator.config import Settings
from migrator.http import OnRetry
from migrator.kinde.client import KindeClient, M2MCredentials
from migrator.limiter import AdaptiveLimiter
from migrator.request_log import LoggingTransport, RequestLog

USER_AGENT = f"clerk-to-kinde-migrator/{__version__}"


@asynccontextmanager
async def connect(
    settings: Settings,
    *,
    on_retry: OnRetry | None = None,
    clerk_transport: httpx.AsyncBaseTransport | None = None,
    kinde_transport: httpx.AsyncBaseTransport | None = None,
    request_log: RequestLog | None = None,
) -> AsyncIterator[tuple[ClerkClient, KindeClient]]:
    """Open both clients; ``settings.require_credentials()`` must have passed. With ``request_log``,
    every request (each retry too) is a line of it. A transport given (tests: the sandbox in process)
    stands for the network; the request log wraps it all the same."""
    assert settings.clerk_secret_key and settings.kinde_management_client_secret and settings.kinde_domain
    timeout = httpx.Timeout(settings.timeout, connect=min(10.0, settings.timeout))
    connections = settings.concurrency + 8
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    clerk_transport = _logged(clerk_transport or api_transport(settings.clerk_api_url, limits), "clerk", request_log)
    kinde_transport = _logged(kinde_transport or api_transport(settings.kinde_domain, limits), "kinde", request_log)
    secret_key = settings.clerk_secret_key.get_secret_value()
    clerk_http = _http(settings.clerk_api_url, timeout, clerk_transport, Authorization=f"Bearer {secret_key}")
    kinde_http = _http(settings.kinde_domain, timeout, kinde_transport)
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
    base_url: str, timeout: httpx.Timeout, transport: httpx.AsyncBaseTransport, **headers: str
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url, headers={"User-Agent": USER_AGENT, **headers}, timeout=timeout, transport=transport
    )


def _logged(transport: httpx.AsyncBaseTransport, service: str, log: RequestLog | None) -> httpx.AsyncBaseTransport:
    return transport if log is None else LoggingTransport(transport, service, log)


def api_transport(url: str, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """The transport every command reaches ``url``'s API through: httpx's own, with ``limits``, through the proxy
    the environment names for ``url``.

    httpx reads proxy settings from the environment only when it builds the transport itself, which it does not
    once a transport is given (ours is, to be wrapped by the request log); so it is read here, the same way for
    every command."""
    return httpx.AsyncHTTPTransport(limits=limits, proxy=environment_proxy(url))


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, ``NO_PROXY``
    honoured), as httpx itself would read them for a transport it built."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


def _limiter(initial_rate: float, max_rate: float, max_wait: float) -> AdaptiveLimiter:
    return AdaptiveLimiter(initial_rate=initial_rate, max_rate=max_rate, max_wait=max_wait)
