"""A journaled run carried through its stages, the same way for every kind of run.

The order, once the kind's check has passed (``session.check``: local inputs, Clerk, Kinde's token,
the run's work -> scopes) and the run is recorded or found: its requests logged to its folder,
Clerk's count recorded, the run reopened (a resume), a pass begun (``run_passes.py``), then the
kind's stages. Interrupted -> ``interrupted``; an error -> ``failed`` and ``RunStopped`` naming the
command that continues it: the one place a failure gets the operator's next step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from migrator.errors import MigratorError, RunStopped
from migrator.journal import Run, RunStatus
from migrator.run_passes import PassStart, begin_pass
from migrator.runs.kinds import kind_of
from migrator.runs.session import Session
from migrator.stages.context import RunContext
from migrator.stages.export_index import open_export
from migrator.stages.preflight import Checked

T = TypeVar("T")


async def carry(
    session: Session,
    run: Run,
    stages: Callable[[RunContext, PassStart | None], Awaitable[T]],
    *,
    checked: Checked | None = None,
    reopen: Callable[[], None] | None = None,
    pass_kind: str | None = None,
) -> T:
    """Run ``stages`` over ``run``; once stopped, its kind names the command that continues it (a dry run:
    none). ``pass_kind``: the pass this is (a run's counts are kept per pass)."""
    ctx = session.context(run)
    session.attach_request_log(run)
    if checked is not None:
        session.journal.runs.record_source_count(run.id, checked.source_count)
    if reopen is not None:
        reopen()
    this_pass = begin_pass(session.journal, run.id, pass_kind) if pass_kind else None
    try:
        if run.export_path:
            ctx.export = open_export(Path(run.export_path))
        return await stages(ctx, this_pass)
    except (asyncio.CancelledError, KeyboardInterrupt):
        session.journal.runs.mark(run.id, RunStatus.INTERRUPTED)
        raise
    except MigratorError as exc:
        session.journal.runs.mark(run.id, RunStatus.FAILED)
        continued_by = kind_of(run).continuation(run)
        if continued_by is None:
            raise
        raise RunStopped(exc, f"the journal is saved: `{continued_by}` continues where this stopped") from exc
    finally:
        if ctx.export is not None:
            ctx.export.close()
