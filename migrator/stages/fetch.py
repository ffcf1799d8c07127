"""Stage: fetch every Clerk user (mapped and staged), then organizations, roles and memberships.

Reads: the run's fetch cursor. Writes: staged users and their problems, the cursor after every
page, organizations/roles/memberships. Emits: the ``fetch`` phase.

A producer pages Clerk while the consumer maps and stages the previous page; both run in one task
group, so a Clerk failure ends the stage at once instead of leaving the consumer waiting. At the
end the staged users are counted against Clerk's own count: a gap is never a green result.
"""

from __future__ import annotations

import asyncio
from typing import Any

from migrator.events import Notice, PhaseAdvanced, PhaseFinished, PhaseStarted
from migrator.mapping import (
    kinde_role_key,
    organization_body,
    organization_properties,
    plan_membership,
    role_body,
    role_permissions,
)
from migrator.stages.context import RunContext, task_group
from migrator.stages.staging import Problem, staged_row

Page = list[dict[str, Any]]


async def fetch(ctx: RunContext) -> None:
    ctx.emit(PhaseStarted("fetch", ctx.run.source_count))
    await _fetch_users(ctx, resumed=ctx.run.fetch_cursor is not None)
    if ctx.settings.migrate_organizations:
        await fetch_organizations(ctx)
    await _check_complete(ctx)
    ctx.emit(PhaseFinished("fetch"))


async def _fetch_users(ctx: RunContext, *, resumed: bool) -> None:
    run = ctx.journal.runs.get(ctx.run.id)  # the cursor as last recorded
    _, seq = ctx.journal.users.last_staged(run.id)
    pages: asyncio.Queue[Page | None] = asyncio.Queue(maxsize=2)

    async def produce() -> None:
        async for page in ctx.clerk.iter_user_pages(
            start_after=run.fetch_cursor,
            start_after_created=run.fetch_cursor_at,
            start_offset=seq if run.fetch_cursor else 0,
            already_have=(lambda clerk_id: ctx.journal.users.is_staged(run.id, clerk_id)) if resumed else None,
        ):
            await pages.put(page)
        await pages.put(None)

    async def consume() -> None:
        nonlocal seq
        staged = ctx.journal.users.staged_count(run.id)
        while (page := await pages.get()) is not None:
            rows, problems = stage_page(ctx, page, seq)
            seq += len(page)
            with ctx.journal.transaction():
                staged += ctx.journal.users.stage(run.id, rows)
                ctx.journal.users.add_problems(run.id, problems)
                ctx.journal.runs.record_fetch_cursor(run.id, page[-1]["id"], page[-1].get("created_at"))
            ctx.emit(PhaseAdvanced("fetch", staged, run.source_count))
            ctx.emit_pacing()

    async with task_group() as group:
        group.create_task(produce())
        group.create_task(consume())


def stage_page(ctx: RunContext, page: Page, seq: int) -> tuple[list[dict[str, Any]], list[Problem]]:
    export_path = ctx.export.path if ctx.export else None
    rows, problems = [], []
    for offset, user in enumerate(page):
        row, user_problems = staged_row(user, seq + offset, ctx.export_row(user["id"]), ctx.options, export_path)
        rows.append(row)
        problems.extend(user_problems)
    return rows, problems


async def _check_complete(ctx: RunContext) -> None:
    """Every Clerk user staged? Users created since the last page are fetched by continuing from the
    cursor; a gap that remains (pages a server skipped) makes the run exit 1 and the next resume
    fetch everything again."""
    total = await ctx.clerk.count_users()
    if ctx.journal.users.staged_count(ctx.run.id) < total:
        await _fetch_users(ctx, resumed=False)  # newcomers sort last: continue after the cursor
        total = await ctx.clerk.count_users()
    staged = ctx.journal.users.staged_count(ctx.run.id)
    ctx.journal.runs.record_source_count(ctx.run.id, total)
    if staged < total:
        message = (
            f"Clerk reports {total} users but only {staged} were fetched: {total - staged} missing (a server"
            f" that skipped pages?). `migrator resume {ctx.run.id}` fetches every user again and migrates the"
            " missing ones; nobody is created twice"
        )
        ctx.notes.append(message)
        ctx.emit(Notice(message, level="warning"))
        ctx.journal.runs.record_fetch_done(ctx.run.id, done=False)
    elif staged > total:
        ctx.emit(
            Notice(
                f"Clerk reports {total} users but {staged} distinct users were fetched: users deleted in Clerk"
                " during the fetch are still migrated (see `migrator status`)",
                level="warning",
            )
        )


async def fetch_organizations(ctx: RunContext) -> None:
    journal, run_id, options = ctx.journal, ctx.run.id, ctx.options
    problems: list[Problem] = []
    with journal.transaction():
        organizations = 0
        async for org in ctx.clerk.iter_organizations():
            if isinstance(org.get("id"), str):
                organizations += 1
                journal.organizations.stage(run_id, org["id"], organization_body(org))
                journal.organizations.stage_properties(run_id, org["id"], organization_properties(org, options))
        if not organizations:
            return  # roles serve memberships only: a Clerk without organizations puts no role in Kinde
        async for role in ctx.clerk.iter_roles():
            try:
                key = kinde_role_key(str(role.get("key") or ""), options)
            except ValueError as exc:
                problems.append(("-", "warning", f"role {role.get('id')}: {exc}"))
                continue
            journal.organizations.stage_role(run_id, key, role_body({**role, "key": key}))
            try:
                journal.organizations.stage_role_permissions(run_id, key, role_permissions(role))
            except ValueError as exc:
                problems.append(("-", "warning", f"role {role.get('id')}: {exc}"))
        async for membership in ctx.clerk.iter_memberships():
            try:
                user_id, planned = plan_membership(membership, options)
            except ValueError as exc:
                problems.append(("-", "warning", f"membership {membership.get('id')}: {exc}"))
                continue
            journal.organizations.stage_role(run_id, planned.role_key, {"name": planned.role_key, "key": planned.role_key})
            journal.organizations.stage_membership(run_id, user_id, planned.clerk_org_id, planned.role_key)
        journal.users.add_problems(run_id, problems)
