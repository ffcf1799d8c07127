"""A JSON-lines log of every HTTP request of a run, in its report folder (``requests.jsonl``, 0600).

Recorded at the transport, below the retries, so every attempt is one line: when, which API, method,
route, status (and the network error's name if the answer was cut or never came), milliseconds until
the answer was read whole, and the attempt. What the migrator decided between attempts is a line too, with
``event`` first (a reader of the attempts skips it): ``reconcile``, a create settled by a lookup after an
unclear answer (what kind of thing, the outcome, the answer's status or error; never whose).
Only what a route is made of: no query string, no body, no header; ids and emails in a path are
replaced by placeholders, so no secret, token, digest or personal data can reach the file.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import deque
from collections.abc import AsyncIterator
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx

from migrator.errors import JournalError

REQUESTS_LOG = "requests.jsonl"
VERIFY_REQUESTS_LOG = "verify-requests.jsonl"  # `migrator verify`'s, in the verified run's folder
ATTEMPT: ContextVar[int] = ContextVar("migrator_request_attempt", default=1)  # set by ApiClient.call
EARLY_ENTRIES = 10_000  # kept in memory until the run's folder is known (the preflight's requests)

_ID_SEGMENT = re.compile(r"^[A-Za-z]+_(?=[A-Za-z0-9]*\d)[A-Za-z0-9]{6,}$|^(?=.*\d)[A-Za-z0-9-]{12,}$")


def route(path: str) -> str:
    """``/v1/users/user_2abc.../organization_memberships`` -> ``/v1/users/:id/organization_memberships``."""
    parts = []
    for segment in path.split("?", 1)[0].split("/"):
        if "@" in segment or "%40" in segment:
            parts.append(":email")
        elif _ID_SEGMENT.match(segment):
            parts.append(":id")
        else:
            parts.append(segment)
    return "/".join(parts)


class RequestLog:
    """Where the lines go: held in memory until ``attach`` names the run's file, then appended to it."""

    def __init__(self) -> None:
        self._early: deque[str] = deque(maxlen=EARLY_ENTRIES)
        self._file: IO[str] | None = None
        self.path: Path | None = None

    def attach(self, path: Path) -> None:
        self.close()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.fchmod(fd, 0o600)
            self._file = os.fdopen(fd, "a", encoding="utf-8", buffering=1)  # a line at a time
        except OSError as exc:
            raise JournalError(f"cannot write the request log {path}: {exc}", writing=True) from None
        self.path = path
        while self._early:
            self._file.write(self._early.popleft())

    def record(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        if self._file is None:
            self._early.append(line)
        else:
            self._file.write(line)

    def record_event(self, event: str, service: str, **fields: str | int) -> None:
        """A line that is not an attempt: ``event`` first, then when and which API (as an attempt's)."""
        self.record({"event": event, "at": datetime.now(UTC).isoformat(timespec="milliseconds"), "service": service, **fields})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class LoggingTransport(httpx.AsyncBaseTransport):
    """Around the real transport: one ``RequestLog`` line per request sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport, service: str, log: RequestLog) -> None:
        self.inner, self.service, self.log = inner, service, log

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started, attempt = time.monotonic(), ATTEMPT.get()
        entry: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "service": self.service,
            "method": request.method,
            "route": route(request.url.path),
        }
        try:
            response = await self.inner.handle_async_request(request)
        except Exception as exc:
            self.log.record({**entry, "status": None, "error": type(exc).__name__, **_timing(started, attempt)})
            raise
        entry["status"] = response.status_code
        response.stream = _LoggedBody(response.stream, self.log, entry, started, attempt)
        return response

    async def aclose(self) -> None:
        """The client closes its transport when the run is over: the log's file goes with it."""
        await self.inner.aclose()
        self.log.close()


class _LoggedBody(httpx.AsyncByteStream):
    """The answer's body: its line is written once it is read whole, or with the error that cut it."""

    def __init__(self, inner: Any, log: RequestLog, entry: dict[str, Any], started: float, attempt: int) -> None:
        self.inner, self.log, self.entry, self.started, self.attempt = inner, log, entry, started, attempt
        self.recorded = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.inner:
                yield chunk
        except Exception as exc:
            self._record(error=type(exc).__name__)
            raise

    async def aclose(self) -> None:
        self._record()
        await self.inner.aclose()

    def _record(self, **extra: Any) -> None:
        if not self.recorded:
            self.recorded = True
            self.log.record({**self.entry, **extra, **_timing(self.started, self.attempt)})


def _timing(started: float, attempt: int) -> dict[str, Any]:
    return {"ms": round((time.monotonic() - started) * 1000, 1), "attempt": attempt, "retry": attempt > 1}
