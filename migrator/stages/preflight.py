"""Stage: prove both sets of credentials before anything else happens.

Fetches the Kinde token (refusing only on scopes it is known to lack: its claims may not list any)
and Clerk's user count (which proves the key and is recorded as the run's source count).
"""

from __future__ import annotations

from migrator.kinde.scopes import check_scopes, required_scopes
from migrator.stages.context import RunContext


async def preflight(ctx: RunContext) -> None:
    await ctx.kinde.tokens.token()
    check_scopes(ctx.kinde.tokens.scopes, required_scopes(ctx.run.dry_run, ctx.settings.migrate_organizations))
    ctx.journal.record_source_count(ctx.run.id, await ctx.clerk.count_users())
