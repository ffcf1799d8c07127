"""Lazy migration over a session: `migrator lazy status` (reads only) and `migrator lazy finish` (a journaled,
resumable run of its own, mode ``lazy-finish``, that closes the window).

The cohort is a run's (``users.lazy = 1``): the users the run left to Kinde's workflow, or created without a
password for the users-in-Kinde reading. `lazy status` says where each stands (``lazy/cohort.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx

from migrator.config import Settings
from migrator.errors import JournalError
from migrator.events import Emit, Notice
from migrator.journal import Journal, Run, RunMode, RunStatus, UserState
from migrator.kinde.client import KindeClient
from migrator.kinde.scopes import check_scopes
from migrator.lazy.cohort import CohortStatus, Standing, read_cohort
from migrator.mapping import FallbackPolicy
from migrator.reports import Summary
from migrator.runs.kinds import KINDS
from migrator.runs.migration import Confirm, Migration
from migrator.runs.session import open_session
from migrator.stages.lazy_finish import FALLBACK_OPTION

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
    check_scopes(kinde.tokens.scopes, needed, what)


# The workflow creates users with only some of the identities of the run's plan (never a phone: Kinde needs its
# country; never an email another user holds; the sign-in email alone when Kinde refuses more): `lazy finish`
# reads each moved user's identities and adds the plan's it lacks, as a run adds any a create did not carry.
ADD_IDENTITIES = frozenset({"read:user_identities", "create:user_identities"})


def cohort_with_more_identities(journal: Journal, run_id: int) -> int:
    """How many of the run's cohort have identities beyond the sign-in email, which `lazy finish` may add."""
    return sum(
        1
        for row in journal.users.lazy_cohort(run_id)
        if row.plan and len(json.loads(row.plan).get("identities", [])) > 1
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


@dataclass(frozen=True)
class LazyFinish:
    """`migrator lazy finish`: close the lazy window of ``run_id`` (default: the latest run with a cohort)."""

    run_id: int | None = None
    fallback: FallbackPolicy | None = None  # default: the setting lazy_fallback
    dry_run: bool = False


@dataclass(frozen=True)
class FinishPreview:
    """What a finish would do (its dry run: Kinde and Clerk read, nothing written anywhere)."""

    status: CohortStatus
    fallback: str

    def to_json(self) -> dict[str, object]:
        counts = self.status.counts()
        unmoved = counts[Standing.PENDING] + counts[Standing.NEVER]
        verb = "skip" if self.fallback == "skip" else "create"
        return {
            "run_id": self.status.run_id,
            "dry_run": True,
            "fallback": self.fallback,
            "would_adopt": counts[Standing.MOVED],
            f"would_{verb}": unmoved,
            "status": self.status.to_json(),
        }


def _without_export(settings: Settings) -> Settings:
    """A finish reads no export: the cohort's passwords could not be imported, whatever it holds now."""
    return settings.model_copy(update={"clerk_export": None})


async def run_lazy_finish(
    settings: Settings,
    journal: Journal,
    action: LazyFinish,
    *,
    on_event: Emit,
    confirm: Confirm,
    clerk_transport: httpx.AsyncBaseTransport | None = None,
    kinde_transport: httpx.AsyncBaseTransport | None = None,
) -> Summary | FinishPreview:
    """The finish run of the cohort's base run: started, or continued where it stopped (never a second one)."""
    base = cohort_run(journal, action.run_id)
    fallback = action.fallback or settings.lazy_fallback
    if action.dry_run:
        status = await run_lazy_status(
            settings, journal, base.id, on_event=on_event, clerk_transport=clerk_transport,
            kinde_transport=kinde_transport,
        )  # fmt: skip
        return FinishPreview(status, fallback)
    if base.status not in (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_FAILURES):
        raise JournalError(
            f"run {base.id} is {base.status}: finish it first (`migrator resume {base.id}`); its cohort may be"
            " incomplete until then"
        )
    settings = _without_export(settings)
    existing = journal.runs.child(base.id, RunMode.LAZY_FINISH)
    session = open_session(settings, journal, on_event, clerk_transport, kinde_transport, Migration)
    async with session as migration:
        assert isinstance(migration, Migration)
        if existing is not None:
            chosen = (existing.run_options or {}).get(FALLBACK_OPTION)
            if action.fallback and action.fallback != chosen:
                on_event(Notice(f"run {existing.id} began with fallback {chosen}: it continues with it", "warning"))
            on_event(Notice(f"continuing lazy finish run {existing.id} of run {base.id}"))
            return await migration.resume(existing.id, allow_changed=False, confirm=confirm)
        kind = KINDS[RunMode.LAZY_FINISH]
        checked = await migration.check(kind.needs(), None)
        if more := cohort_with_more_identities(journal, base.id):
            why = (
                f"{more} user(s) of the cohort have identities beyond their sign-in email, which lazy finish reads"
                " and adds where the workflow could not"
            )
            await require_scopes(migration.kinde, ADD_IDENTITIES, why)
        run = migration.record_run(kind.mode, parent_run_id=base.id, run_options={FALLBACK_OPTION: fallback})
        on_event(Notice(f"run {run.id} started (lazy finish of run {base.id}, fallback {fallback})"))
        return await migration.drive(run, confirm, checked)
