"""Stages 2-4 together: index the export, fetch and stage Clerk users, settle shared identities.

What every kind of run does before it decides anything (a migration run, a dry run, an export of
import files). Marks the fetch done only when every Clerk user was accounted for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from migrator.events import Notice
from migrator.journal import RunMode
from migrator.stages.catchup_conflicts import drop_lost_additions
from migrator.stages.conflicts import settle_shared
from migrator.stages.context import RunContext
from migrator.stages.export_index import index_export


async def gather(ctx: RunContext, fetch: Callable[[RunContext], Awaitable[None]]) -> None:
    """``fetch``: the run kind's (runs/kinds.py): every Clerk user, a catch-up's changes, a canary's few."""
    run, journal = ctx.run, ctx.journal
    if run.fetch_done:
        return
    if ctx.export is not None and journal.exports.count(run.id) == 0:
        index_export(ctx)
    await fetch(ctx)
    settle_conflicts(ctx)
    if not ctx.notes:
        journal.runs.record_fetch_done(run.id)


def settle_conflicts(ctx: RunContext) -> None:
    policy = ctx.settings.duplicate_identities
    settled = settle_shared(
        ctx.journal, ctx.run.id, policy, ctx.outside_keys, held=ctx.held_keys, rank=ctx.conflict_rank
    )
    if settled.shared:
        ctx.emit(
            Notice(
                f"{settled.shared} identities are shared by several Clerk users; {settled.skipped} user(s) skipped"
                f" (policy {policy}); see `migrator status` for who",
                level="warning",
            )
        )
    if settled.left_in_kinde:
        ctx.emit(
            Notice(
                f"{settled.left_in_kinde} shared identities stay with the migrated user holding them in Kinde, though"
                f" policy {policy} would give them to another: nothing is taken off a migrated user"
                " (`migrator status` lists who; move them by hand if needed)",
                level="warning",
            )
        )
    if ctx.run.mode == RunMode.SYNC:
        drop_lost_additions(ctx, settled.outside_lost)
