"""Stage: prove both sets of credentials before anything else happens.

Fetches the Kinde token (refusing only on scopes it is known to lack: its claims may not list any)
and Clerk's user count (which proves the key and is recorded as the run's source count).
"""

from __future__ import annotations

from migrator.kinde.scopes import check_scopes, feature_scopes, required_scopes
from migrator.stages.context import RunContext


async def preflight(ctx: RunContext) -> None:
    await ctx.kinde.tokens.token()
    settings, options = ctx.settings, ctx.options
    needed = required_scopes(not ctx.run.writes_users, settings.migrate_organizations) | feature_scopes(
        not ctx.run.writes_users,
        user_properties=bool(options.properties),
        organization_properties=bool(options.organization_properties) and settings.migrate_organizations,
        create_properties=settings.create_properties,
        social=bool(options.social_connections),
        role_permissions=settings.migrate_organizations,
    )
    check_scopes(ctx.kinde.tokens.scopes, needed)
    ctx.journal.record_source_count(ctx.run.id, await ctx.clerk.count_users())
