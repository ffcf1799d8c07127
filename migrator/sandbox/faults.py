"""Seeded network faults in front of a sandbox app: 5xx, 429, latency, resets, ambiguous writes,
garbage (non-JSON) and truncated answers.

A migrator that only ever meets a perfect server proves nothing about its retries or its idempotency,
so the sandbox apps can be wrapped in :class:`FaultMiddleware`, a pure ASGI middleware driven by a
:class:`FaultProfile` and a seeded ``random.Random``: the same seed and the same order of requests
give the same faults.

Dropping a connection is the one subtle part. Both kinds of client must see a *transport* error,
never an HTTP response:

* under uvicorn, the middleware starts a response whose ``content-length`` is larger than what it
  sends, then raises; uvicorn closes the socket (the response had started) and httpx raises
  ``RemoteProtocolError`` ("peer closed connection without sending complete message body");
* under ``httpx.ASGITransport`` (with its default ``raise_app_exceptions=True``), the exception
  raised by the app reaches the client unchanged, so it is a subclass of
  ``httpx.RemoteProtocolError``: the client's ``except httpx.TransportError`` is exercised
  exactly as over a real socket.

uvicorn logs every exception escaping an app with a traceback; a filter on the ``uvicorn.error``
logger hides those of :class:`ConnectionDropped` only, because they are intended.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Literal, NoReturn

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ERROR_STATUSES = (500, 502, 503)
# A content-length no dropped response ever reaches, so the client always sees a short body.
_PROMISED_LENGTH = 1 << 20
GARBAGE_BODY = b"<html><head><title>502 Bad Gateway</title></head><body>upstream unavailable</body></html>"


@dataclass(frozen=True)
class FaultProfile:
    """Probabilities (0..1) of each fault for one request, and the latency added to every request.

    ``error_rate`` is split evenly over 500/502/503. ``reset_rate``: the connection drops before the
    handler runs (nothing changed). ``ambiguous_write_rate`` applies to POST/PUT/PATCH/DELETE only:
    the handler runs and commits, then the connection drops before the response, so the client
    cannot tell whether its write happened. ``garbage_rate``: the handler does not run; the answer
    is a 200 whose body is an HTML page, not JSON (what a proxy or a captive portal sends).
    ``truncated_rate``: the handler runs (a write commits) and its answer keeps its status, but the
    body is cut to half, with a ``content-length`` matching what is sent: a complete HTTP message
    holding JSON cut short.
    """

    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    latency: tuple[float, float] = (0.0, 0.0)
    reset_rate: float = 0.0
    ambiguous_write_rate: float = 0.0
    garbage_rate: float = 0.0
    truncated_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "error_rate",
            "rate_limit_rate",
            "reset_rate",
            "ambiguous_write_rate",
            "garbage_rate",
            "truncated_rate",
        ):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0) or math.isnan(value):
                raise ValueError(f"FaultProfile.{name} must be between 0 and 1, got {value!r}")
        low, high = self.latency
        if not (0.0 <= low <= high):
            raise ValueError(f"FaultProfile.latency must be (low, high) with 0 <= low <= high, got {self.latency!r}")


PROFILES: dict[str, FaultProfile] = {
    "none": FaultProfile(),
    "light": FaultProfile(error_rate=0.01, rate_limit_rate=0.01, latency=(0.0, 0.02)),
    "chaos": FaultProfile(
        error_rate=0.05,
        rate_limit_rate=0.03,
        latency=(0.005, 0.08),
        reset_rate=0.02,
        ambiguous_write_rate=0.02,
    ),
}


ResetForm = Literal["seconds", "epoch", "http-date"]
RESET_FORMS: tuple[str, ...] = ("seconds", "epoch", "http-date")


def reset_headers(
    names: Iterable[str], seconds: float, form: ResetForm = "seconds", *, now: Callable[[], float] = time.time
) -> list[tuple[bytes, bytes]]:
    """A 429's reset headers, each naming when to retry in ``form``: whole seconds from now (at
    least 1), an epoch timestamp (as several gateways send ``RateLimit-Reset``), or an HTTP date
    (``Retry-After``'s other form, RFC 9110). Epoch and date are rounded up to the next second."""
    wait = max(1, math.ceil(seconds))
    if form == "seconds":
        value = str(wait)
    elif form == "epoch":
        value = str(math.ceil(now() + wait))
    elif form == "http-date":
        value = email.utils.formatdate(math.ceil(now() + wait), usegmt=True)
    else:
        raise ValueError(f"unknown reset header form {form!r}; choose one of {', '.join(RESET_FORMS)}")
    return [(name.lower().encode(), value.encode()) for name in names if name]


class ConnectionDropped(httpx.RemoteProtocolError):
    """The sandbox dropped the connection on purpose.

    A subclass of httpx's own error so that an in-process client sees the same exception family as
    one talking to uvicorn over a socket.
    """


class _HideDroppedConnections(logging.Filter):
    """Keeps uvicorn from logging a traceback for every connection we drop on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


def _hide_dropped_connections_in_uvicorn_log() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _HideDroppedConnections) for existing in logger.filters):
        logger.addFilter(_HideDroppedConnections())


@dataclass(frozen=True)
class _Plan:
    """Every random decision for one request, drawn together so the stream stays aligned."""

    delay: float
    reset: bool
    error_status: int | None
    rate_limited: bool
    ambiguous_write: bool
    garbage: bool = False
    truncated: bool = False


async def _discard(message: Message) -> None:
    """A ``send`` that loses the response: the write committed, the client never hears of it."""


class _RequestBody:
    """Wraps ``receive`` to know whether the request body has been read to its end.

    A socket closed with unread request bytes in its buffer is reset (RST) by the kernel, which the
    client sees as ``ReadError`` or ``RemoteProtocolError`` depending on timing; draining the body
    first makes every drop the same clean close. Never read past the end: after it, both uvicorn's
    and httpx's ``receive`` wait for the response, which a dropped request never completes.
    """

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.complete = False

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            self.complete = True
        return message

    async def drain(self) -> None:
        while not self.complete:
            await self()


class FaultMiddleware:
    """Pure ASGI middleware injecting the faults of a :class:`FaultProfile`.

    Order for each (non-exempt) request: latency, reset, 5xx, 429, garbage, truncated, ambiguous
    write, else the app.
    ``error_body(status)`` renders the vendor's error body for the 5xx/429 it fabricates;
    ``retry_header`` names the header(s) carrying ``retry_after_seconds`` on a 429, in
    ``reset_form`` (empty: none). A gateway's stray 429 usually carries both ``Retry-After`` and
    ``RateLimit-Reset``; the apps' servers choose what each sandbox sends.
    Paths under ``exempt_prefixes`` (the sandbox's own endpoints) pass untouched. Outcomes are
    counted in ``stats`` and served as JSON at ``GET stats_path``. ``sleep`` is injectable so
    tests can see the latency without waiting for it.
    """

    def __init__(
        self,
        app: ASGIApp,
        profile: FaultProfile,
        *,
        seed: int = 0,
        error_body: Callable[[int], bytes],
        retry_header: str | tuple[str, ...] = ("Retry-After", "RateLimit-Reset"),
        reset_form: ResetForm = "seconds",
        exempt_prefixes: tuple[str, ...] = ("/_sandbox",),
        stats_path: str | None = "/_sandbox/faults",
        retry_after_seconds: int = 1,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.app = app
        self.profile = profile
        self.seed = seed
        self.error_body = error_body
        self.retry_headers = (retry_header,) if isinstance(retry_header, str) else tuple(retry_header)
        if reset_form not in RESET_FORMS:
            raise ValueError(f"unknown reset header form {reset_form!r}; choose one of {', '.join(RESET_FORMS)}")
        self.reset_form = reset_form
        self.exempt_prefixes = exempt_prefixes
        self.stats_path = stats_path
        self.retry_after_seconds = retry_after_seconds
        self._sleep = sleep
        self._random = random.Random(seed)
        self.stats: dict[str, float] = {
            "requests": 0,
            "exempt": 0,
            "passed": 0,
            "delayed": 0,
            "latency_seconds": 0.0,
            "error_500": 0,
            "error_502": 0,
            "error_503": 0,
            "rate_limited": 0,
            "reset": 0,
            "ambiguous_write": 0,
            "garbage": 0,
            "truncated": 0,
        }
        _hide_dropped_connections_in_uvicorn_log()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if self.stats_path is not None and path == self.stats_path and scope["method"] == "GET":
            await self._send_stats(send)
            return
        if path.startswith(self.exempt_prefixes):
            self.stats["exempt"] += 1
            await self.app(scope, receive, send)
            return

        self.stats["requests"] += 1
        body = _RequestBody(receive)
        plan = self._plan(scope["method"])
        if plan.delay > 0:
            self.stats["delayed"] += 1
            self.stats["latency_seconds"] += plan.delay
            await self._sleep(plan.delay)
        if plan.reset:
            self.stats["reset"] += 1
            await self._drop_connection(body, send, "reset before the handler ran")
        if plan.error_status is not None:
            self.stats[f"error_{plan.error_status}"] += 1
            await self._send_error(send, plan.error_status)
            return
        if plan.rate_limited:
            self.stats["rate_limited"] += 1
            headers = reset_headers(self.retry_headers, self.retry_after_seconds, self.reset_form)
            await self._send_error(send, 429, headers)
            return
        if plan.garbage:
            self.stats["garbage"] += 1
            await body.drain()
            headers = [(b"content-type", b"text/html"), (b"content-length", str(len(GARBAGE_BODY)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": GARBAGE_BODY})
            return
        if plan.truncated:
            self.stats["truncated"] += 1
            await self._send_truncated(scope, body, send)
            return
        if plan.ambiguous_write:
            self.stats["ambiguous_write"] += 1
            await self.app(scope, body, _discard)
            await self._drop_connection(body, send, "dropped after the write committed")
        self.stats["passed"] += 1
        await self.app(scope, body, send)

    def _plan(self, method: str) -> _Plan:
        draw = self._random.random
        profile = self.profile
        low, high = profile.latency
        delay = low + (high - low) * draw()
        reset = draw() < profile.reset_rate
        error = draw() < profile.error_rate
        error_status = ERROR_STATUSES[int(draw() * len(ERROR_STATUSES))]
        rate_limited = draw() < profile.rate_limit_rate
        ambiguous = draw() < profile.ambiguous_write_rate and method in WRITE_METHODS
        # Drawn only when enabled, so profiles without them keep the random stream they always had.
        garbage = profile.garbage_rate > 0 and draw() < profile.garbage_rate
        truncated = profile.truncated_rate > 0 and draw() < profile.truncated_rate
        return _Plan(
            delay=delay,
            reset=reset,
            error_status=error_status if error else None,
            rate_limited=rate_limited,
            ambiguous_write=ambiguous,
            garbage=garbage,
            truncated=truncated,
        )

    async def _send_error(
        self, send: Send, status: int, extra_headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        body = self.error_body(status)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers + (extra_headers or [])})
        await send({"type": "http.response.body", "body": body})

    async def _send_truncated(self, scope: Scope, body: _RequestBody, send: Send) -> None:
        """Let the app answer, then send its status and the first half of its body, honestly sized."""
        start: Message = {"type": "http.response.start", "status": 200, "headers": []}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, body, capture)
        full = b"".join(chunks)
        cut = full[: len(full) // 2]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(cut)).encode()))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": cut})

    async def _drop_connection(self, body: _RequestBody, send: Send, why: str) -> NoReturn:
        """Promise a body, deliver none of it, and raise (see the module docstring for why)."""
        await body.drain()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(_PROMISED_LENGTH).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        raise ConnectionDropped(f"sandbox fault: connection {why}")

    async def _send_stats(self, send: Send) -> None:
        payload = {"profile": asdict(self.profile), "seed": self.seed, "stats": dict(self.stats)}
        body = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
