"""The HTTP boundary: where httpx ends and ``migrator.errors`` begins.

Every request to either API goes through :class:`ApiClient.call`, which

* waits for the API's shared :class:`~migrator.limiter.AdaptiveLimiter`;
* maps transport failures and error statuses to the ``migrator.errors`` hierarchy (one place);
* retries what is worth retrying with tenacity: 429 (after the server's reset: the limiter holds
  everyone on congestion, only the request itself on a stray 429), 5xx, timeouts and dropped
  connections, never another 4xx. No single wait is longer than ``max_wait``. A write that is not idempotent is retried only when the
  failure proves it never reached the server (429, connection refused); after an ambiguous failure
  the caller reconciles by lookup instead of re-sending blindly.

Messages name the service, method and path, never a query string, header or body: those may carry
secrets, tokens, emails or password digests.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from migrator.errors import (
    ApiError,
    AuthError,
    NotFound,
    ProtocolError,
    RateLimited,
    ScopeError,
    TransientError,
)
from migrator.limiter import DEFAULT_MAX_WAIT, AdaptiveLimiter
from migrator.request_log import ATTEMPT

RETRY_HEADERS = ("Retry-After", "RateLimit-Reset", "X-RateLimit-Reset")
# A reset header's number above this is an epoch timestamp, not a delay: 10^9 s is 31 years, and
# every epoch second since 2001 is larger.
EPOCH_THRESHOLD = 1_000_000_000


# A retry, as it is about to wait: the service, the error met, the attempt that met it, the seconds until
# the next attempt may go (its own wait, or everyone's pause for the server's reset, whichever is longer).
OnRetry = Callable[[str, ApiError, int, float], None]


@dataclass
class CallStats:
    """What one API saw, for progress output and benchmarks."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    reconciled: int = 0  # creates whose answer left their fate unknown, settled by a lookup (stages/creates.py)
    by_status: dict[int, int] = field(default_factory=dict)


def parse_retry_after(headers: httpx.Headers, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait, from the first reset header present that parses.

    ``Retry-After``: seconds or an HTTP date (RFC 9110). ``RateLimit-Reset`` / ``X-RateLimit-Reset``:
    seconds, or an epoch timestamp (what several gateways send) when the number is one. A time
    in the past is 0. Capping the wait is the caller's business (``max_wait``).
    """
    for name in RETRY_HEADERS:
        raw = headers.get(name)
        if raw is None:
            continue
        raw = raw.strip()
        try:
            value = float(raw)
        except ValueError:
            value = None
        if value is not None:
            if math.isnan(value) or value < 0:
                continue
            return max(0.0, value - now()) if value >= EPOCH_THRESHOLD else value
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            continue
        if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive one is read as such
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now())
    return None


def error_details(body: Any) -> tuple[str | None, str | None]:
    """(code, message) from Clerk's or Kinde's envelope; ``errors`` may be a list or one object."""
    if not isinstance(body, dict):
        return None, None
    errors = body.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else errors
    if isinstance(first, dict):
        code = first.get("code")
        message = first.get("long_message") or first.get("message")
        return (str(code) if code else None), (str(message) if message else None)
    if isinstance(body.get("error"), str):  # OAuth2 token endpoint: {"error", "error_description"}
        return body["error"], body.get("error_description")
    return None, None


def _decode(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _unbind(response: httpx.Response) -> None:
    """Free a read response (and its body) as soon as nobody holds it, not at the next full garbage collection.

    httpx 0.28 wraps the body stream in an object that points back at the response (encode/httpx#3733): a cycle,
    so a page of 500 Clerk users outlived its use by several pages (~8 MB in the fetch). The body is read and the
    stream closed by then (``request`` reads it whole), so the stream is replaced by an empty one.
    """
    if response.is_closed:
        response.stream = httpx.ByteStream(b"")


class ApiClient:
    """An httpx.AsyncClient bound to one service, its limiter and its retry policy."""

    service = "API"

    def __init__(
        self,
        http: httpx.AsyncClient,
        limiter: AdaptiveLimiter,
        *,
        max_attempts: int = 6,
        backoff_cap: float = 30.0,
        on_retry: OnRetry | None = None,
        max_wait: float = DEFAULT_MAX_WAIT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.http = http
        self.limiter = limiter
        self.max_attempts = max_attempts
        self.backoff_cap = backoff_cap
        self.on_retry = on_retry
        self.max_wait = max_wait  # no single wait between retries is longer, whatever the server says
        self._sleep = sleep  # injectable: tests check what is retried, not how long it sleeps
        self.stats = CallStats()

    # -- error mapping -------------------------------------------------------------------------
    def _where(self, method: str, path: str) -> str:
        return f"{self.service} {method} {path}"

    def classify(self, response: httpx.Response, method: str, path: str, body: Any, scope: str | None) -> ApiError:
        """Turn a non-2xx response into the right error. Services refine 401/403/400."""
        status = response.status_code
        code, message = error_details(body)
        detail = f"{status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        where = self._where(method, path)
        if status == 429:
            return RateLimited(
                f"{where} was rate limited ({detail})",
                service=self.service,
                status=status,
                code=code,
                retryable=True,
                retry_after=parse_retry_after(response.headers),
            )
        if status >= 500:
            return TransientError(
                f"{where} failed on the server ({detail})",
                service=self.service,
                status=status,
                code=code,
                retryable=True,
                retry_after=parse_retry_after(response.headers),
            )
        if status == 401:
            return AuthError(f"{where} was refused ({detail})", service=self.service, status=status, code=code)
        if status == 403:
            return ScopeError(
                f"{where} is not allowed ({detail})" + (f": the credentials need the scope {scope}" if scope else ""),
                scope=scope,
                service=self.service,
                status=status,
                code=code,
            )
        if status == 404:
            return NotFound(f"{where} found nothing ({detail})", service=self.service, status=status, code=code)
        return ApiError(f"{where} was rejected ({detail})", service=self.service, status=status, code=code)

    # -- one request ---------------------------------------------------------------------------
    async def _send_once(self, method: str, path: str, scope: str | None, **kwargs: Any) -> tuple[httpx.Response, Any]:
        await self.limiter.acquire()
        where = self._where(method, path)
        self.stats.requests += 1
        try:
            response = await self.http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Never reached the server: safe to retry even a write.
            raise TransientError(
                f"{where}: cannot connect ({type(exc).__name__})", service=self.service, retryable=True
            ) from None
        except httpx.TimeoutException as exc:
            raise TransientError(
                f"{where}: timed out ({type(exc).__name__})",
                service=self.service,
                retryable=True,
                ambiguous=True,
            ) from None
        except httpx.TransportError as exc:
            raise TransientError(
                f"{where}: the connection dropped ({type(exc).__name__})",
                service=self.service,
                retryable=True,
                ambiguous=True,
            ) from None
        self.stats.by_status[response.status_code] = self.stats.by_status.get(response.status_code, 0) + 1
        _unbind(response)
        body = _decode(response)
        if response.status_code == 429:
            self.stats.throttled += 1
            error = self.classify(response, method, path, body, scope)
            assert isinstance(error, RateLimited)
            error.hold = self.limiter.on_throttle(error.retry_after)
            raise error
        self.limiter.on_success()
        if response.is_success:
            if body is None and response.content.strip():
                raise ProtocolError(
                    f"{where} answered {response.status_code} with a body that is not JSON"
                    + (" (truncated?)" if response.content.lstrip()[:1] in (b"{", b"[") else ""),
                    service=self.service,
                    status=response.status_code,
                    retryable=True,
                    ambiguous=True,
                )
            return response, body
        error = self.classify(response, method, path, body, scope)
        error.ambiguous = response.status_code >= 500
        raise error

    async def call(
        self,
        method: str,
        path: str,
        *,
        scope: str | None = None,
        idempotent: bool = True,
        expect: type | tuple[type, ...] | None = dict,
        **kwargs: Any,
    ) -> Any:
        """Send with retries; return the decoded JSON body (checked against ``expect``)."""

        def retryable(exc: BaseException) -> bool:
            if not isinstance(exc, ApiError) or not exc.retryable:
                return False
            return idempotent or not exc.ambiguous

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RateLimited):
                # Congestion: the shared limiter holds every request until the reset (hold 0).
                # A stray 429: only this request waits the server's reset (capped by the limiter).
                return exc.hold
            hint = exc.retry_after if isinstance(exc, ApiError) and exc.retry_after else None
            base = hint if hint is not None else min(self.backoff_cap, 0.2 * 2 ** (state.attempt_number - 1))
            return min(self.max_wait, base * random.uniform(1.0, 1.5))

        def before_sleep(state: RetryCallState) -> None:
            self.stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            if self.on_retry and isinstance(exc, ApiError):
                wait = max(state.upcoming_sleep, self.limiter.resume_in)
                self.on_retry(self.service, exc, state.attempt_number, wait)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait,
            retry=retry_if_exception(retryable),
            before_sleep=before_sleep,
            reraise=True,
            sleep=self._sleep,
        )
        async for attempt in retrying:
            with attempt:
                ATTEMPT.set(attempt.retry_state.attempt_number)  # for the request log (request_log.py)
                _response, body = await self._send_once(method, path, scope, **kwargs)
        if expect is not None and not isinstance(body, expect):
            raise ProtocolError(
                f"{self._where(method, path)} answered JSON of an unexpected shape "
                f"(expected {getattr(expect, '__name__', expect)}, got {type(body).__name__})",
                service=self.service,
            )
        return body
