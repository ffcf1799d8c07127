"""Stage: prove both sets of credentials before anything else happens.

Fetches the Kinde token (checking the scopes it is known to carry) and Clerk's user count (which
proves the key and is recorded as the run's source count).
"""

from __future__ import annotations

from migrator.errors import ScopeError
from migrator.stages.context import RunContext

ORGANIZATION_SCOPES = frozenset(
    {"read:roles", "create:roles", "read:organizations", "create:organizations", "create:organization_users"}
)
WRITE_SCOPES = frozenset({"create:users", "update:users", "update:user_passwords"})


async def preflight(ctx: RunContext) -> None:
    await ctx.kinde.tokens.token()
    granted = ctx.kinde.tokens.scopes
    if granted is not None:
        needed = {"read:users"}
        if ctx.run.writes_users:
            needed |= WRITE_SCOPES
            if ctx.settings.migrate_organizations:
                needed |= ORGANIZATION_SCOPES
        missing = sorted(needed - granted)
        if missing:
            raise ScopeError(
                "the Kinde M2M application lacks scope(s) "
                + ", ".join(missing)
                + ": grant them in Kinde (Settings > Applications > your M2M app > APIs > Kinde Management API > Scopes)",
                scope=missing[0],
                service="Kinde",
                status=403,
            )
    ctx.journal.record_source_count(ctx.run.id, await ctx.clerk.count_users())
