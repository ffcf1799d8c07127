"""Clerk role permissions as Kinde permissions attached to the matching Kinde roles.

Permissions missing in Kinde are created (``POST /api/v1/permissions`` answers no id, so ids are
read back from the list); each role's current permissions are read before ``PATCH
/api/v1/roles/{id}/permissions`` attaches only the missing ones, so a re-run sends nothing. What the run created or attached is journaled before it is sent
(``definitions``), so ``undo`` takes back exactly that.
"""

from __future__ import annotations

import json
from typing import Any

from migrator.errors import ApiError, ProtocolError
from migrator.journal import DefinitionKind, Step
from migrator.stages.context import RunContext
from migrator.stages.creates import create_settled


async def attach_role_permissions(ctx: RunContext) -> None:
    roles = [r for r in ctx.journal.organizations.roles(ctx.run.id) if r.permissions == Step.PENDING]
    if not roles:
        return
    wanted = {body["key"]: body for role in roles for body in json.loads(role.permission_bodies or "[]")}
    ids = await _permission_ids(ctx)
    for key, body in wanted.items():
        ctx.journal.cutover.record_definition(ctx.run.id, DefinitionKind.PERMISSION, "", key, created=key not in ids)
        if key not in ids:
            await _create_permission(ctx, body)
    ids = await _permission_ids(ctx)
    role_ids = {r.get("key"): r.get("id") for r in await ctx.kinde.list_roles()}
    for role in roles:
        role_id = role_ids.get(role.key)
        if not isinstance(role_id, str):
            raise ProtocolError(f"Kinde lists no role {role.key!r} after it was created", service="Kinde")
        attached = {p.get("key") for p in await ctx.kinde.role_permissions(role_id)}
        keys = [body["key"] for body in json.loads(role.permission_bodies or "[]")]
        unknown = [key for key in keys if key not in ids]
        if unknown:
            raise ProtocolError(f"Kinde lists no permission {unknown[0]!r} after it was created", service="Kinde")
        missing = [ids[key] for key in keys if key not in attached]
        for key in keys:  # before the PATCH: an undo takes back what this run attached, even if the answer is lost
            ctx.journal.cutover.record_definition(
                ctx.run.id, DefinitionKind.ROLE_PERMISSION, role.key, key, created=key not in attached
            )
        if missing:
            await ctx.kinde.add_role_permissions(role_id, missing)
        ctx.journal.organizations.record_role_permissions(ctx.run.id, role.key)


async def _permission_ids(ctx: RunContext) -> dict[str, str]:
    return {
        p["key"]: p["id"]
        for p in await ctx.kinde.list_permissions()
        if isinstance(p.get("key"), str) and isinstance(p.get("id"), str)
    }


async def _create_permission(ctx: RunContext, body: dict[str, Any]) -> None:
    async def create() -> bool:
        await ctx.kinde.create_permission(body)
        return True

    async def find(_: ApiError) -> bool | None:
        return True if body["key"] in await _permission_ids(ctx) else None

    reconciled = ctx.reconciled("permission", body["key"])
    await create_settled(create, find, attempts=ctx.settings.max_attempts, reconciled=reconciled)
