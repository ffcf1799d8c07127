"""Undo, for a catch-up: take back what it wrote to users an earlier run created, not only its sign-ups.

Planned from the catch-up's ``user_writes`` (journaled before each request, with what Kinde held) and
its user ``deletions``:

* ``identity_removed``: an identity it deleted is added again (Kinde's POST has no ``is_verified``: an
  identity that was verified comes back unverified, and says so), made primary again if it was; one
  Kinde refuses (another user holds it now) is kept with Kinde's answer;
* ``identity_added``: an identity it added is deleted (by its Kinde id, else by type and value), never
  the user's last;
* ``user_profile``: names and suspension go back to Kinde's previous value, only while Kinde still
  holds what the catch-up wrote (changed since: kept, reported);
* ``password`` (kept): a password it set or a reset it requested cannot be put back (no digest is
  kept, by design); the user signs in with the new one;
* ``user_deleted`` (kept): a user it deleted (``--delete-removed``) cannot come back with its Kinde id.

Removed identities are re-added before added ones are deleted, so a replaced email never leaves a user
without one. Every user is checked to be still ours (``provided_id`` = the Clerk id) first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from migrator.errors import AlreadyExists, ApiError
from migrator.events import Notice
from migrator.journal import Deletion, DeletionState, Journal, UserWriteKind
from migrator.mapping import identity_key
from migrator.stages.context import RunContext
from migrator.stages.deletions import absent_outcome, journal_sending, was_sent

OPEN = (DeletionState.PENDING, DeletionState.FAILED)
RESTORED_KINDS = ("identity_removed", "identity_added", "user_profile")  # in the order the undo takes them
KEPT_KINDS = ("password", "user_deleted")  # planned as kept: nothing an undo can do
KINDS = RESTORED_KINDS + KEPT_KINDS
PASSWORD_KEPT = "password changed by the catch-up: cannot be restored; the user signs in with the new one"
RESET_KEPT = "password reset requested by the catch-up: left requested (the old password is not restored)"
DELETED_KEPT = (
    "deleted from Kinde by the catch-up (gone from Clerk): an undo cannot bring back the same Kinde user"
    " (its id, password and sign-ins are gone); while Clerk still has the user, `migrator run --only {clerk_id}`"
    " creates it anew"
)
UNVERIFIED = " unverified (Kinde's POST /users/{id}/identities has no is_verified)"


def _planned(journal: Journal, base_run_id: int) -> dict[str, list[tuple[str, str, str | None]]]:
    """(key, kinde_ref, kept detail) per kind: what an undo of catch-up ``base_run_id`` takes back or keeps."""
    planned: dict[str, list[tuple[str, str, str | None]]] = {kind: [] for kind in KINDS}
    passwords: dict[str, str] = {}
    for write in journal.cutover.user_writes(base_run_id):
        clerk_id, kind, key = write.clerk_id, write.kind, write.key
        ref = {"kinde_id": write.kinde_id, "clerk_id": clerk_id, "key": key}
        if kind == UserWriteKind.PROFILE:
            ref |= {"previous": json.loads(write.previous), "written": json.loads(write.written)}
            planned["user_profile"].append((f"{clerk_id}/{key}", json.dumps(ref), None))
        elif kind == UserWriteKind.IDENTITY_ADDED:
            ref |= {"identity_id": write.identity_id}
            planned["identity_added"].append((f"{clerk_id}/{key}", json.dumps(ref), None))
        elif kind == UserWriteKind.IDENTITY_REMOVED:
            ref |= {"previous": json.loads(write.previous)}
            planned["identity_removed"].append((f"{clerk_id}/{key}", json.dumps(ref), None))
        elif kind == UserWriteKind.PASSWORD or clerk_id not in passwords:
            passwords[clerk_id] = PASSWORD_KEPT if kind == UserWriteKind.PASSWORD else RESET_KEPT
    planned["password"] = [(clerk_id, clerk_id, detail) for clerk_id, detail in sorted(passwords.items())]
    planned["user_deleted"] = [
        (row.key, row.kinde_ref, DELETED_KEPT.format(clerk_id=row.key))
        for row in journal.cutover.deletions(base_run_id, "user", (DeletionState.DELETED,))
    ]
    return planned


def update_counts(journal: Journal, base_run_id: int) -> dict[str, int]:
    """Per kind, what an undo of ``base_run_id`` would restore (or keep: passwords, deleted users)."""
    return {kind: len(items) for kind, items in _planned(journal, base_run_id).items()}


def kept_updates(journal: Journal, base_run_id: int) -> list[str]:
    """What the undo keeps whatever it does, with why (a dry run lists it)."""
    planned = _planned(journal, base_run_id)
    return [f"{kind} {key}: {detail}" for kind in KEPT_KINDS for key, _, detail in planned[kind]]


def plan_updates(journal: Journal, run_id: int, base_run_id: int) -> None:
    """Record the undo's items once (a resumed undo keeps its list and states); kept kinds are kept from the start."""
    for kind, items in _planned(journal, base_run_id).items():
        state = DeletionState.KEPT if kind in KEPT_KINDS else DeletionState.PENDING
        fresh = {row.key for row in journal.cutover.deletions(run_id, kind)}
        journal.cutover.add_deletions(run_id, kind, [(key, ref) for key, ref, _ in items], state)
        for key, _, detail in items:
            if detail and key not in fresh:
                journal.cutover.record_deletion(run_id, kind, key, DeletionState.KEPT, detail)


def _record(ctx: RunContext, kind: str, key: str, state: DeletionState, detail: str | None = None) -> None:
    ctx.journal.cutover.record_deletion(ctx.run.id, kind, key, state, detail)
    if state == DeletionState.KEPT:
        ctx.emit(Notice(f"{kind} {key}: {detail}", level="warning"))


def _by_user(items: Iterable[Deletion]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    grouped: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for item in items:
        ref = json.loads(item.kinde_ref) | {"delete_sent": was_sent(item)}
        grouped.setdefault(ref["kinde_id"], []).append((item.key, ref))
    return grouped


async def restore_updates(ctx: RunContext) -> None:
    """Each user's identities, then its profile; a user's failure is journaled and the others go on."""
    for kind, restore in (
        ("identity_removed", _readd_identities),
        ("identity_added", _delete_identities),
        ("user_profile", _restore_profile),
    ):
        for kinde_id, items in _by_user(ctx.journal.cutover.deletions(ctx.run.id, kind, OPEN)).items():
            try:
                if await _still_ours(ctx, kind, kinde_id, items):
                    await restore(ctx, kinde_id, items)
            except ApiError as exc:
                if exc.stops_run:  # no other item would fare better
                    raise
                state = DeletionState.FAILED if exc.retryable else DeletionState.KEPT
                for key, _ in items:
                    _record(ctx, kind, key, state, str(exc) if exc.retryable else f"Kinde refused: {exc}")


async def _still_ours(ctx: RunContext, kind: str, kinde_id: str, items: list[tuple[str, dict[str, Any]]]) -> bool:
    """The Kinde user is there and still names the Clerk user; otherwise each item is settled with why."""
    clerk_id = items[0][1]["clerk_id"]
    user = await ctx.kinde.get_user(kinde_id)
    if user is None:
        for key, _ in items:
            _record(ctx, kind, key, DeletionState.GONE, "the Kinde user is gone: nothing to restore")
        return False
    if user.provided_id != clerk_id:
        detail = f"Kinde user {kinde_id} now has provided_id {user.provided_id or '(none)'}: not ours, left as is"
        for key, _ in items:
            _record(ctx, kind, key, DeletionState.KEPT, detail)
        return False
    return True


def _matching(records: list[dict[str, Any]], key: str, identity_id: str | None = None) -> list[dict[str, Any]]:
    return [
        r
        for r in records
        if isinstance(r.get("id"), str)
        and (r["id"] == identity_id or identity_key(r.get("type"), r.get("name")) == key)
    ]


async def _readd_identities(ctx: RunContext, kinde_id: str, items: list[tuple[str, dict[str, Any]]]) -> None:
    """Add each removed identity again (one there already, re-added before a crash, is not sent twice), then
    make it the primary again if it was."""
    records = await ctx.kinde.user_identity_records(kinde_id)
    for key, ref in items:
        previous, found = ref["previous"], _matching(records, ref["key"])
        identity_id = found[0]["id"] if found else None
        detail = "already in Kinde" if found else "re-added"
        if not found:
            body = {"type": previous["type"], "value": previous["value"]}
            if previous.get("phone_country_id"):
                body["phone_country_id"] = previous["phone_country_id"]
            try:
                identity_id = await ctx.kinde.add_identity(kinde_id, body)
            except AlreadyExists as exc:  # another user holds it now: theirs
                _record(ctx, "identity_removed", key, DeletionState.KEPT, f"not re-added, Kinde refused: {exc}")
                continue
            if previous.get("is_confirmed") and previous["type"] in ("email", "phone"):
                detail += UNVERIFIED
        if previous.get("is_primary") and not (found and found[0].get("is_primary") is True):
            records = await ctx.kinde.user_identity_records(kinde_id)
            identity_id = identity_id or next((r["id"] for r in _matching(records, ref["key"])), None)
            if identity_id:
                await ctx.kinde.make_identity_primary(identity_id)
                detail += ", made the primary again"
        _record(ctx, "identity_removed", key, DeletionState.DELETED, detail)


async def _delete_identities(ctx: RunContext, kinde_id: str, items: list[tuple[str, dict[str, Any]]]) -> None:
    records = await ctx.kinde.user_identity_records(kinde_id)
    for key, ref in items:
        found = _matching(records, ref["key"], ref.get("identity_id"))
        if not found:
            _record(ctx, "identity_added", key, *absent_outcome(ref["delete_sent"]))
            continue
        if len(records) <= len(found):
            _record(ctx, "identity_added", key, DeletionState.KEPT, "the user's last identity: kept")
            continue
        journal_sending(ctx.journal, ctx.run.id, "identity_added", key)
        for record in found:
            await ctx.kinde.delete_identity(record["id"])
        records = [r for r in records if r not in found]
        _record(ctx, "identity_added", key, DeletionState.DELETED)


def _same(now: Any, value: Any) -> bool:
    """Kinde's empty name and no name are the same; suspension compares as a flag."""
    if isinstance(value, bool) or isinstance(now, bool):
        return bool(now) == bool(value)
    return (now or None) == (value or None)


async def _restore_profile(ctx: RunContext, kinde_id: str, items: list[tuple[str, dict[str, Any]]]) -> None:
    profile = await ctx.kinde.user_profile(kinde_id) or {}
    restore: dict[str, Any] = {}
    for key, ref in items:
        now, field = profile.get(ref["key"]), ref["key"]
        if _same(now, ref["previous"]):
            _record(ctx, "user_profile", key, DeletionState.DELETED, "already back to its previous value")
        elif not _same(now, ref["written"]):
            _record(
                ctx, "user_profile", key, DeletionState.KEPT, "changed in Kinde since the catch-up wrote it: left as is"
            )
        else:
            restore[field] = bool(ref["previous"]) if field == "is_suspended" else ref["previous"] or ""
    if not restore:
        return
    await ctx.kinde.update_user(kinde_id, restore)
    for key, ref in items:
        if ref["key"] in restore:
            _record(ctx, "user_profile", key, DeletionState.DELETED, "restored to its previous value")
