"""Undo, part two: what a run defined or attached in Kinde besides users, organizations and roles.

Planned from the base run's ``definitions`` and ``property_writes`` (journaled before each write):

* ``organization_property``: a value the run wrote on an organization it did not create goes back to
  the value it had (cleared when it had none), only while Kinde still holds the run's value;
* ``role_permission``: a permission the run attached to a role it did not create is detached
  (what was attached before the run stays: the run never attached it);
* ``permission``: a permission the run created is deleted once no role in Kinde carries it;
* ``property``: a property definition the run created is deleted once no user and no organization
  in Kinde holds a value for it;
* ``property_category``: kept and reported, Kinde's Management API has no DELETE for one.

The safe rule: these run after the run's own users, organizations, roles and attachments are gone,
so whatever still uses a definition then is someone else's (or something the undo kept), and the
definition is kept with the reason. Kinde's own answer to deleting a definition in use is not
documented; it is never asked.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any

from migrator.errors import ApiError
from migrator.events import Notice
from migrator.journal import DefinitionKind, Deletion, DeletionState, Journal
from migrator.stages.context import RunContext
from migrator.stages.deletions import absent_outcome, failed_detail, journal_sending, record_outcome, was_sent

OPEN = (DeletionState.PENDING, DeletionState.FAILED)
KINDS = ("organization_property", "role_permission", "permission", "property", "property_category")
CATEGORY_KEPT = (
    "Kinde's Management API has no DELETE for property categories: kept (remove it in Kinde, Settings >"
    " Properties, once nothing else uses it)"
)


def _planned(journal: Journal, base_run_id: int) -> dict[str, list[tuple[str, str]]]:
    """(key, kinde_ref) per kind: what an undo of ``base_run_id`` takes back."""
    writes = journal.cutover.property_writes_on_found_organizations(base_run_id)
    return {
        "organization_property": [
            (
                f"{w.clerk_org_id}/{w.key}",
                json.dumps(
                    {"code": w.kinde_code, "key": w.key, "previous": w.previous, "written": w.written}
                ),
            )
            for w in writes
        ],
        "role_permission": [
            (f"{role}/{key}", json.dumps([role, key])) for role, key in journal.cutover.attachments_to_found_roles(base_run_id)
        ],
        "permission": [(key, key) for _, key in journal.cutover.created_definitions(base_run_id, DefinitionKind.PERMISSION)],
        "property": [
            (f"{context}:{key}", json.dumps([context, key]))
            for context, key in journal.cutover.created_definitions(base_run_id, DefinitionKind.PROPERTY)
        ],
        "property_category": [
            (f"{context}:{name}", name)
            for context, name in journal.cutover.created_definitions(base_run_id, DefinitionKind.PROPERTY_CATEGORY)
        ],
    }


def definition_counts(journal: Journal, base_run_id: int) -> dict[str, int]:
    """What an undo would take back, per kind (a dry run shows it; categories are only ever kept)."""
    return {kind: len(items) for kind, items in _planned(journal, base_run_id).items() if kind != "property_category"}


def kept_categories(journal: Journal, base_run_id: int) -> list[str]:
    return [
        f"property_category {key}: {CATEGORY_KEPT}" for key, _ in _planned(journal, base_run_id)["property_category"]
    ]


def plan_definitions(journal: Journal, run_id: int, base_run_id: int) -> None:
    """Record the undo's items (once: a resumed undo keeps its list and their states)."""
    for kind, items in _planned(journal, base_run_id).items():
        state = DeletionState.KEPT if kind == "property_category" else DeletionState.PENDING
        journal.cutover.add_deletions(run_id, kind, items, state)
        if kind == "property_category":
            for key, _ in items:
                journal.cutover.record_deletion(run_id, kind, key, DeletionState.KEPT, CATEGORY_KEPT)


def _record(ctx: RunContext, kind: str, key: str, state: DeletionState, detail: str | None = None) -> None:
    ctx.journal.cutover.record_deletion(ctx.run.id, kind, key, state, detail)
    if state == DeletionState.KEPT:
        ctx.emit(Notice(f"{kind} {key}: {detail}", level="warning"))


def _refused(ctx: RunContext, kind: str, item: Deletion, exc: ApiError) -> None:
    """A transient failure is retried by the next undo; a refusal means Kinde still needs it: kept."""
    if exc.retryable:
        _record(ctx, kind, item.key, DeletionState.FAILED, failed_detail(item, exc))
    else:
        _record(ctx, kind, item.key, DeletionState.KEPT, f"Kinde refused: {exc}")


def _absent(ctx: RunContext, kind: str, item: Deletion) -> None:
    """Kinde's list proves the item absent: deleted by an earlier pass's DELETE, else already gone."""
    _record(ctx, kind, item.key, *absent_outcome(was_sent(item)))


async def _delete(ctx: RunContext, kind: str, item: Deletion, request: Callable[[], Awaitable[bool]]) -> None:
    """Send one delete (journaled as sent first) and journal its outcome: deleted on Kinde's confirmation,
    already gone on its proof that there was nothing, failed/kept by ``_refused``."""
    journal_sending(ctx.journal, ctx.run.id, kind, item.key)
    try:
        deleted = await request()
    except ApiError as exc:
        if exc.stops_run:  # no other item would fare better
            raise
        _refused(ctx, kind, item, exc)
        return
    record_outcome(ctx.journal, ctx.run.id, kind, item.key, deleted)


# -- organization property values --------------------------------------------------------------


async def restore_organization_values(ctx: RunContext) -> None:
    todo = ctx.journal.cutover.deletions(ctx.run.id, "organization_property", OPEN)
    if not todo:
        return
    existing = {o.get("code") for o in await ctx.kinde.list_organizations()}
    by_code: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for item in todo:
        ref = json.loads(item.kinde_ref)
        if ref["code"] not in existing:
            _record(ctx, "organization_property", item.key, DeletionState.DELETED, "organization already gone")
        else:
            by_code.setdefault(ref["code"], []).append((item.key, ref))
    for code, items in by_code.items():
        try:
            await _restore_organization(ctx, code, items)
        except ApiError as exc:
            if exc.stops_run:  # no other item would fare better
                raise
            for key, _ in items:
                _record(ctx, "organization_property", key, DeletionState.FAILED, str(exc))


async def _restore_organization(ctx: RunContext, code: str, items: list[tuple[str, dict[str, Any]]]) -> None:
    current = await ctx.kinde.organization_properties(code)
    restore: dict[str, str | None] = {}
    for key, ref in items:
        now = current.get(ref["key"]) or None
        if now == (ref["previous"] or None):
            _record(ctx, "organization_property", key, DeletionState.DELETED, "already back to its previous value")
        elif now != ref["written"]:
            _record(ctx, "organization_property", key, DeletionState.KEPT, "changed since the run wrote it: left as is")
        else:
            restore[ref["key"]] = ref["previous"]
    if not restore:
        return
    try:
        await ctx.kinde.restore_organization_properties(code, restore)
    except ApiError as exc:  # a Kinde that refuses null to clear a value: the empty string is "no value"
        if exc.retryable or exc.status != 400 or None not in restore.values():
            raise
        await ctx.kinde.restore_organization_properties(code, {k: v or "" for k, v in restore.items()})
    for key, ref in items:
        if ref["key"] in restore:
            _record(ctx, "organization_property", key, DeletionState.DELETED, "restored to its previous value")


# -- role permissions and permissions ------------------------------------------------------------


async def detach_role_permissions(ctx: RunContext) -> None:
    todo = ctx.journal.cutover.deletions(ctx.run.id, "role_permission", OPEN)
    if not todo:
        return
    role_ids = {r.get("key"): r.get("id") for r in await ctx.kinde.list_roles()}
    attached: dict[str, dict[str, str]] = {}  # role key -> permission key -> permission id
    for item in todo:
        role_key, permission_key = json.loads(item.kinde_ref)
        role_id = role_ids.get(role_key)
        try:
            if role_id is not None and role_key not in attached:
                attached[role_key] = {p.get("key"): p.get("id") for p in await ctx.kinde.role_permissions(str(role_id))}
        except ApiError as exc:
            if exc.stops_run:  # no other item would fare better
                raise
            _refused(ctx, "role_permission", item, exc)
            continue
        permission_id = attached.get(role_key, {}).get(permission_key)
        if role_id is None or permission_id is None:
            _absent(ctx, "role_permission", item)
            continue
        await _delete(
            ctx, "role_permission", item, partial(ctx.kinde.remove_role_permission, str(role_id), str(permission_id))
        )


async def _roles_carrying(ctx: RunContext) -> dict[str, list[str]]:
    """Permission key -> keys of the roles in Kinde that carry it (a request per role)."""
    carrying: dict[str, list[str]] = {}
    for role in await ctx.kinde.list_roles():
        if isinstance(role.get("id"), str):
            for permission in await ctx.kinde.role_permissions(role["id"]):
                carrying.setdefault(permission.get("key"), []).append(str(role.get("key")))
    return carrying


async def delete_permissions(ctx: RunContext) -> None:
    todo = ctx.journal.cutover.deletions(ctx.run.id, "permission", OPEN)
    if not todo:
        return
    ids = {p.get("key"): p.get("id") for p in await ctx.kinde.list_permissions()}
    carrying = await _roles_carrying(ctx)
    for item in todo:
        key = item.key
        if not isinstance(ids.get(key), str):
            _absent(ctx, "permission", item)
            continue
        if carrying.get(key):
            roles = ", ".join(sorted(carrying[key]))
            _record(ctx, "permission", key, DeletionState.KEPT, f"still attached to role(s) {roles}: in use, kept")
            continue
        await _delete(ctx, "permission", item, partial(ctx.kinde.delete_permission, str(ids[key])))


# -- property definitions ------------------------------------------------------------------------


async def _values_held(ctx: RunContext, wanted: set[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """(context, key) -> how many users / organizations left in Kinde hold a value for it."""
    held: Counter[tuple[str, str]] = Counter()
    if any(context == "usr" for context, _ in wanted):
        async for page in ctx.kinde.users_with_properties():
            for user in page:
                held.update(_holding("usr", user.get("properties"), wanted))
    if any(context == "org" for context, _ in wanted):
        for org in await ctx.kinde.list_organizations():
            if isinstance(org.get("code"), str):
                held.update(_holding("org", await ctx.kinde.organization_properties(org["code"]), wanted))
    return held


def _holding(context: str, values: Any, wanted: set[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    if not isinstance(values, dict):
        return ()
    return [(context, key) for key, value in values.items() if value not in (None, "") and (context, key) in wanted]


async def delete_properties(ctx: RunContext) -> None:
    todo = ctx.journal.cutover.deletions(ctx.run.id, "property", OPEN)
    if not todo:
        return
    wanted = {tuple(json.loads(item.kinde_ref)) for item in todo}
    held = await _values_held(ctx, wanted)  # type: ignore[arg-type]
    ids = {
        (context, p.get("key")): p.get("id")
        for context in {context for context, _ in wanted}
        for p in await ctx.kinde.list_properties(context)
    }
    for item in todo:
        context, key = json.loads(item.kinde_ref)
        property_id = ids.get((context, key))
        if not isinstance(property_id, str):
            _absent(ctx, "property", item)
        elif held[(context, key)]:
            holders = "user(s)" if context == "usr" else "organization(s)"
            detail = f"{held[(context, key)]} {holders} this undo did not delete still hold a value: in use, kept"
            _record(ctx, "property", item.key, DeletionState.KEPT, detail)
        else:
            await _delete(ctx, "property", item, partial(ctx.kinde.delete_property, property_id))
