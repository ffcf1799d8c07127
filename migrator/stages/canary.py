"""Stage (canary runs, ``migrator run --sample N`` / ``--only``): fetch just the chosen users.

Reads: the run's selection (``run_options``). Writes: the chosen users staged, their organizations
(only those one of them belongs to), roles and memberships. Emits: the ``fetch`` phase.

``--only`` asks Clerk for those ids (100 per request); an id Clerk does not have is a finding that
makes the run exit 1. ``--sample N --seed S`` pages every user once and keeps the N whose
``sha256(seed:id)`` is smallest: the same N for the same seed, however the pages fall.

Shared identities are settled as a full run settles them: the Clerk users outside the selection who
share one with it are found (``stages.shared_holders``) and take part in choosing each keeper.
"""

from __future__ import annotations

import hashlib
import heapq
from typing import Any

from migrator.events import Notice, PhaseAdvanced, PhaseFinished, PhaseStarted
from migrator.stages.context import RunContext
from migrator.stages.fetch import fetch_organizations
from migrator.stages.shared_holders import fetch_order, held_in_kinde, outside_keys, shared_holders
from migrator.stages.staging import Problem, staged_row

BATCH = 100  # user_id values per request (the spec's limit)


def sample_rank(seed: int, clerk_id: str) -> str:
    """A user's place in the sample order for ``seed``: stable, independent of paging."""
    return hashlib.sha256(f"{seed}:{clerk_id}".encode()).hexdigest()


async def fetch_selected(ctx: RunContext) -> None:
    selection = (ctx.run.run_options or {}).get("selection") or {}
    ctx.emit(PhaseStarted("fetch", None))
    if selection.get("only"):
        users = await _only(ctx, list(selection["only"]))
    else:
        users = await _sample(ctx, int(selection["sample"]), int(selection.get("seed", 1)))
    await stage_selected(ctx, users)


async def stage_selected(ctx: RunContext, users: list[dict[str, Any]]) -> None:
    """Stage the chosen Clerk users (a canary's, a `lazy finish`'s cohort) at their places among every Clerk user,
    shared identities settled over all of Clerk; their organizations, roles and memberships only."""
    holders = await shared_holders(ctx, users)  # the keeper of a shared identity is chosen over them too
    seq_of = {user["id"]: seq for seq, user in enumerate(sorted([*users, *holders], key=fetch_order))}
    users.sort(key=fetch_order)
    rows, problems = _stage_rows(ctx, users, seq_of)
    ctx.outside_keys = outside_keys(ctx, holders, seq_of)
    ctx.held_keys = held_in_kinde(ctx.journal, (user["id"] for user in holders))  # never taken off a migrated user
    with ctx.journal.transaction():
        ctx.journal.users.stage(ctx.run.id, rows)
        ctx.journal.users.add_problems(ctx.run.id, problems)
    ctx.emit(PhaseAdvanced("fetch", len(users), len(users)))
    if ctx.settings.migrate_organizations:
        await fetch_organizations(ctx)
        ctx.journal.organizations.drop_unselected(ctx.run.id)
    ctx.journal.runs.record_source_count(ctx.run.id, len(users))
    ctx.emit(PhaseFinished("fetch"))


def _stage_rows(
    ctx: RunContext, users: list[dict[str, Any]], seq_of: dict[str, int]
) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The chosen users' rows, each at its place among every user ``seq_of`` ranks (a full run's order)."""
    export_path = ctx.export.path if ctx.export else None
    rows, problems = [], []
    for user in users:
        row, found = staged_row(user, seq_of[user["id"]], ctx.export_row(user["id"]), ctx.options, export_path)
        rows.append(row)
        problems.extend(found)
    return rows, problems


async def _only(ctx: RunContext, ids: list[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for start in range(0, len(ids), BATCH):
        found.extend(await ctx.clerk.users_by_id(ids[start : start + BATCH]))
    missing = sorted(set(ids) - {u["id"] for u in found})
    if missing:
        message = f"{len(missing)} of the users asked for are not in Clerk: {', '.join(missing[:10])}"
        ctx.notes.append(message)
        ctx.emit(Notice(message, level="warning"))
    return found


async def _sample(ctx: RunContext, size: int, seed: int) -> list[dict[str, Any]]:
    """The ``size`` users of lowest rank, keeping only that many in memory while paging."""
    kept: list[tuple[str, str, dict[str, Any]]] = []  # the largest rank on top (ranks inverted)
    kept_ids: set[str] = set()
    async for page in ctx.clerk.iter_user_pages():
        for user in page:
            if user["id"] in kept_ids:
                continue  # a page shifted: the same user twice (one rejected before is rejected again)
            entry = (_invert(sample_rank(seed, user["id"])), user["id"], user)
            if len(kept) < size:
                heapq.heappush(kept, entry)
            elif entry > kept[0]:
                kept_ids.discard(heapq.heapreplace(kept, entry)[1])
            else:
                continue
            kept_ids.add(user["id"])
    return [user for _, _, user in kept]


def _invert(rank: str) -> str:
    """A string that sorts in the opposite order of ``rank`` (hex of the same length): heapq is a min-heap."""
    return format((1 << (4 * len(rank))) - 1 - int(rank, 16), f"0{len(rank)}x")
