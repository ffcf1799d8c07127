"""Lazy migration over a session: `migrator lazy status` (reads only) and `migrator lazy finish` (a journaled,
resumable run of its own, mode ``lazy-finish``, that closes the window).

The cohort is a run's (``users.lazy = 1``): the users the run left to Kinde's workflow, or created without a
password for the users-in-Kinde reading. `lazy status` says where each stands (``lazy/cohort.py``).
"""

from __future__ import annotations

import httpx

from migrator.config import Settings
from migrator.errors import JournalError, ScopeError
from migrator.events import Emit, Notice
from migrator.journal import Journal, Run, RunMode, UserState
from migrator.kinde.client import KindeClient
from migrator.lazy.cohort import CohortStatus, read_cohort
from migrator.runs.session import open_session

STATUS_SCOPES = frozenset({"read:users"})


def cohort_run(journal: Journal, run_id: int | None) -> Run:
    """The run whose cohort is meant: ``run_id``, else the latest real run with one."""
    if run_id is None:
        latest = journal.users.latest_lazy_run()
        if latest is None:
            raise JournalError(
                "no run of this journal has a lazy cohort: run with --unimportable-passwords lazy"
                ' (unimportable_passwords = "lazy") first'
            )
        run_id = latest
    run = journal.runs.get(run_id)
    if run.mode == RunMode.LAZY_FINISH and run.parent_run_id is not None:
        run = journal.runs.get(run.parent_run_id)  # a finish run names the run whose window it closes
    if run.dry_run:
        raise JournalError(f"run {run.id} was a dry run: its cohort was never left to Kinde's workflow")
    if not journal.users.count(run.id, "lazy = 1"):
        raise JournalError(
            f"run {run.id} has no lazy cohort (it ran with unimportable_passwords ="
            f" {run.config_summary.get('unimportable_passwords', 'reset')!r})"
        )
    return run


async def require_scopes(kinde: KindeClient, needed: frozenset[str], what: str) -> None:
    """Refuse before the first request when the token's scopes are known and lack one of ``needed``."""
    await kinde.tokens.token()
    missing = sorted(needed - kinde.tokens.scopes) if kinde.tokens.scopes is not None else []
    if missing:
        raise ScopeError(
            f"{what} and the M2M application lacks scope(s) {', '.join(missing)}: grant them in Kinde (Settings >"
            " Applications > your M2M app > APIs > Kinde Management API > Scopes)",
            scope=missing[0],
            service="Kinde",
            status=403,
        )


async def run_lazy_status(
    settings: Settings,
    journal: Journal,
    run_id: int | None,
    *,
    on_event: Emit,
    clerk_transport: httpx.AsyncBaseTransport | None = None,
    kinde_transport: httpx.AsyncBaseTransport | None = None,
) -> CohortStatus:
    """Where the cohort of ``run_id`` (default: the latest with one) stands, from Kinde and Clerk; writes nothing."""
    run = cohort_run(journal, run_id)
    async with open_session(settings, journal, on_event, clerk_transport, kinde_transport) as session:
        await require_scopes(session.kinde, STATUS_SCOPES, "lazy status looks the cohort up in Kinde")
        on_event(Notice(f"reading the lazy cohort of run {run.id} in Kinde and Clerk"))
        status = await read_cohort(journal, run, session.clerk, session.kinde)
        status.requests = session.request_counts()
    status.outside = journal.users.count(
        run.id, "password_problem IS NOT NULL AND lazy = 0 AND state != ?", (UserState.SKIPPED,)
    )
    finish = journal.runs.child(run.id, RunMode.LAZY_FINISH)
    status.finished_by = finish.id if finish is not None else None
    return status
