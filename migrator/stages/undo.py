"""Stage (``migrator undo RUN_ID``): delete from Kinde exactly what one run created, nothing else.

Reads: the undo run's ``deletions`` (planned from the base run's journal: users it created, then, for a
catch-up, what it wrote to users already in Kinde (``undo_updates``), then organizations and roles it
created, then the definitions and attachments of ``undo_definitions``). Writes: each deletion's outcome, so a killed undo continues
where it stopped and a second undo finds nothing left. Emits: the ``undo`` phase.

Provenance, twice: the journal must say the run created it, and Kinde must still agree (a user's
``provided_id`` is the Clerk id; an organization's ``external_id`` the Clerk organization id).
Gone only on proof: an item counts as ``gone`` (not ``deleted``) when Kinde said it has no such thing
(its not-found answer, classified in ``migrator.kinde.client``) or a complete list of Kinde's lacks it; an
unknown route or a refusal that names nothing missing stops the undo (exit 3), counted as nothing.
An organization someone else still uses (members left after our users are gone) and a role
another run's memberships give are kept. A role or organization whose create the run sent but never
recorded (killed in between, not resumed) is planned too: its intent was journaled before the send.
"""

from __future__ import annotations

import asyncio

from migrator.errors import ApiError
from migrator.events import Notice, PhaseAdvanced, PhaseFinished, PhaseStarted
from migrator.journal import Deletion, DeletionState, Journal
from migrator.stages.context import RunContext, task_group
from migrator.stages.deletions import absent_outcome, failed_detail, journal_sending, record_outcome, was_sent
from migrator.stages.undo_definitions import (
    definition_counts,
    delete_permissions,
    delete_properties,
    detach_role_permissions,
    plan_definitions,
    restore_organization_values,
)
from migrator.stages.undo_updates import KEPT_KINDS, RESTORED_KINDS, plan_updates, restore_updates, update_counts

OPEN = (DeletionState.PENDING, DeletionState.FAILED)
# every kind an undo takes back, in the order it does (a catch-up's passwords and deletions, and property
# categories, are only ever kept)
UNDO_KINDS = ("user", *RESTORED_KINDS, "organization", "organization_property", "role_permission", "role",
              "permission", "property", *KEPT_KINDS, "property_category")  # fmt: skip
PLANNED_KINDS = UNDO_KINDS[:-1]


def plan_undo(ctx: RunContext, base_run_id: int) -> dict[str, int]:
    """Record what the undo will delete (once: a resumed undo keeps its list); counts per kind."""
    journal, run_id = ctx.journal, ctx.run.id
    with journal.transaction():
        journal.cutover.add_deletions(run_id, "user", journal.users.created_by_run(base_run_id), DeletionState.PENDING)
        journal.cutover.add_deletions(run_id, "organization", journal.organizations.created_by_run(base_run_id), DeletionState.PENDING)
        journal.cutover.add_deletions(
            run_id, "role", [(k, k) for k in journal.organizations.roles_created_by_run(base_run_id)], DeletionState.PENDING
        )
        plan_definitions(journal, run_id, base_run_id)
        plan_updates(journal, run_id, base_run_id)
    return {kind: len(journal.cutover.deletions(run_id, kind, None if kind in KEPT_KINDS else OPEN)) for kind in PLANNED_KINDS}


def planned_counts(journal: Journal, base_run_id: int) -> dict[str, int]:
    """What an undo of ``base_run_id`` would take back, per kind, without recording anything (dry run)."""
    return {
        "user": len(journal.users.created_by_run(base_run_id)),
        "organization": len(journal.organizations.created_by_run(base_run_id)),
        "role": len(journal.organizations.roles_created_by_run(base_run_id)),
        **definition_counts(journal, base_run_id),
        **update_counts(journal, base_run_id),
    }


async def undo(ctx: RunContext) -> None:
    journal, run_id = ctx.journal, ctx.run.id
    users = journal.cutover.deletions(run_id, "user", OPEN)
    ctx.emit(PhaseStarted("undo", len(users)))
    slots = asyncio.Semaphore(ctx.settings.concurrency)
    done = 0

    async def remove(item: Deletion) -> None:
        nonlocal done
        try:
            await delete_ours(ctx, "user", item)
        finally:
            slots.release()
        done += 1
        ctx.emit(PhaseAdvanced("undo", done, len(users)))

    async with task_group() as group:
        for item in users:
            await slots.acquire()  # at most `concurrency` deletions (and tasks) at once, at any size
            group.create_task(remove(item))
    await restore_updates(ctx)  # a catch-up's writes to users an earlier run created
    await _undo_organizations(ctx)
    await restore_organization_values(ctx)
    await detach_role_permissions(ctx)
    await _undo_roles(ctx)
    await delete_permissions(ctx)  # after roles: a permission is deleted only once no role carries it
    await delete_properties(ctx)  # after users and organizations: only once nobody holds a value
    ctx.emit_pacing()
    ctx.emit(PhaseFinished("undo"))


async def delete_ours(ctx: RunContext, kind: str, item: Deletion) -> None:
    """Delete the Kinde user of deletion ``item`` if it still carries the item's Clerk id as its provided_id;
    record why not otherwise."""
    journal, run_id = ctx.journal, ctx.run.id
    clerk_id, kinde_id = item.key, item.kinde_ref
    try:
        user = await ctx.kinde.get_user(kinde_id)
        if user is None:
            journal.cutover.record_deletion(run_id, kind, clerk_id, *absent_outcome(was_sent(item)))
            return
        if user.provided_id != clerk_id:
            detail = f"Kinde user {kinde_id} now has provided_id {user.provided_id or '(none)'}: not ours, kept"
            journal.cutover.record_deletion(run_id, kind, clerk_id, DeletionState.KEPT, detail)
            ctx.emit(Notice(f"{clerk_id}: {detail}", level="warning"))
            return
        journal_sending(journal, run_id, kind, clerk_id)
        deleted = await ctx.kinde.delete_user(kinde_id)
    except ApiError as exc:
        if exc.stops_run:  # no other item would fare better
            raise
        journal.cutover.record_deletion(run_id, kind, clerk_id, DeletionState.FAILED, failed_detail(item, exc))
        return
    record_outcome(journal, run_id, kind, clerk_id, deleted)


async def _undo_organizations(ctx: RunContext) -> None:
    journal, run_id = ctx.journal, ctx.run.id
    todo = journal.cutover.deletions(run_id, "organization", OPEN)
    if not todo:
        return
    listed = await ctx.kinde.list_organizations()
    external = {o.get("code"): o.get("external_id") for o in listed}
    by_external = {o.get("external_id"): o.get("code") for o in listed if o.get("external_id")}
    for item in todo:
        # no code: the run sent the create and stopped before Kinde's answer was recorded; ours if it landed
        clerk_org_id, code = item.key, item.kinde_ref or by_external.get(item.key)
        if code not in external:  # every organization listed, this one not among them: proof it is gone
            journal.cutover.record_deletion(run_id, "organization", clerk_org_id, *absent_outcome(was_sent(item)))
            continue
        if external[code] != clerk_org_id:
            detail = f"its external_id is now {external[code] or '(none)'}: not ours, kept"
            journal.cutover.record_deletion(run_id, "organization", clerk_org_id, DeletionState.KEPT, detail)
            continue
        await _delete_if_unused(ctx, item, code)


async def _delete_if_unused(ctx: RunContext, item: Deletion, code: str) -> None:
    journal, run_id = ctx.journal, ctx.run.id
    clerk_org_id = item.key
    try:
        members = await ctx.kinde.organization_user_ids(code)
        if members:
            detail = f"{len(members)} member(s) this run did not create are still in it: kept"
            journal.cutover.record_deletion(run_id, "organization", clerk_org_id, DeletionState.KEPT, detail)
            ctx.emit(Notice(f"organization {code}: {detail}", level="warning"))
            return
        if members is None:  # Kinde: no such organization (gone since it was listed)
            journal.cutover.record_deletion(run_id, "organization", clerk_org_id, *absent_outcome(was_sent(item)))
            return
        journal_sending(journal, run_id, "organization", clerk_org_id)
        deleted = await ctx.kinde.delete_organization(code)
    except ApiError as exc:
        if exc.stops_run:  # no other item would fare better
            raise
        journal.cutover.record_deletion(run_id, "organization", clerk_org_id, DeletionState.FAILED, failed_detail(item, exc))
        return
    record_outcome(journal, run_id, "organization", clerk_org_id, deleted)


async def _undo_roles(ctx: RunContext) -> None:
    journal, run_id = ctx.journal, ctx.run.id
    todo = journal.cutover.deletions(run_id, "role", OPEN)
    if not todo:
        return
    ids = {r.get("key"): r.get("id") for r in await ctx.kinde.list_roles()}
    for item in todo:
        key = item.key
        if key not in ids:  # every role listed, this one not among them: proof it is gone
            journal.cutover.record_deletion(run_id, "role", key, *absent_outcome(was_sent(item)))
        elif journal.organizations.role_used_elsewhere(ctx.run.parent_run_id or 0, key):
            journal.cutover.record_deletion(run_id, "role", key, DeletionState.KEPT, "another run's memberships give it")
        else:
            try:
                journal_sending(journal, run_id, "role", key)
                deleted = await ctx.kinde.delete_role(str(ids[key]))
            except ApiError as exc:  # Kinde refuses a role still assigned: someone else uses it
                if exc.stops_run:  # no other item would fare better
                    raise
                journal.cutover.record_deletion(run_id, "role", key, DeletionState.KEPT, f"Kinde refused: {exc}")
                continue
            record_outcome(journal, run_id, "role", key, deleted)
