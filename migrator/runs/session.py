"""A command's session with both APIs: the clients opened once, retries reported by one rule, every
request logged (``request_log.py``), and the ordered check before a run is recorded or reopened.

Every command that talks to an API opens its clients here (``open_session``), so each reports and
logs its retries the same way, and each request is a line of the run's ``requests.jsonl``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from migrator.clerk.client import ClerkClient
from migrator.config import Settings
from migrator.connect import connect
from migrator.errors import ApiError
from migrator.events import Emit, Notice
from migrator.journal import Journal, Run
from migrator.kinde.client import KindeClient
from migrator.report_files import run_dir
from migrator.request_log import REQUESTS_LOG, RequestLog
from migrator.stages.context import RunContext, mapping_options
from migrator.stages.preflight import Checked, Intent, check_before_run

OnRetry = Callable[[str, ApiError, int], None]


def report_retries(emit: Emit) -> OnRetry:
    """The one rule for retries: each is a notice (the CLI shows it; the request log has the attempt)."""

    def on_retry(service: str, error: ApiError, attempt: int) -> None:
        emit(Notice(f"{service}: retry {attempt} after: {error}"))

    return on_retry


class Session:
    """Both API clients over a journal, for one command; ``request_log`` goes to the run's folder once known."""

    def __init__(self, settings: Settings, journal: Journal, clerk: ClerkClient, kinde: KindeClient, emit: Emit):
        self.settings, self.journal, self.clerk, self.kinde, self.emit = settings, journal, clerk, kinde, emit
        self.options = mapping_options(settings)
        self.started = time.monotonic()
        self.request_log: RequestLog | None = None

    def context(self, run: Run) -> RunContext:
        return RunContext(self.settings, self.journal, self.clerk, self.kinde, self.emit, run, self.options)

    async def check(self, intent: Intent, export: Path | None) -> Checked:
        """The ordered check (stages/preflight.py) before a run is recorded or reopened."""
        return await check_before_run(self.settings, self.clerk, self.kinde, intent, export)

    def attach_request_log(self, run: Run, name: str = REQUESTS_LOG) -> None:
        """The requests go to the run's folder (``name``: verify keeps its own file there); unattached, the log
        holds only the latest in memory."""
        if self.request_log is not None:
            self.request_log.attach(run_dir(self.settings.state_dir, run.id) / name)

    def request_counts(self) -> dict[str, int]:
        return {client.service: client.stats.requests for client in (self.clerk, self.kinde)}


@asynccontextmanager
async def open_session(
    settings: Settings,
    journal: Journal,
    on_event: Emit,
    clerk_transport: httpx.AsyncBaseTransport | None = None,
    kinde_transport: httpx.AsyncBaseTransport | None = None,
    session_class: type[Session] = Session,
) -> AsyncIterator[Session]:
    """A session over both API clients (retries reported, requests logged), closed on exit."""
    log = RequestLog()
    transports = {"clerk_transport": clerk_transport, "kinde_transport": kinde_transport, "request_log": log}
    async with connect(settings, on_retry=report_retries(on_event), **transports) as (clerk, kinde):
        session = session_class(settings, journal, clerk, kinde, on_event)
        session.request_log = log
        yield session
