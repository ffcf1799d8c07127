"""Stage: roles, then organizations, then memberships in batches.

Reads: staged roles, organizations and the memberships whose user and organization are in Kinde.
Writes: each role and organization when it exists in Kinde, each membership's outcome.
Emits: the ``organizations`` phase.

A refused batch of members is split in halves until the member Kinde refuses is alone, so one
bad member never fails ninety-nine good ones; a member Kinde says is already in the organization
is a success, not a failure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from migrator.errors import ApiError
from migrator.events import Notice, PhaseAdvanced, PhaseFinished, PhaseStarted
from migrator.journal import MembershipState, Organization, PendingMembership, Step, StepState
from migrator.kinde.client import BATCH_ADD_LIMIT
from migrator.stages.context import RunContext
from migrator.stages.creates import create_owned
from migrator.stages.permissions import attach_role_permissions
from migrator.stages.properties import write_organization_properties


async def organizations(ctx: RunContext) -> None:
    journal, run_id = ctx.journal, ctx.run.id
    orgs = journal.organizations.all(run_id)
    todo = [o for o in orgs if o.kinde_code is None]
    roles_left = any(
        r.state == StepState.PENDING or r.permissions == Step.PENDING for r in journal.organizations.roles(run_id)
    )
    properties_left = any(o.properties == Step.PENDING for o in orgs)
    if not todo and not roles_left and not properties_left and not (orgs and journal.organizations.pending_memberships(run_id)):
        return
    ctx.emit(PhaseStarted("organizations", len(todo)))
    await ensure_roles(ctx)
    await attach_role_permissions(ctx)
    existing = {o.get("external_id"): o.get("code") for o in await ctx.kinde.list_organizations()}
    for done, org in enumerate(todo, start=1):
        code = existing.get(org.clerk_org_id)
        if code is None:
            code, created = await _create_organization(ctx, org)
        else:  # found: ours only when this run had sent its create (a crash came before the outcome was recorded)
            created = bool(org.create_intent)
        journal.organizations.record(run_id, org.clerk_org_id, code, created=created)
        ctx.emit(PhaseAdvanced("organizations", done, len(todo)))
    await write_organization_properties(ctx)
    added, failed = await _add_memberships(ctx)
    ctx.emit(PhaseAdvanced("organizations", len(todo), len(todo), {"memberships": added, "failed": failed}))
    ctx.emit(PhaseFinished("organizations"))


async def ensure_roles(ctx: RunContext) -> None:
    """Each staged role, created when Kinde lacks it. Whose it is (an undo deletes only the run's): the run
    records its intent just before the create; a role found with an intent of the run still open is the
    run's (its create landed, then the run stopped before recording it); found without one, it is not."""
    existing = {r.get("key") for r in await ctx.kinde.list_roles()}
    for role in ctx.journal.organizations.roles(ctx.run.id):
        if role.key in existing:
            created = bool(role.create_intent)
        else:
            created = await _create_role(ctx, role.key, json.loads(role.body))
        ctx.journal.organizations.record_role(ctx.run.id, role.key, created=created)


async def _create_role(ctx: RunContext, key: str, body: dict[str, Any]) -> bool:
    """Create role ``key``; True when the role Kinde now holds is this run's."""

    async def create() -> bool:
        await ctx.kinde.create_role(body)
        return True

    async def find_role(_: ApiError) -> bool | None:
        return True if key in {r.get("key") for r in await ctx.kinde.list_roles()} else None

    intent_was_open = ctx.journal.organizations.record_role_intent(ctx.run.id, key)
    _, created = await create_owned(
        create,
        find_role,
        attempts=ctx.settings.max_attempts,
        intent_was_open=intent_was_open,
        reconciled=ctx.reconciled("role", key),
    )
    return created


async def _create_organization(ctx: RunContext, org: Organization) -> tuple[str, bool]:
    """Create the organization of ``org``: (its code, whether it is this run's), as for roles."""
    clerk_org_id = org.clerk_org_id

    async def find_organization(_: ApiError) -> str | None:
        for existing in await ctx.kinde.list_organizations():
            if existing.get("external_id") == clerk_org_id and existing.get("code"):
                return str(existing["code"])
        return None

    body = json.loads(org.body)
    intent_was_open = ctx.journal.organizations.record_intent(ctx.run.id, clerk_org_id)
    return await create_owned(
        lambda: ctx.kinde.create_organization(body),
        find_organization,
        attempts=ctx.settings.max_attempts,
        intent_was_open=intent_was_open,
        reconciled=ctx.reconciled("organization", clerk_org_id),
    )


async def _add_memberships(ctx: RunContext) -> tuple[int, int]:
    by_org: dict[str, list[Any]] = {}
    for member in ctx.journal.organizations.pending_memberships(ctx.run.id):
        by_org.setdefault(member.kinde_code, []).append(member)
    added = failed = 0
    for code, members in by_org.items():
        for start in range(0, len(members), BATCH_ADD_LIMIT):
            ok, refused = await _add_batch(ctx, code, members[start : start + BATCH_ADD_LIMIT])
            added, failed = added + ok, failed + refused
    return added, failed


async def _add_batch(ctx: RunContext, code: str, batch: Sequence[PendingMembership]) -> tuple[int, int]:
    """Add ``batch`` to organization ``code``; a refused batch is halved until the refused member is
    alone. Returns (added, failed)."""
    try:
        await ctx.kinde.add_organization_users(code, [{"id": m.kinde_id, "roles": [m.role_key]} for m in batch])
    except ApiError as exc:
        if exc.stops_run:  # no other item would fare better
            raise
        if len(batch) > 1 and not exc.retryable:
            middle = len(batch) // 2
            first, second = await _add_batch(ctx, code, batch[:middle]), await _add_batch(ctx, code, batch[middle:])
            return first[0] + second[0], first[1] + second[1]
        if len(batch) == 1 and await _already_member(ctx, code, batch[0]):
            _record(ctx, batch, MembershipState.DONE)
            return 1, 0
        _record(ctx, batch, MembershipState.FAILED, str(exc))
        who = batch[0].clerk_user_id if len(batch) == 1 else f"{len(batch)} member(s)"
        ctx.emit(Notice(f"adding {who} to organization {code} failed: {exc}", level="warning"))
        return 0, len(batch)
    _record(ctx, batch, MembershipState.DONE)
    return len(batch), 0


async def _already_member(ctx: RunContext, code: str, member: PendingMembership) -> bool:
    """Was the refusal Kinde's way of saying the user is already a member?"""
    try:
        codes = await ctx.kinde.user_organizations(member.kinde_id)
    except ApiError as exc:
        if exc.stops_run:  # no other item would fare better
            raise
        return False
    return codes is not None and code in codes


def _record(ctx: RunContext, batch: Sequence[Any], state: MembershipState, error: str | None = None) -> None:
    ctx.journal.organizations.record_memberships(ctx.run.id, [(m.clerk_user_id, m.clerk_org_id) for m in batch], state, error)
