"""``migrator verify``'s extras: user properties, social identities and role permissions.

Checked only where the run wrote them (``properties``/``social``/``permissions`` = done; for an export
run, whose files carried them, wherever its plan has them), so a run without those features costs no
extra request. Kinde may hold more than we sent (other properties,
identities, permissions): only what the plan asked for is required.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from migrator.journal import ReadBack, Step
from migrator.models import SocialIdentity
from migrator.stages.context import RunContext, task_group
from migrator.stages.social import is_linked

Finding = tuple[str, str | None, str | None, str, str, str]


async def extra_user_findings(
    ctx: RunContext, rows: list[ReadBack], gate: asyncio.Semaphore, *, imported: bool = False
) -> list[Finding]:
    """Properties that differ (drift) and social identities absent (incomplete) for users written with them.

    ``imported``: an export run, whose users' files carried their properties and social identities (the
    journal's steps stay pending: no request of this journal wrote them); users of api-users.csv were
    given them by the ``run --only-file`` run that created them."""
    findings: list[Finding] = []
    wrote = {
        "properties": {Step.DONE, Step.PENDING} if imported else {Step.DONE},
        "social": {Step.DONE, Step.PENDING} if imported else {Step.DONE},
    }

    async def check(row: ReadBack) -> None:
        async with gate:
            findings.extend(await _user_extras(ctx, row, wrote))

    async with task_group() as group:
        for row in rows:
            if row.properties in wrote["properties"] or row.social in wrote["social"]:
                group.create_task(check(row))
    return findings


async def _user_extras(ctx: RunContext, row: ReadBack, wrote: dict[str, set[Any]]) -> list[Finding]:
    plan, ids = json.loads(row.plan), (row.clerk_id, row.kinde_id)
    findings: list[Finding] = []
    if row.properties in wrote["properties"] and plan.get("properties"):
        held = await ctx.kinde.user_properties(row.kinde_id)
        for key, expected in sorted(plan["properties"].items()):
            if held.get(key) != expected:
                findings.append(("drift", *ids, f"property:{key}", expected, held.get(key) or ""))
    if row.social in wrote["social"] and plan.get("social"):
        records = await ctx.kinde.user_identity_records(row.kinde_id)
        for item in plan["social"]:
            social = SocialIdentity(item["provider"], item["connection_id"], item["value"])
            if not is_linked(social, records):
                findings.append(("incomplete", *ids, "social", f"{social.connection_id}: {social.value}", ""))
    return findings


async def role_permission_findings(ctx: RunContext) -> list[Finding]:
    """Each permission a role was given (permissions = done) must be among the role's permissions in Kinde."""
    roles = [r for r in ctx.journal.organizations.roles(ctx.run.id) if r.permissions == Step.DONE]
    if not roles:
        return []
    role_ids = {r.get("key"): r.get("id") for r in await ctx.kinde.list_roles()}
    findings: list[Finding] = []
    for role in roles:
        role_id = role_ids.get(role.key)
        if not isinstance(role_id, str):
            findings.append(("incomplete", None, None, "role", role.key, ""))
            continue
        held = {p.get("key") for p in await ctx.kinde.role_permissions(role_id)}
        for body in json.loads(role.permission_bodies or "[]"):
            if body["key"] not in held:
                findings.append(("incomplete", None, role_id, "role_permission", f"{role.key}: {body['key']}", ""))
    return findings
