"""Clerk metadata as Kinde properties: the definitions a run needs, and each user's and organization's values.

Kinde stores property values as strings on properties defined beforehand (``POST /api/v1/properties``,
in a category). Definitions the mapping needs are listed in the plan; a real run creates the missing
ones (in a "Clerk" category) unless ``create_properties`` is off, which makes them an error before
anything is written. Values are written with one PATCH per user (or organization); whenever an earlier
attempt may have written them, the current values are read first and only the differing ones are sent.
Created definitions and each organization value's previous value are journaled before they are sent,
for ``undo``.
"""

from __future__ import annotations

import json

from migrator.errors import ApiError, ConfigError
from migrator.journal import DefinitionKind
from migrator.mapping import PropertySpec
from migrator.models import UserPlan
from migrator.reports import Plan
from migrator.stages.context import RunContext
from migrator.stages.creates import create_settled

CATEGORY_NAME = "Clerk"
CONTEXTS = (("usr", "properties"), ("org", "organization_properties"))


def _specs(ctx: RunContext, context: str) -> tuple[PropertySpec, ...]:
    return ctx.options.properties if context == "usr" else ctx.options.organization_properties


async def missing_definitions(ctx: RunContext) -> list[tuple[str, PropertySpec]]:
    """(context, spec) of every mapped property Kinde has no definition for (read only: dry runs too)."""
    missing: list[tuple[str, PropertySpec]] = []
    for context, _ in CONTEXTS:
        specs = _specs(ctx, context)
        if not specs:
            continue
        existing = {item.get("key") for item in await ctx.kinde.list_properties(context)}
        missing.extend((context, spec) for spec in specs if spec.key not in existing)
    return missing


def describe_missing(missing: list[tuple[str, PropertySpec]]) -> list[str]:
    return [
        f"{spec.key} ({'user' if context == 'usr' else 'organization'}, from {spec.path})" for context, spec in missing
    ]


def refuse_missing(ctx: RunContext, missing: list[tuple[str, PropertySpec]]) -> None:
    """With ``create_properties`` off, a missing definition stops a real run before any write."""
    if missing and not ctx.settings.create_properties and not ctx.run.dry_run:
        raise ConfigError(
            "Kinde has no definition for the mapped propert(y/ies) "
            + ", ".join(describe_missing(missing))
            + ": define them in Kinde (Settings > Properties), or drop --no-create-properties to have them created"
        )


async def plan_definitions(ctx: RunContext, plan: Plan) -> None:
    """List the missing definitions in the plan; refuse a real run if they may not be created."""
    missing = await missing_definitions(ctx)
    plan.properties_missing = describe_missing(missing)
    refuse_missing(ctx, missing)


async def ensure_definitions(ctx: RunContext) -> None:
    """Create every missing definition the mapping needs (or refuse, see ``refuse_missing``)."""
    missing = await missing_definitions(ctx)
    refuse_missing(ctx, missing)
    for context, _ in CONTEXTS:  # found ones are journaled too: an undo leaves them alone
        for spec in _specs(ctx, context):
            if (context, spec) not in missing:
                ctx.journal.cutover.record_definition(ctx.run.id, DefinitionKind.PROPERTY, context, spec.key, created=False)
    categories: dict[str, str] = {}
    for context, spec in missing:
        if context not in categories:
            categories[context] = await _category(ctx, context)
        ctx.journal.cutover.record_definition(ctx.run.id, DefinitionKind.PROPERTY, context, spec.key, created=True)
        await _create_definition(ctx, context, spec, categories[context])


async def _category(ctx: RunContext, context: str) -> str:
    for category in await ctx.kinde.list_property_categories(context):
        if category.get("name") == CATEGORY_NAME and isinstance(category.get("id"), str):
            return category["id"]

    async def find(_: ApiError) -> str | None:
        found = [c for c in await ctx.kinde.list_property_categories(context) if c.get("name") == CATEGORY_NAME]
        return found[0]["id"] if found and isinstance(found[0].get("id"), str) else None

    body = {"name": CATEGORY_NAME, "context": context}
    ctx.journal.cutover.record_definition(ctx.run.id, DefinitionKind.PROPERTY_CATEGORY, context, CATEGORY_NAME, created=True)
    return await create_settled(
        lambda: ctx.kinde.create_property_category(body),
        find,
        attempts=ctx.settings.max_attempts,
        reconciled=ctx.reconciled("property category", f"{context} {CATEGORY_NAME}"),
    )


async def _create_definition(ctx: RunContext, context: str, spec: PropertySpec, category_id: str) -> None:
    body = {
        "name": spec.name or spec.key,
        "key": spec.key,
        "description": f"Clerk {spec.path} (migrated)",
        "type": spec.type,
        "context": context,
        "is_private": spec.is_private,
        "category_id": category_id,
    }

    async def create() -> bool:
        await ctx.kinde.create_property(body)
        return True

    async def find(_: ApiError) -> bool | None:
        return True if spec.key in {p.get("key") for p in await ctx.kinde.list_properties(context)} else None

    reconciled = ctx.reconciled("property definition", f"{context} {spec.key}")
    await create_settled(create, find, attempts=ctx.settings.max_attempts, reconciled=reconciled)


async def write_user_properties(ctx: RunContext, plan: UserPlan, kinde_id: str, *, compare: bool) -> None:
    """The user's mapped values; with ``compare`` (an earlier attempt may have written them) only changes."""
    values = dict(plan.properties)
    if compare and values:
        current = await ctx.kinde.user_properties(kinde_id)
        values = {key: value for key, value in values.items() if current.get(key) != value}
    if values:
        await ctx.kinde.set_user_properties(kinde_id, values)


async def write_organization_properties(ctx: RunContext) -> None:
    """Each organization's mapped values, once it exists in Kinde; compared first (PATCH is cheap to skip)."""
    for org in ctx.journal.organizations.all(ctx.run.id):
        if org.properties != "pending" or org.kinde_code is None:
            continue
        values: dict[str, str] = json.loads(org.property_values or "{}")
        current = await ctx.kinde.organization_properties(org.kinde_code)
        changed = {key: value for key, value in values.items() if current.get(key) != value}
        with ctx.journal.transaction():  # before the PATCH: what an undo restores on an organization not ours
            for key, value in changed.items():
                ctx.journal.cutover.record_property_write(
                    ctx.run.id, org.clerk_org_id, org.kinde_code, key, current.get(key), value
                )
        if changed:
            await ctx.kinde.set_organization_properties(org.kinde_code, changed)
        ctx.journal.organizations.record_properties(ctx.run.id, org.clerk_org_id)
