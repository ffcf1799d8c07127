"""A run's lazy window stays open until `migrator lazy finish` closes it: no new run may write over it.

A new full run or canary while the window is open (or an export, once its files are imported) would create the cohort's pending users under its own policy
(a reset, say), closing their window silently: nobody adopted, the workflow's moves left out. With the lazy policy
too it would open a second window over the same users, and each window's `lazy finish` would take the other's
creations for moves. So both are refused before anything is written (the journal alone decides: a local check);
a catch-up (`migrator sync`) of the run is the way to follow Clerk's changes meanwhile, and keeps the cohort lazy.
"""

from __future__ import annotations

from migrator.errors import JournalError
from migrator.events import Emit, Notice
from migrator.journal import Journal


def open_window_message(journal: Journal, what: str, policy: str) -> str | None:
    """Why ``what`` (a new run or canary with ``policy``) cannot start while a lazy window is open; None if none is."""
    windows = journal.users.open_lazy_windows()
    if not windows:
        return None
    run_id, cohort = windows[-1]
    others = f" (and of run(s) {', '.join(str(r) for r, _ in windows[:-1])})" if len(windows) > 1 else ""
    opened = (
        f"the lazy window of run {run_id}{others} is open: {cohort} user(s) of its cohort were left to Kinde's"
        f" workflow and no `migrator lazy finish {run_id}` has closed it"
    )
    if policy == "lazy":
        why = (
            f"{what} with the lazy policy would open a second window over the same users, and each window's"
            " `lazy finish` would take the other's creations for moves"
        )
    else:
        why = (
            f"{what} would create those not yet moved with the {policy!r} password policy, closing their window"
            " without adopting whom the workflow moved"
        )
    return (
        f"{opened}; {why}. Close it first: `migrator lazy status {run_id}`, then `migrator lazy finish {run_id}`;"
        f" to follow Clerk's changes while it stays open, `migrator sync` (it keeps the cohort lazy)"
    )


def refuse_while_window_open(journal: Journal, what: str, policy: str, *, dry_run: bool, emit: Emit) -> None:
    """Raise (exit 2, nothing written) when a lazy window is open; a dry run, which writes nothing, is warned."""
    message = open_window_message(journal, what, policy)
    if message is None:
        return
    if dry_run:
        emit(Notice(f"a real run would be refused: {message}", level="warning"))
        return
    raise JournalError(message)
