"""Clerk external accounts (Google, GitHub...) as Kinde social identities on the mapped connections.

Without them a user who signs in with Google lands in Kinde as a stranger to the migrated account
(or as a second user). Each identity is a create: a 400/409 or an unclear answer is settled by
reading the user's identities before anything is sent again, and a re-attempt reads them first.
"""

from __future__ import annotations

from typing import Any

from migrator.errors import ApiError
from migrator.models import SocialIdentity, UserPlan
from migrator.stages.context import RunContext
from migrator.stages.creates import create_settled


def is_linked(social: SocialIdentity, identities: list[dict[str, Any]]) -> bool:
    """Does Kinde list this social identity (same connection, same email or provider value)?

    An identity listed without ``connection_id`` (the spec has it; Kinde may leave it out) counts when
    it is a social one with the same value.
    """
    wanted = social.value.lower()
    for identity in identities:
        connection = identity.get("connection_id")
        if connection is None and identity.get("type") != "social":
            continue
        if connection is not None and connection != social.connection_id:
            continue
        values = {str(identity.get(name) or "").lower() for name in ("name", "email")}
        if wanted in values:
            return True
    return False


async def link_social_identities(ctx: RunContext, plan: UserPlan, kinde_id: str, *, compare: bool) -> None:
    """Add each mapped external account; with ``compare``, skip those an earlier attempt added."""
    todo = list(plan.social)
    if compare and todo:
        existing = await ctx.kinde.user_identity_records(kinde_id)
        todo = [social for social in todo if not is_linked(social, existing)]
    for social in todo:
        await _link(ctx, social, kinde_id)


async def _link(ctx: RunContext, social: SocialIdentity, kinde_id: str) -> None:
    body = social.to_api()

    async def create() -> bool:
        await ctx.kinde.add_identity(kinde_id, body)
        return True

    async def find(_: ApiError) -> bool | None:
        return True if is_linked(social, await ctx.kinde.user_identity_records(kinde_id)) else None

    reconciled = ctx.reconciled("social identity", f"{kinde_id} {social.connection_id}")
    await create_settled(create, find, attempts=ctx.settings.max_attempts, reconciled=reconciled)
