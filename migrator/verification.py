"""``run_verification``: the library entry point of ``migrator verify`` (as ``run_migration`` is of a run).

Connects to Kinde, proves the token carries the read scopes verify needs, and runs the verify stage
over the chosen run of the journal. Clerk is not contacted: the run's staged plans are what Kinde
is compared with.
"""

from __future__ import annotations

import httpx

from migrator.config import Settings
from migrator.connect import connect
from migrator.errors import ApiError, JournalError, ScopeError
from migrator.events import Emit, Notice
from migrator.journal import Journal
from migrator.mapping import MappingOptions
from migrator.stages.context import RunContext
from migrator.stages.verify import Verification, verify

READ_SCOPES = frozenset({"read:users", "read:user_identities"})
ORGANIZATION_READ_SCOPES = frozenset({"read:organization_users"})


async def run_verification(
    settings: Settings,
    journal: Journal,
    run_id: int | None,
    *,
    on_event: Emit,
    clerk_transport: httpx.AsyncBaseTransport | None = None,
    kinde_transport: httpx.AsyncBaseTransport | None = None,
) -> Verification:
    """Read Kinde back and compare it with run ``run_id`` (default: the latest real run)."""
    run = journal.run(run_id)
    if run.dry_run:
        raise JournalError(f"run {run.id} was a dry run: it wrote nothing to Kinde, so there is nothing to verify")

    def on_retry(service: str, error: ApiError, attempt: int) -> None:
        on_event(Notice(f"{service}: retry {attempt} after: {error}"))

    async with connect(
        settings, on_retry=on_retry, clerk_transport=clerk_transport, kinde_transport=kinde_transport
    ) as (clerk, kinde):
        return await verify_connected(RunContext(settings, journal, clerk, kinde, on_event, run, MappingOptions()))


async def verify_connected(ctx: RunContext) -> Verification:
    """Verify ``ctx.run`` over clients already open (a canary verifies itself this way, right after it ran)."""
    journal, run, kinde = ctx.journal, ctx.run, ctx.kinde
    await kinde.tokens.token()
    needed = READ_SCOPES | (ORGANIZATION_READ_SCOPES if journal.organizations(run.id) else frozenset())
    missing = sorted(needed - kinde.tokens.scopes) if kinde.tokens.scopes is not None else []
    if missing:
        raise ScopeError(
            f"verify reads Kinde back and the M2M application lacks scope(s) {', '.join(missing)}: grant them in"
            " Kinde (Settings > Applications > your M2M app > APIs > Kinde Management API > Scopes)",
            scope=missing[0],
            service="Kinde",
            status=403,
        )
    ctx.emit(Notice(f"verifying run {run.id} against Kinde ({journal.expected_user_count(run.id)} users expected)"))
    return await verify(ctx)
