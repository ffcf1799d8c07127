"""A command's session with both APIs: the clients opened once, retries and reconciliations reported by
one rule each, every request logged (``request_log.py``), and the ordered check before a run is recorded
or reopened.

Every command that talks to an API opens its clients here (``open_session``), so each reports and
logs its retries the same way, and each request is a line of the run's ``requests.jsonl``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from migrator.clerk.client import ClerkClient
from migrator.config import Settings
from migrator.connect import connect
from migrator.errors import ApiError
from migrator.events import Emit, Notice, Waiting
from migrator.http import ApiClient, OnRetry
from migrator.journal import Journal, Run
from migrator.kinde.client import KindeClient
from migrator.report_files import run_dir
from migrator.request_log import REQUESTS_LOG, RequestLog
from migrator.stages.context import RunContext, mapping_options
from migrator.stages.creates import Reconciliation
from migrator.stages.preflight import Checked, Intent, check_before_run

OnReconciled = Callable[[Reconciliation], None]


def report_retries(emit: Emit, long_wait: float, clock: Callable[[], float] = time.monotonic) -> OnRetry:
    """The one rule for retries. A retry that then succeeds is not news: each is a ``detail`` notice (shown
    with -v; the pacing line and the summary count them from the clients' stats, the request log has each
    attempt). A wait longer than ``long_wait`` is announced (``Waiting``: the CLI shows it with its countdown),
    once for all the requests one pause of the server holds. A request that finally fails is its caller's
    to report (the user's step fails)."""
    announced: dict[str, float] = {}  # service -> when the wait it last announced ends

    def on_retry(service: str, error: ApiError, attempt: int, wait: float) -> None:
        emit(Notice(f"{service}: retry {attempt} after: {error}", level="detail"))
        ends = clock() + wait
        if wait > long_wait and ends > announced.get(service, 0.0) + 1.0:
            announced[service] = ends
            emit(Waiting(service, wait, "Retry-After" if error.retry_after is not None else "backing off"))

    return on_retry


def report_reconciliations(emit: Emit, clients: Iterable[ApiClient], log: RequestLog) -> OnReconciled:
    """The one rule for reconciliations (stages/creates.py): each is counted in its API's stats (the pacing line,
    the summary), is a line of the request log (what was settled and how, never whose: the log holds no id), and
    a ``detail`` notice, shown with -v as a retry is."""
    stats = {client.service: client.stats for client in clients}

    def on_reconciled(done: Reconciliation) -> None:
        if done.service in stats:
            stats[done.service].reconciled += 1
        answer = done.answer.status or type(done.answer).__name__  # a status, or the kind of network error
        log.record_event("reconcile", done.service.lower(), kind=done.kind, outcome=done.outcome, answer=answer)
        emit(Notice(done.message, level="detail"))

    return on_reconciled


class Session:
    """Both API clients over a journal, for one command; ``request_log`` goes to the run's folder once known."""

    def __init__(self, settings: Settings, journal: Journal, clerk: ClerkClient, kinde: KindeClient, emit: Emit):
        self.settings, self.journal, self.clerk, self.kinde, self.emit = settings, journal, clerk, kinde, emit
        self.options = mapping_options(settings)
        self.started = time.monotonic()
        self.request_log: RequestLog | None = None
        self.on_reconciled: OnReconciled = lambda _: None

    def context(self, run: Run) -> RunContext:
        return RunContext(
            self.settings,
            self.journal,
            self.clerk,
            self.kinde,
            self.emit,
            run,
            self.options,
            on_reconciled=self.on_reconciled,
        )

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

    def retry_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """(requests sent again, creates reconciled by a lookup) per API, for the summary."""
        clients = (self.clerk, self.kinde)
        return {c.service: c.stats.retries for c in clients}, {c.service: c.stats.reconciled for c in clients}


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
    on_retry = report_retries(on_event, settings.long_wait)
    async with connect(settings, on_retry=on_retry, **transports) as (clerk, kinde):
        session = session_class(settings, journal, clerk, kinde, on_event)
        session.request_log = log
        session.on_reconciled = report_reconciliations(on_event, (clerk, kinde), log)
        yield session
