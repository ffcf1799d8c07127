"""Stage (catch-up runs): bring users already in Kinde up to date, and delete those gone from Clerk.

Reads: the run's ``updates`` (from ``stages.catchup``) and pending user ``deletions``. Writes: each
update's outcome (a failure fails the user's row, so the run exits 1 and ``resume`` retries it),
each deletion's outcome. A no-op for any other run. Emits: the ``update`` phase.

Only what changed is sent: ``PATCH /api/v1/user`` with the changed fields, the new identities one by
one, ``DELETE /api/v1/identities/{id}`` for those Clerk removed (only identities of our plan, never the
user's last), the password from the fresh export. Before each write, what Kinde held is journaled
(``user_writes``: the fields' values, identities added and removed), so ``migrator undo`` of this catch-up
can put it back. A user is deleted only when this journal created it and
Kinde's ``provided_id`` still names the Clerk user (``stages.undo.delete_ours``).
"""

from __future__ import annotations

import json
from typing import Any

from migrator.errors import AlreadyExists, ApiError, InputError, MigratorError
from migrator.events import Notice, PhaseAdvanced, PhaseFinished, PhaseStarted
from migrator.journal import DeletionState, Journal, Update, UserWriteKind
from migrator.mapping import identity_key
from migrator.stages.context import RunContext
from migrator.stages.undo import delete_ours

PROFILE_FIELDS = ("given_name", "family_name", "is_suspended")  # what a catch-up PATCHes that an undo restores


def pending_changes(journal: Journal, run_id: int) -> dict[str, int]:
    """What a catch-up is about to write to users already in Kinde, and delete: the confirmation shows it."""
    updates = journal.cutover.updates_to_apply(run_id)
    changes = [i for update in updates for i in json.loads(update.identities)]
    return {
        "users_to_update": len(updates),
        "identities_to_add": sum(1 for i in changes if not i.get("remove")),
        "identities_to_remove": sum(1 for i in changes if i.get("remove")),
        "passwords_to_update": sum(1 for update in updates if update.password),
        "users_to_delete": len(journal.cutover.deletions(run_id, "user", (DeletionState.PENDING, DeletionState.FAILED))),
        "users_gone_listed": len(journal.cutover.deletions(run_id, "user", (DeletionState.LISTED,))),
        "users_gone_before_import": len(journal.cutover.deletions(run_id, "user", (DeletionState.NOT_IN_KINDE,))),
    }


async def apply_updates(ctx: RunContext) -> None:
    updates = ctx.journal.cutover.updates_to_apply(ctx.run.id)
    removals = ctx.journal.cutover.deletions(ctx.run.id, "user", (DeletionState.PENDING, DeletionState.FAILED))
    if not updates and not removals:
        return
    ctx.emit(PhaseStarted("update", len(updates) + len(removals)))
    for done, update in enumerate(updates, start=1):
        try:
            await _apply(ctx, update)
        except MigratorError as exc:
            if exc.stops_run:  # no other item would fare better
                raise
            ctx.journal.cutover.record_update(ctx.run.id, update.clerk_id, error=str(exc))
            ctx.emit(Notice(f"{update.clerk_id}: update failed: {exc}", level="warning"))  # retries are over: news
        else:
            ctx.journal.cutover.record_update(ctx.run.id, update.clerk_id)
        ctx.emit(PhaseAdvanced("update", done, len(updates) + len(removals)))
    for done, removal in enumerate(removals, start=len(updates) + 1):
        await delete_ours(ctx, "user", removal)
        ctx.emit(PhaseAdvanced("update", done, len(updates) + len(removals)))
    ctx.emit_pacing()
    ctx.emit(PhaseFinished("update"))


async def _apply(ctx: RunContext, update: Update) -> None:
    kinde_id = update.kinde_id
    patch = json.loads(update.patch)
    changes = json.loads(update.identities)
    for identity in (i for i in changes if not i.get("remove")):  # adds first: a replaced email is never the last
        await _add_identity(ctx, update.clerk_id, kinde_id, identity)
    for identity in (i for i in changes if i.get("remove")):
        await _remove_identity(ctx, update.clerk_id, kinde_id, identity)
    if update.password:
        fields = _password_fields(ctx, update.clerk_id)
        ctx.journal.cutover.record_user_write(ctx.run.id, update.clerk_id, UserWriteKind.PASSWORD, "", kinde_id, None, None)
        await ctx.kinde.set_password(kinde_id, fields)
    if patch:
        await _record_profile(ctx, update.clerk_id, kinde_id, patch)
        await ctx.kinde.update_user(kinde_id, patch)


async def _record_profile(ctx: RunContext, clerk_id: str, kinde_id: str, patch: dict[str, Any]) -> None:
    """Before the PATCH: what Kinde holds in each field it changes (an undo of this catch-up restores it)."""
    journal, run_id = ctx.journal, ctx.run.id
    if patch.get("is_password_reset_requested"):
        journal.cutover.record_user_write(run_id, clerk_id, UserWriteKind.PASSWORD_RESET, "", kinde_id, None, True)
    fields = [name for name in patch if name in PROFILE_FIELDS]
    if not fields:
        return
    profile = await ctx.kinde.user_profile(kinde_id) or {}
    with journal.transaction():
        for name in fields:
            journal.cutover.record_user_write(
                run_id, clerk_id, UserWriteKind.PROFILE, name, kinde_id, profile.get(name), patch[name]
            )


async def _add_identity(ctx: RunContext, clerk_id: str, kinde_id: str, identity: dict[str, Any]) -> None:
    """Look before adding: ours already (added before a crash) is done; another user's stays theirs
    (the duplicate-identity policy: the holder keeps it) and is reported, not sent."""
    holders = await _holders(ctx, identity)
    if kinde_id in holders:
        return
    if holders:
        note = f"{identity['type']} {identity['value']} not added: Kinde user {holders[0]} holds it"
        ctx.journal.users.add_problems(ctx.run.id, [(clerk_id, "warning", note)])
        return
    body = {"type": identity["type"], "value": identity["value"]}
    if identity.get("phone_country_id"):
        body["phone_country_id"] = identity["phone_country_id"]
    key = identity_key(identity["type"], identity["value"])
    ctx.journal.cutover.record_user_write(ctx.run.id, clerk_id, UserWriteKind.IDENTITY_ADDED, key, kinde_id, None, body)
    try:
        identity_id = await ctx.kinde.add_identity(kinde_id, body)
    except AlreadyExists:
        if kinde_id not in await _holders(ctx, identity):
            raise
        return  # added before a crash: the undo finds it by type and value
    if identity_id:
        ctx.journal.cutover.record_added_identity_id(ctx.run.id, clerk_id, key, identity_id)


async def _remove_identity(ctx: RunContext, clerk_id: str, kinde_id: str, identity: dict[str, Any]) -> None:
    """Look before deleting: gone already (deleted before a crash, or never carried across) is done;
    the user's last identity is kept (a user who cannot sign in is worse than a stale identity) and reported."""
    records = await ctx.kinde.user_identity_records(kinde_id)
    wanted = identity_key(identity["type"], identity["value"])
    matches = [
        r for r in records if identity_key(r.get("type"), r.get("name")) == wanted and isinstance(r.get("id"), str)
    ]
    if not matches:
        return
    if len(records) <= len(matches):
        note = f"{identity['type']} {identity['value']} was removed in Clerk: kept in Kinde, the user's last identity"
        ctx.journal.users.add_problems(ctx.run.id, [(clerk_id, "warning", note)])
        return
    key = identity_key(identity["type"], identity["value"])
    previous = {
        "type": identity["type"],
        "value": identity["value"],
        "phone_country_id": identity.get("phone_country_id"),
        "is_confirmed": any(r.get("is_confirmed") is True for r in matches),
        "is_primary": any(r.get("is_primary") is True for r in matches),
    }
    ctx.journal.cutover.record_user_write(ctx.run.id, clerk_id, UserWriteKind.IDENTITY_REMOVED, key, kinde_id, previous, None)
    for record in matches:
        try:
            await ctx.kinde.delete_identity(record["id"])
        except ApiError as exc:  # a retried DELETE whose first answer was lost: gone is what we wanted
            left = await ctx.kinde.user_identity_records(kinde_id) if exc.status in (400, 404) else records
            if record["id"] in {r.get("id") for r in left}:
                raise


async def _holders(ctx: RunContext, identity: dict[str, Any]) -> list[str]:
    """Kinde ids of the users holding this email/username/phone (other identity types: not looked up)."""
    if identity["type"] not in ("email", "username", "phone"):
        return []
    return [user.id for user in await ctx.kinde.find_users(identity["type"], [identity["value"]])]


def _password_fields(ctx: RunContext, clerk_id: str) -> dict[str, Any]:
    translated = ctx.password_import(clerk_id)
    if translated is None:
        raise InputError(f"{clerk_id}: the export given to this catch-up no longer holds an importable password")
    return translated.fields
