"""``migrator verify --fresh``: re-read Clerk's users and stage their plans for verify to compare against.

The fetch stage's pager and mapping (with the run's settings) produce each user's plan as it is in
Clerk now; plans go page by page into the journal's ``verify_plans`` (memory stays flat), where the
comparison prefers them to the plans the run staged. Password material is not read: verify cannot
see passwords in Kinde, and the export may be gone.
"""

from __future__ import annotations

from migrator.events import PhaseAdvanced, PhaseFinished, PhaseStarted
from migrator.journal import UserState
from migrator.stages.context import RunContext, Ticker
from migrator.stages.staging import staged_row

FRESH_PHASE = "Re-read Clerk users"


async def stage_fresh_plans(ctx: RunContext, verify_id: int) -> int:
    """Every Clerk user, mapped now, into ``verify_plans``; returns how many were read."""
    ctx.emit(PhaseStarted(FRESH_PHASE, None))
    read, ticker = 0, Ticker()
    async for page in ctx.clerk.iter_user_pages():
        plans = []
        for user in page:
            row, _ = staged_row(user, 0, None, ctx.options, None)
            plans.append((user["id"], None if row["state"] == UserState.SKIPPED else row["plan"]))
        ctx.journal.verify.store_fresh_plans(verify_id, plans)
        read += len(page)
        if ticker.due():
            ctx.emit(PhaseAdvanced(FRESH_PHASE, read))
            ctx.emit_pacing()
    ctx.emit(PhaseAdvanced(FRESH_PHASE, read))
    ctx.emit(PhaseFinished(FRESH_PHASE))
    return read
