"""``migrator undo``: delete what one run created (a rehearsal taken back out of a real tenant).

An undo is a run of its own (mode ``undo``, ``parent_run_id`` = the run it takes back), resumable:
``migrator undo N`` again continues it, and is a no-op once everything is deleted or kept with why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from migrator.config import Settings
from migrator.errors import EXIT_FAILURES, EXIT_INTERRUPTED, EXIT_OK, JournalError
from migrator.events import Emit, Notice
from migrator.journal import DeletionState, Journal, Run, RunMode, RunStatus
from migrator.kinde.scopes import check_needs, undo_needs
from migrator.runs import modes
from migrator.runs.actions import Undo
from migrator.runs.cutover import FINISHED, require_files
from migrator.runs.lifecycle import carry
from migrator.runs.session import Session, open_session
from migrator.stages.context import RunContext
from migrator.stages.imported import adopt_imported
from migrator.stages.undo import UNDO_KINDS, plan_undo, planned_counts, undo
from migrator.stages.undo_definitions import kept_categories
from migrator.stages.undo_updates import kept_updates


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
    base = journal.runs.get(action.run_id)
    if base.mode not in modes.BASE_MODES:
        raise JournalError(f"run {base.id} is a {base.mode}: it created nothing to undo")
    require_files(base)
    previous = journal.runs.child(base.id, RunMode.UNDO)
    if previous is not None and previous.status in FINISHED and not _open_items(journal, previous.id):
        on_event(Notice(f"run {base.id} was already undone by run {previous.id}: nothing to do"))
        return UndoSummary(previous.id, base.id, outcomes=journal.cutover.deletion_counts(previous.id), already_done=True)
    if action.dry_run and base.mode != RunMode.EXPORT:
        return _planned_undo(journal, base)
    async with open_session(settings, journal, on_event, clerk_transport, kinde_transport) as session:
        if base.mode == RunMode.EXPORT:
            await _adopt_for_undo(session.context(base))
        if action.dry_run:
            return _planned_undo(journal, base)
        if previous is None:  # the scopes checked before the undo is recorded (a resumed one checks its own list)
            await _check_undo_scopes(session, planned_counts(journal, base.id))
        run = previous or _start_undo(settings, journal, base)
        journal.runs.reopen(run.id)

        async def stages(ctx: RunContext, _: object) -> UndoSummary:
            return await _undo_stages(session, ctx, base, confirm)

        summary = await carry(session, run, stages)
        summary.requests = session.request_counts()
        summary.seconds = round(time.monotonic() - session.started, 3)
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
    if ctx.journal.organizations.all(ctx.run.id):
        ctx.emit(
            Notice(
                f"the organizations of export run {ctx.run.id} came from Kinde's organization import: the undo"
                " leaves them (nothing records that they were new); delete them in Kinde if they were",
                level="warning",
            )
        )


def _start_undo(settings: Settings, journal: Journal, base: Run) -> Run:
    return journal.runs.start(
        mode=RunMode.UNDO,
        fingerprint=settings.fingerprint(),
        summary=settings.mapping_summary(),
        export_path=None,
        export_fingerprint=None,
        parent_run_id=base.id,
    )


async def _undo_stages(session: Session, ctx: RunContext, base: Run, confirm: ConfirmUndo) -> UndoSummary:
    journal, run = ctx.journal, ctx.run
    ctx.emit(Notice(f"run {run.id} (undo of run {base.id}); journal {journal.path}"))
    planned = plan_undo(ctx, base.id)
    await _check_undo_scopes(session, planned)
    if any(planned.values()) and not confirm(planned):
        ctx.emit(Notice(f"nothing was deleted: the operator declined (`migrator undo {base.id}` asks again)"))
        journal.runs.end(run.id, RunStatus.CANCELLED)
        return UndoSummary(run.id, base.id, planned=planned, cancelled=True)
    await undo(ctx)
    outcomes = journal.cutover.deletion_counts(run.id)
    failed = any(states.get(DeletionState.FAILED, 0) for states in outcomes.values())
    journal.runs.end(run.id, RunStatus.COMPLETED_WITH_FAILURES if failed else RunStatus.COMPLETED)
    kept = [
        f"{kind} {row.key}: {row.detail}"
        for kind in UNDO_KINDS
        for row in journal.cutover.deletions(run.id, kind, (DeletionState.KEPT,))
    ]
    return UndoSummary(run.id, base.id, planned=planned, outcomes=outcomes, kept=kept)


async def _check_undo_scopes(session: Session, planned: dict[str, int]) -> None:
    """Before asking: refuse a token known to lack a scope the planned deletions need (unknown: let through)."""
    await session.kinde.tokens.token()
    check_needs(session.kinde.tokens.scopes, undo_needs(planned))


def _open_items(journal: Journal, run_id: int) -> bool:
    open_states = (DeletionState.PENDING, DeletionState.FAILED)
    return any(journal.cutover.deletions(run_id, kind, open_states) for kind in UNDO_KINDS)
