"""Run records that tell the truth: what a finished run left to do (answered from the journal alone,
before anything connects), and the list of runs with their kind, state, counts and times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrator.errors import EXIT_FAILURES
from migrator.journal import DeletionState, Journal, Run, RunMode, RunStatus
from migrator.stages.undo import UNDO_KINDS

FINISHED = (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_FAILURES)
RESUMABLE_MODES = (RunMode.RUN, RunMode.SYNC, RunMode.CANARY, RunMode.LAZY_FINISH)  # the others explain themselves in Migration.reopen (runs/migration.py)


@dataclass(frozen=True)
class NothingToDo:
    """A finished run that ``resume`` or ``retry-failed`` would not change: say so, touch nothing."""

    run: Run
    message: str

    @property
    def exit_code(self) -> int:
        return 0 if self.run.status == RunStatus.COMPLETED else EXIT_FAILURES

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run.id, "status": self.run.status, "nothing_to_do": self.message}


def nothing_to_do(journal: Journal, run_id: int | None, *, failed_only: bool) -> NothingToDo | None:
    """None when the run has work left for this command (or is not finished: the command decides)."""
    run = journal.runs.get(run_id)
    if run.status not in FINISHED or run.mode not in RESUMABLE_MODES or not run.fetch_done:
        return None
    states = journal.users.step_counts(run.id).get("state", {})
    failed, pending = states.get("failed", 0), states.get("pending", 0)
    failed_memberships = len(journal.organizations.failed_memberships(run.id))
    if pending or failed_memberships or (failed_only and failed):
        return None
    if failed:
        return NothingToDo(
            run, f"run {run.id} finished; {failed} user(s) failed: `migrator retry-failed {run.id}` retries them"
        )
    what = "nothing failed, so nothing to retry" if failed_only else "nothing to resume"
    return NothingToDo(run, f"run {run.id} is {run.status}: {what} (the run is left as it was)")


def kind_of(run: Run) -> str:
    """The run's kind as the operator thinks of it: a declined run is not a failed one."""
    return run.mode


def state_of(run: Run) -> str:
    return "declined" if run.status == RunStatus.CANCELLED else run.status


def run_rows(journal: Journal) -> list[dict[str, Any]]:
    """Every run of the journal, oldest first: id, kind, state, user counts, start and end."""
    rows = []
    for run in journal.runs.all():
        states = journal.users.step_counts(run.id).get("state", {})
        rows.append(
            {
                "id": run.id,
                "kind": kind_of(run),
                "state": state_of(run),
                "users": sum(states.values()),
                "done": states.get("done", 0),
                "failed": states.get("failed", 0),
                "skipped": states.get("skipped", 0),
                "pending": states.get("pending", 0),
                "started_at": run.started_at,
                "ended_at": run.ended_at,
                "parent_run_id": run.parent_run_id,
            }
        )
    return rows


def undo_status(journal: Journal, run_id: int) -> dict[str, Any]:
    """What ``status`` shows of an undo run (it has no users of its own): its deletions by kind and state in
    the order the undo takes them, and each item it kept or failed on, with why."""
    counts = journal.cutover.deletion_counts(run_id)
    return {
        "base_run_id": journal.runs.get(run_id).parent_run_id,
        "deletions": [{"kind": kind, "states": counts[kind]} for kind in UNDO_KINDS if kind in counts],
        **{
            str(state): [
                {"kind": kind, "key": row.key, "detail": row.detail}
                for kind in UNDO_KINDS
                for row in journal.cutover.deletions(run_id, kind, (state,))
            ]
            for state in (DeletionState.KEPT, DeletionState.FAILED)
        },
    }


def cutover_counts(journal: Journal, run_id: int) -> dict[str, Any]:
    """A catch-up's updates and a catch-up's or undo's deletions, by state (``status``)."""
    return {"updates": journal.cutover.update_counts(run_id), "deletions": journal.cutover.deletion_counts(run_id)}


def run_chain(journal: Journal) -> list[dict[str, Any]]:
    """Every run with its base (``status`` shows how catch-ups and undos hang together)."""
    return [
        {"id": r.id, "mode": r.mode, "status": r.status, "started_at": r.started_at, "parent_run_id": r.parent_run_id}
        for r in journal.runs.all()
    ]
