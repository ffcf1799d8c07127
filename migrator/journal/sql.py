"""The predicates several queries share, named once. Each is a SQL fragment over a table alias; the
values it compares with are the enums' own constants, never input."""

from __future__ import annotations

from migrator.journal.states import Created, DeletionState, RunMode, RunStatus

# the workflow's users count as ours once `lazy finish` adopted them (their provided_id is the Clerk id)
_CREATED_BY_US = f"('{Created.CREATED}', '{Created.EARLIER}', '{Created.WORKFLOW}')"


def real_run(run: str = "r") -> str:
    """The run aliased ``run`` may have written to Kinde: not a dry run."""
    return f"{run}.mode != '{RunMode.DRY_RUN}'"


def in_kinde_by_us(user: str = "u") -> str:
    """The user row aliased ``user`` holds a Kinde user this journal created (this run or an earlier one)."""
    return f"{user}.created IN {_CREATED_BY_US} AND {user}.kinde_id IS NOT NULL"


def user_deletion(clerk_id: str, *states: DeletionState) -> str:
    """A ``deletions`` row of the Clerk user ``clerk_id`` (a column) in one of ``states`` exists, in any run:
    the user is gone (deleted, already gone, listed, or never reached Kinde), as the caller asks."""
    listed = ", ".join(f"'{state}'" for state in states)
    return f"EXISTS (SELECT 1 FROM deletions d WHERE d.kind = 'user' AND d.key = {clerk_id} AND d.state IN ({listed}))"


def undo_of(run_id: str, *, started: bool = False) -> str:
    """An undo run based on the run ``run_id`` (a column) exists (``started``: one not cancelled)."""
    status = f" AND un.status != '{RunStatus.CANCELLED}'" if started else ""
    return f"EXISTS (SELECT 1 FROM runs un WHERE un.parent_run_id = {run_id} AND un.mode = '{RunMode.UNDO}'{status})"


# Gone for good: Kinde confirmed the delete, or proved the user absent.
GONE = (DeletionState.DELETED, DeletionState.GONE)

# another real run of this journal created a Kinde user for the ``users`` row's Clerk id
CREATED_ELSEWHERE = (
    "EXISTS (SELECT 1 FROM users o JOIN runs r ON r.id = o.run_id WHERE o.clerk_id = users.clerk_id"
    f" AND o.run_id != users.run_id AND {real_run()} AND o.created = '{Created.CREATED}' AND o.kinde_id IS NOT NULL)"
)
