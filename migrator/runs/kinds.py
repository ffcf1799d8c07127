"""The kinds of run, each a small strategy: its mode in the journal, its fetch stage, what its preflight
must prove the token may do (its needs), and the command that continues it once stopped.

The stages a kind goes through are its module's (``migration.py``: run, dry run; ``cutover.py``:
catch-up, canary, the same stages after another fetch; ``export.py``; ``undo.py``); the lifecycle
around them is ``lifecycle.carry``'s, the same for all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from migrator.journal import Run, RunMode
from migrator.stages.canary import fetch_selected
from migrator.stages.catchup import catch_up
from migrator.stages.context import RunContext
from migrator.stages.fetch import fetch
from migrator.stages.lazy_finish import fetch_cohort
from migrator.stages.preflight import Intent

Fetch = Callable[[RunContext], Awaitable[None]]


@dataclass(frozen=True)
class RunKind:
    mode: RunMode
    fetch: Fetch | None  # how it reads Clerk's users (None: it reads none, an undo)
    continued_by: str | None  # the command that continues it ({run}, {base}); None: nothing to continue
    writes_users: bool = True
    verifies: bool = False  # a canary reads its users back from Kinde once written

    def needs(self, *, delete_removed: bool = False, create_roles: bool = False) -> Intent:
        """What this kind's preflight checks the token for (kinde/scopes.py turns the work into scopes)."""
        return Intent(
            writes_users=self.writes_users, verify=self.verifies, delete_removed=delete_removed, create_roles=create_roles
        )

    def continuation(self, run: Run) -> str | None:
        if self.continued_by is None:
            return None
        return self.continued_by.format(run=run.id, base=run.parent_run_id)


RESUME = "migrator resume {run}"
KINDS = {
    kind.mode: kind
    for kind in (
        RunKind(RunMode.RUN, fetch, RESUME),
        RunKind(RunMode.DRY_RUN, fetch, None, writes_users=False),
        RunKind(RunMode.CANARY, fetch_selected, RESUME, verifies=True),
        RunKind(RunMode.SYNC, catch_up, RESUME),
        RunKind(RunMode.EXPORT, fetch, "migrator export --out DIR --resume --run {run}", writes_users=False),
        RunKind(RunMode.UNDO, None, "migrator undo {base}"),
        RunKind(RunMode.LAZY_FINISH, fetch_cohort, "migrator lazy finish {base}"),
    )
}


def kind_of(run: Run) -> RunKind:
    return KINDS[run.mode]
