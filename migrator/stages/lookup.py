"""Stage: find the staged users Kinde already has, in batches, so that no run creates a second one.

Reads: pending users not yet looked up (or marked for a recheck after a crash). Writes: each user's
lookup result through :mod:`migrator.stages.reconcile`. Emits: the ``lookup`` phase.

Users are looked up by email when they have one, else by username, else by phone; several
batches are in flight at once, bounded, all in one task group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from migrator.events import PhaseAdvanced, PhaseFinished, PhaseStarted
from migrator.journal import LOOKUP_FIELDS, UserRow
from migrator.kinde.client import lookup_batches
from migrator.stages.context import RunContext, task_group
from migrator.stages.reconcile import record_lookup

CONCURRENCY = 4
CHUNK = 1000  # users read from the journal at a time: never every user at once


async def lookup(ctx: RunContext) -> None:
    todo = ctx.journal.users.to_look_up_count(ctx.run.id)
    if not todo:
        return
    ctx.emit(PhaseStarted("lookup", todo))
    done = 0
    slots = asyncio.Semaphore(CONCURRENCY)

    async def look_up(field_name: str, rows: list[UserRow]) -> None:
        nonlocal done
        try:
            found = await ctx.kinde.find_users(field_name, [r.lookup_key(field_name) for r in rows])
            with ctx.journal.transaction():
                for row in rows:
                    record_lookup(ctx.journal, ctx.run.id, row, field_name, found)
        finally:
            slots.release()
        done += len(rows)
        ctx.emit(PhaseAdvanced("lookup", done, todo))
        ctx.emit_pacing()

    async with task_group() as group:
        for field_name in LOOKUP_FIELDS:
            for batch in _batches(ctx, field_name):
                await slots.acquire()  # at most CONCURRENCY lookups in flight
                group.create_task(look_up(field_name, batch))
    ctx.emit(PhaseFinished("lookup"))


def _batches(ctx: RunContext, field_name: str) -> Iterator[list[UserRow]]:
    """The users to look up by ``field_name``, in groups that fit one lookup request."""
    chunk: list[Any] = []
    for row in ctx.journal.users.to_look_up(ctx.run.id, field_name):
        chunk.append(row)
        if len(chunk) >= CHUNK:
            yield from _split(chunk, field_name)
            chunk = []
    yield from _split(chunk, field_name)


def _split(rows: list[UserRow], field_name: str) -> Iterator[list[UserRow]]:
    for batch in lookup_batches([r.lookup_key(field_name) for r in rows]):
        yield rows[: len(batch)]
        rows = rows[len(batch) :]
