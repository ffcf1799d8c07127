"""Cutover runs: catch-ups (``sync``), canaries (``run --sample/--only``) and ``undo``.

A production migration is not one run: the bulk run happens days before the switch, catch-ups
bring over what changed in Clerk since, a canary tries a few hundred users first, and an undo
takes a rehearsal back out of a real tenant. Each is a run of its own in the journal (mode
``sync``, ``canary`` or ``undo``; ``parent_run_id`` names its base run), resumable like any run.

Catch-ups and canaries are ordinary migrations with another fetch stage (``pipeline`` picks it by
mode); an undo has its own short lifecycle here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from migrator.config import Settings
from migrator.connect import connect
from migrator.errors import EXIT_FAILURES, EXIT_INTERRUPTED, EXIT_OK, InputError, JournalError, MigratorError
from migrator.events import Emit, Notice
from migrator.journal import DeletionState, Journal, Run, RunStatus
from migrator.kinde.scopes import check_needs, undo_needs
from migrator.mapping import MappingOptions
from migrator.report_files import run_dir
from migrator.request_log import REQUESTS_LOG, RequestLog
from migrator.stages.catchup import since_ms
from migrator.stages.context import RunContext
from migrator.stages.imported import absent_from_kinde, adopt_imported, gone_from_clerk, refuse_incomplete_import
from migrator.stages.preflight import Intent
from migrator.stages.unchanged import file_fingerprint
from migrator.stages.undo import UNDO_KINDS, plan_undo, planned_counts, undo
from migrator.stages.undo_definitions import kept_categories
from migrator.stages.undo_updates import kept_updates
from migrator.verification import verify_connected

if TYPE_CHECKING:
    from migrator.pipeline import Confirm, Migration
    from migrator.reports import Summary

BASE_MODES = ("run", "sync", "canary", "export")  # runs a catch-up can follow, or an undo take back
FILES_OPTION = "files"  # exporting.FILES_OPTION (not imported: exporting imports the pipeline, which imports this)
EXPORT_MODE = "export"  # an export run: the dashboard import of its files created its users (stages/imported.py)
DEFAULT_SINCE_MODES = ("run", "sync", "export")  # a canary covers a few users: never the default base of a catch-up
FINISHED = (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_FAILURES)


@dataclass(frozen=True)
class Sync:
    """A catch-up (``migrator sync``): what changed in Clerk since ``since_run_id`` began (default: the latest run)."""

    since_run_id: int | None = None
    delete_removed: bool = False
    full: bool = False  # compare every user, not only those Clerk says changed (see ClerkBehaviour)


@dataclass(frozen=True)
class Canary:
    """The full pipeline for a few users: ``sample`` random ones (reproducible by ``seed``) or ``only`` these ids."""

    sample: int | None = None
    seed: int = 1
    only: tuple[str, ...] = ()


@dataclass(frozen=True)
class Undo:
    run_id: int
    dry_run: bool = False


async def start_cutover_run(migration: Migration, action: Sync | Canary, confirm: Confirm) -> Summary:
    """Open a catch-up or canary run and drive it through the ordinary stages."""
    settings, journal = migration.settings, migration.journal
    export = settings.clerk_export
    base = _sync_base(journal, action.since_run_id) if isinstance(action, Sync) else None
    selection = _selection(action) if isinstance(action, Canary) else None
    delete_removed = isinstance(action, Sync) and action.delete_removed
    checked = await migration.check(Intent(verify=isinstance(action, Canary), delete_removed=delete_removed), export)
    if isinstance(action, Sync):
        assert base is not None
        gone = await _learn_imported_users(migration, base) if base.mode == EXPORT_MODE else []
        since = since_ms(base.started_at)
        mode, options = "sync", {"since_ms": since, "delete_removed": action.delete_removed, "full": action.full}
    else:
        base, mode, options = None, "canary", {"selection": selection}
    run = journal.start_run(
        mode=mode,
        fingerprint=settings.fingerprint(),
        summary=settings.mapping_summary(),
        export_path=str(export.resolve()) if export else None,
        export_fingerprint=file_fingerprint(export) if export else None,
        parent_run_id=base.id if base else None,
        run_options=options,
    )
    since = f" since run {base.id} began ({base.started_at})" if base else ""
    migration.emit(Notice(f"run {run.id} started ({mode}{since}); journal {journal.path}"))
    if isinstance(action, Sync) and gone:
        _record_gone_before_import(migration, run, base, gone)
    summary = await migration.drive(run, confirm, checked)
    if mode == "canary" and not summary.cancelled:
        await _verify_canary(migration, run, summary)
    return summary


async def _verify_canary(migration: Migration, run: Run, summary: Summary) -> None:
    """Read the canary's users back from Kinde: its verdict is part of its exit code; verify.csv is its report."""
    ctx = RunContext(
        migration.settings, migration.journal, migration.clerk, migration.kinde, migration.emit, run, migration.options
    )
    try:
        result = await verify_connected(ctx)
    except MigratorError as exc:
        exc.hint = f"run {run.id} is written; verify it with `migrator verify {run.id}`"
        raise
    summary.verification = {k: v for k, v in result.to_json().items() if k in ("verify_id", "verdict", "counts")}
    summary.reports["verify"] = result.reports["verify"]
    level = "info" if result.passed else "warning"
    migration.emit(Notice(f"canary run {run.id} verified against Kinde: {summary.verification['verdict']}", level))


async def _learn_imported_users(migration: Migration, base: Run) -> list[str]:
    """A catch-up after an export: the Kinde id of each imported user, and every exported user still in Clerk
    in Kinde first; returns those deleted from Clerk before they reached Kinde (accounted for, not refused).

    One absent is refused rather than created: its file may still be importing (a duplicate), or rejected
    (the operator decides); nor is it taken for deleted. ``not-in-kinde.csv`` lists who, for ``--only-file``."""
    ctx = RunContext(
        migration.settings, migration.journal, migration.clerk, migration.kinde, migration.emit, base, migration.options
    )
    recorded = await adopt_imported(ctx, base.id)
    if recorded:
        migration.emit(Notice(f"{recorded} user(s) of export run {base.id} found in Kinde (created by its import)"))
    gone = await gone_from_clerk(ctx, base.id)
    absent = absent_from_kinde(ctx, base.id, gone)
    if absent.total:
        raise refuse_incomplete_import(base.id, absent)
    return gone


def _record_gone_before_import(migration: Migration, run: Run, base: Run, gone: list[str]) -> None:
    """Exported users deleted from Clerk before they reached Kinde: journaled (and counted in the plan) as
    accounted for, so no later catch-up asks about them again."""
    migration.journal.add_deletions(run.id, "user", [(clerk_id, "") for clerk_id in gone], DeletionState.NOT_IN_KINDE)
    migration.emit(
        Notice(
            f"{len(gone)} user(s) of export run {base.id} were deleted from Clerk before their import reached Kinde:"
            " nothing to delete, nothing to create"
        )
    )


def _sync_base(journal: Journal, run_id: int | None) -> Run:
    base = journal.run(run_id) if run_id is not None else journal.latest_run(DEFAULT_SINCE_MODES)
    if base is None:
        raise JournalError("no run to catch up on: start with `migrator run`")
    if base.mode not in BASE_MODES:
        raise JournalError(
            f"run {base.id} is a {base.mode}: a catch-up follows a run, a catch-up, a canary or an export"
        )
    _require_files(base)
    if base.status not in FINISHED:
        raise JournalError(
            f"run {base.id} is {base.status}: finish it first (`migrator resume {base.id}`); a catch-up since an"
            " unfinished run could miss users"
        )
    return base


def _require_files(base: Run) -> None:
    """An export run counts as a base only once it wrote import files (``export --dry-run`` wrote none)."""
    if base.mode == EXPORT_MODE and not (base.run_options or {}).get(FILES_OPTION):
        raise JournalError(
            f"run {base.id} is an export that wrote no import files (a --dry-run, or not finished): nothing of it"
            f" can be in Kinde; `migrator export --out DIR --resume --run {base.id}` writes them"
        )


def _selection(action: Canary) -> dict[str, Any]:
    if action.only:
        return {"only": sorted(set(action.only))}
    if action.sample is None or action.sample < 1:
        raise InputError("--sample must be a positive number of users")
    return {"sample": action.sample, "seed": action.seed}


# -- undo ----------------------------------------------------------------------------------------


@dataclass
class UndoSummary:
    run_id: int | None  # None for a dry run (nothing recorded)
    base_run_id: int
    planned: dict[str, int] = field(default_factory=dict)  # kind -> items to delete
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> state -> count
    kept: list[str] = field(default_factory=list)
    dry_run: bool = False
    cancelled: bool = False
    already_done: bool = False
    requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.cancelled:
            return EXIT_INTERRUPTED
        failed = any(states.get(DeletionState.FAILED, 0) for states in self.outcomes.values())
        return EXIT_FAILURES if failed else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}


ConfirmUndo = Callable[[dict[str, int]], bool]


async def run_undo(
    settings: Settings,
    journal: Journal,
    action: Undo,
    *,
    on_event: Emit,
    confirm: ConfirmUndo,
    clerk_transport: httpx.AsyncBaseTransport | None = None,
    kinde_transport: httpx.AsyncBaseTransport | None = None,
) -> UndoSummary:
    """Delete what run ``action.run_id`` created; continue an undo of it that stopped; a no-op once done."""
    started = time.monotonic()
    base = journal.run(action.run_id)
    if base.mode not in BASE_MODES:
        raise JournalError(f"run {base.id} is a {base.mode}: it created nothing to undo")
    _require_files(base)
    previous = journal.child_run(base.id, "undo")
    if previous is not None and previous.status in FINISHED and not _open_items(journal, previous.id):
        on_event(Notice(f"run {base.id} was already undone by run {previous.id}: nothing to do"))
        return UndoSummary(previous.id, base.id, outcomes=_outcomes(journal, previous.id), already_done=True)
    if action.dry_run and base.mode != EXPORT_MODE:
        return _planned_undo(journal, base)
    log = RequestLog()  # the undo run's requests.jsonl, once it is known (a dry run records none)
    transports = {"clerk_transport": clerk_transport, "kinde_transport": kinde_transport, "request_log": log}
    async with connect(settings, **transports) as (clerk, kinde):
        if base.mode == EXPORT_MODE:
            await _adopt_for_undo(RunContext(settings, journal, clerk, kinde, on_event, base, MappingOptions()))
        if action.dry_run:
            return _planned_undo(journal, base)
        if previous is None:  # the scopes checked before the undo is recorded (a resumed one checks its own list)
            await kinde.tokens.token()
            check_needs(kinde.tokens.scopes, undo_needs(planned_counts(journal, base.id)))
        run = previous or _start_undo(settings, journal, base)
        log.attach(run_dir(settings.state_dir, run.id) / REQUESTS_LOG)
        journal.reopen_run(run.id)
        ctx = RunContext(settings, journal, clerk, kinde, on_event, run, MappingOptions())
        summary = await _drive_undo(ctx, base, confirm)
        summary.requests = {client.service: client.stats.requests for client in (clerk, kinde)}
    summary.seconds = round(time.monotonic() - started, 3)
    return summary


def _planned_undo(journal: Journal, base: Run) -> UndoSummary:
    planned = planned_counts(journal, base.id)
    kept = kept_updates(journal, base.id) + kept_categories(journal, base.id)
    return UndoSummary(None, base.id, planned=planned, kept=kept, dry_run=True)


async def _adopt_for_undo(ctx: RunContext) -> None:
    """An export run's users were created by its import: ours by provenance once Kinde names them
    (``provided_id`` = a Clerk id it exported), so the undo learns their Kinde ids first. Users not (yet)
    imported are not in Kinde: nothing to delete. Its organizations came from Kinde's organization import:
    nothing says they were new, so they stay."""
    if recorded := await adopt_imported(ctx, ctx.run.id):
        ctx.emit(Notice(f"{recorded} user(s) of export run {ctx.run.id} found in Kinde (created by its import)"))
    if ctx.journal.organizations(ctx.run.id):
        ctx.emit(
            Notice(
                f"the organizations of export run {ctx.run.id} came from Kinde's organization import: the undo"
                " leaves them (nothing records that they were new); delete them in Kinde if they were",
                level="warning",
            )
        )


def _start_undo(settings: Settings, journal: Journal, base: Run) -> Run:
    return journal.start_run(
        mode="undo",
        fingerprint=settings.fingerprint(),
        summary=settings.mapping_summary(),
        export_path=None,
        export_fingerprint=None,
        parent_run_id=base.id,
    )


async def _drive_undo(ctx: RunContext, base: Run, confirm: ConfirmUndo) -> UndoSummary:
    journal, run = ctx.journal, ctx.run
    ctx.emit(Notice(f"run {run.id} (undo of run {base.id}); journal {journal.path}"))
    try:
        planned = plan_undo(ctx, base.id)
        await _check_undo_scopes(ctx, planned)
        if any(planned.values()) and not confirm(planned):
            ctx.emit(Notice(f"nothing was deleted: the operator declined (`migrator undo {base.id}` asks again)"))
            journal.end_run(run.id, RunStatus.CANCELLED)
            return UndoSummary(run.id, base.id, planned=planned, cancelled=True)
        await undo(ctx)
    except (asyncio.CancelledError, KeyboardInterrupt):
        journal.mark_run(run.id, RunStatus.INTERRUPTED)
        raise
    except MigratorError as exc:
        exc.hint = f"the journal is saved: `migrator undo {base.id}` continues where this stopped"
        journal.mark_run(run.id, RunStatus.FAILED)
        raise
    outcomes = _outcomes(journal, run.id)
    failed = any(states.get(DeletionState.FAILED, 0) for states in outcomes.values())
    journal.end_run(run.id, RunStatus.COMPLETED_WITH_FAILURES if failed else RunStatus.COMPLETED)
    kept = [
        f"{kind} {row['key']}: {row['detail']}"
        for kind in UNDO_KINDS
        for row in journal.deletions(run.id, kind, (DeletionState.KEPT,))
    ]
    return UndoSummary(run.id, base.id, planned=planned, outcomes=outcomes, kept=kept)


async def _check_undo_scopes(ctx: RunContext, planned: dict[str, int]) -> None:
    """Before asking: refuse a token known to lack a scope the planned deletions need (unknown: let through)."""
    await ctx.kinde.tokens.token()
    check_needs(ctx.kinde.tokens.scopes, undo_needs(planned))


def _outcomes(journal: Journal, run_id: int) -> dict[str, dict[str, int]]:
    return journal.deletion_counts(run_id)


def _open_items(journal: Journal, run_id: int) -> bool:
    open_states = (DeletionState.PENDING, DeletionState.FAILED)
    return any(journal.deletions(run_id, kind, open_states) for kind in UNDO_KINDS)


def undo_status(journal: Journal, run_id: int) -> dict[str, Any]:
    """What ``status`` shows of an undo run (it has no users of its own): its deletions by kind and state in
    the order the undo takes them, and each item it kept or failed on, with why."""
    counts = journal.deletion_counts(run_id)
    return {
        "base_run_id": journal.run(run_id).parent_run_id,
        "deletions": [{"kind": kind, "states": counts[kind]} for kind in UNDO_KINDS if kind in counts],
        **{
            str(state): [
                {"kind": kind, "key": row["key"], "detail": row["detail"]}
                for kind in UNDO_KINDS
                for row in journal.deletions(run_id, kind, (state,))
            ]
            for state in (DeletionState.KEPT, DeletionState.FAILED)
        },
    }


def cutover_counts(journal: Journal, run_id: int) -> dict[str, Any]:
    """A catch-up's updates and a catch-up's or undo's deletions, by state (``status``)."""
    return {"updates": journal.update_counts(run_id), "deletions": journal.deletion_counts(run_id)}


def run_chain(journal: Journal) -> list[dict[str, Any]]:
    """Every run with its base (``status`` shows how catch-ups and undos hang together)."""
    return [
        {"id": r.id, "mode": r.mode, "status": r.status, "started_at": r.started_at, "parent_run_id": r.parent_run_id}
        for r in journal.runs()
    ]
