"""Stage: create each pending user in Kinde, import its password, set its flags.

Reads: pending users. Writes: each user's step results, committed in batches (a crash loses only
steps in flight, which the next run's lookup recovers). Emits: the ``migrate`` phase and pacing.

A producer feeds a bounded queue; ``settings.concurrency`` workers take users from it; a committer
flushes results a few times a second. All run in one task group: an error that would fail every
user alike (credentials, scope, garbage answers) ends them all at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from migrator.errors import (
    AlreadyExists,
    ApiError,
    IdentityRefused,
    InputError,
    MigratorError,
)
from migrator.events import Notice, PhaseAdvanced, PhaseFinished, PhaseStarted
from migrator.journal import (
    Created,
    Lookup,
    PasswordStep,
    Step,
    UserRow,
    UserState,
)
from migrator.kinde.client import CreatedUser, KindeUser
from migrator.mapping import identity_key, normalized_identity
from migrator.models import UserPlan, plan_from_record
from migrator.stages.context import RunContext, Ticker, task_group
from migrator.stages.creates import create_settled
from migrator.stages.properties import write_user_properties
from migrator.stages.reconcile import key_of
from migrator.stages.social import link_social_identities

COMMIT_INTERVAL = 0.25  # seconds between journal commits
COMMIT_BATCH = 500

Record = Callable[[str, dict[str, Any]], None]


class _Committer:
    """Collects per-user results and writes them to the journal in batches."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.updates: list[tuple[str, dict[str, Any]]] = []

    def record(self, clerk_id: str, fields: dict[str, Any]) -> None:
        self.updates.append((clerk_id, fields))
        if len(self.updates) >= COMMIT_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.updates:
            batch, self.updates = self.updates, []
            self.ctx.journal.users.record_outcomes(self.ctx.run.id, batch)

    async def run_periodically(self) -> None:
        while True:
            await asyncio.sleep(COMMIT_INTERVAL)
            self.flush()


async def load(ctx: RunContext) -> None:
    todo = ctx.journal.users.pending_count(ctx.run.id)
    if not todo:
        return
    ctx.emit(PhaseStarted("migrate", todo))
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=ctx.settings.concurrency * 4)
    committer = _Committer(ctx)
    counts = {"created": 0, "finished": 0, "failed": 0}
    ticker = Ticker()

    async def produce() -> None:
        for row in ctx.journal.users.pending(ctx.run.id):
            await queue.put(row)
        for _ in range(ctx.settings.concurrency):
            await queue.put(None)

    async def work() -> None:
        while (row := await queue.get()) is not None:
            counts[await migrate_user(ctx, row, committer.record)] += 1
            if ticker.due():
                ctx.emit(PhaseAdvanced("migrate", sum(counts.values()), todo, dict(counts)))
                ctx.emit_pacing()

    try:
        async with task_group() as outer:
            flusher = outer.create_task(committer.run_periodically())
            async with task_group() as workers:
                workers.create_task(produce())
                for _ in range(ctx.settings.concurrency):
                    workers.create_task(work())
            flusher.cancel()
    finally:
        committer.flush()  # what finished before a failure is kept
    ctx.emit(PhaseAdvanced("migrate", sum(counts.values()), todo, dict(counts)))
    ctx.emit_pacing()
    ctx.emit(PhaseFinished("migrate"))


async def migrate_user(ctx: RunContext, row: UserRow, record: Record) -> str:
    """create -> identities -> password -> flags for one user; returns 'created', 'finished' or 'failed'.

    A per-user failure is recorded and the run goes on; one that stops the run (``stops_run``) is raised (after recording).
    """
    clerk_id = row.clerk_id
    plan = plan_from_record(clerk_id, json.loads(row.plan))
    fields: dict[str, Any] = {"attempts": row.attempts + 1}
    outcome, step = "finished", "create"
    try:
        if row.created == Created.PENDING:
            await _create(ctx, plan, fields)
            outcome = "created"
        kinde_id = fields.get("kinde_id", row.kinde_id)
        step = "identities"
        if row.identities == Step.PENDING:
            missing = json.loads(row.missing_identities or "[]")
            if row.created == Created.WORKFLOW:  # the lazy workflow created it with some of the plan's identities
                missing = await _lacking(ctx, kinde_id, missing)
            await _add_missing_identities(ctx, kinde_id, missing, fields)
        step = "password"
        if row.password == PasswordStep.PENDING:
            await _set_password(ctx, plan, kinde_id)
            fields["password"] = PasswordStep.SET
        step = "flags"
        if row.flags == Step.PENDING:
            await _set_flags(ctx, plan, kinde_id)
            fields["flags"] = Step.DONE
        step = "properties and social identities"
        await _write_extras(ctx, row, plan, kinde_id, fields)
        step = "identities"
        if fields.get("identities") == Step.PENDING:
            raise _identities_error(json.loads(fields["missing_identities"]))
        fields.update(state=UserState.DONE, error_code=None, error_message=None, error_retryable=None)
        return outcome
    except MigratorError as exc:
        if exc.stops_run:  # no other item would fare better
            raise
        fields.update(state=UserState.FAILED, **_error_fields(exc))
        ctx.emit(Notice(f"{clerk_id}: {step} failed: {exc}", level="warning"))  # retries are over: news
        return "failed"
    finally:
        record(clerk_id, fields)


async def _write_extras(ctx: RunContext, row: UserRow, plan: UserPlan, kinde_id: str, fields: dict[str, Any]) -> None:
    """Properties, then social identities. Unless this attempt created the user, an earlier one may
    have written some of them: Kinde is read first and only what is missing is sent."""
    compare = row.created != Created.PENDING
    if row.properties == Step.PENDING:
        await write_user_properties(ctx, plan, kinde_id, compare=compare)
        fields["properties"] = Step.DONE
    if row.social == Step.PENDING:
        await link_social_identities(ctx, plan, kinde_id, compare=compare)
        fields["social"] = Step.DONE


def _error_fields(exc: Exception) -> dict[str, Any]:
    status = getattr(exc, "status", None)
    return {
        "error_code": getattr(exc, "code", None) or (str(status) if status else type(exc).__name__),
        "error_message": str(exc),
        "error_retryable": int(bool(getattr(exc, "retryable", False))),
    }


async def _create(ctx: RunContext, plan: UserPlan, fields: dict[str, Any]) -> None:
    """Create the user (settled by lookup after any unclear answer); note identities Kinde refused."""
    body = plan.create_body()

    async def find_ours(exc: ApiError) -> CreatedUser | None:
        return await own_user(ctx, plan, exc)

    reconciled = ctx.reconciled("user", plan.clerk_id)
    created = await create_settled(
        lambda: ctx.kinde.create_user(body), find_ours, attempts=ctx.settings.max_attempts, reconciled=reconciled
    )
    fields.update(created=Created.CREATED, kinde_id=created.id, lookup=Lookup.FOUND)
    if created.refused:
        missing = [body["identities"][i] for i in created.refused]
        fields.update(identities=Step.PENDING, missing_identities=json.dumps(missing))


async def own_user(ctx: RunContext, plan: UserPlan, exc: ApiError) -> CreatedUser | None:
    """After "already exists" or no clear answer, look: our user (as a created one), or None if nobody
    holds the identity. Someone else holding it raises: that user is not ours to touch."""
    existing = await _find(ctx, plan)
    if existing is not None and existing.provided_id == plan.clerk_id:
        return CreatedUser(existing.id)  # an earlier attempt went through after all
    if existing is not None:  # not ours: our create cannot have gone through
        owner = f"provided_id {existing.provided_id}" if existing.provided_id else "no provided_id"
        raise AlreadyExists(
            f"Kinde user {existing.id} ({owner}) already holds an identity of this user: {exc}",
            service="Kinde",
            status=exc.status,
            code=exc.code,
        ) from None
    return None


async def _find(ctx: RunContext, plan: UserPlan) -> KindeUser | None:
    for field_name, value in (("email", plan.email), ("username", plan.username), ("phone", plan.phone)):
        if not value:
            continue
        key = normalized_identity(field_name, value)
        for user in await ctx.kinde.find_users(field_name, [value]):
            if user.provided_id == plan.clerk_id or key_of(user, field_name) == key:
                return user
    return None


async def _lacking(ctx: RunContext, kinde_id: str, identities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Those of ``identities`` the Kinde user does not hold yet (read from Kinde: nothing is sent twice)."""
    held = {identity_key(kind, value) for kind, value, _ in await ctx.kinde.user_identities(kinde_id)}
    return [i for i in identities if identity_key(i["type"], i.get("details", {}).get(i["type"])) not in held]


async def _add_missing_identities(
    ctx: RunContext, kinde_id: str, missing: list[dict[str, Any]], fields: dict[str, Any]
) -> None:
    """Identities a create did not carry across, added one by one; those refused again stay missing."""
    still_missing = []
    for identity in missing:
        details = identity.get("details", {})
        body = {"type": identity["type"], "value": details.get(identity["type"])}
        if details.get("phone_country_id"):
            body["phone_country_id"] = details["phone_country_id"]
        try:
            await ctx.kinde.add_identity(kinde_id, body)
        except MigratorError as exc:
            if exc.stops_run:  # no other item would fare better
                raise
            still_missing.append({**identity, "reason": str(exc)})
    fields["identities"] = Step.PENDING if still_missing else Step.DONE
    fields["missing_identities"] = json.dumps(still_missing) if still_missing else None


def _identities_error(missing: list[dict[str, Any]]) -> IdentityRefused:
    described = "; ".join(
        f"{i['type']} {i.get('details', {}).get(i['type'])}"
        + f" ({i.get('reason') or 'Kinde did not create it: in use by another user, or refused by its rules'})"
        for i in missing
    )
    return IdentityRefused(f"the user was created in Kinde without {len(missing)} identit(y/ies): {described}")


async def _set_password(ctx: RunContext, plan: UserPlan, kinde_id: str) -> None:
    translated = ctx.password_import(plan.clerk_id)
    if translated is None:
        raise InputError(
            f"{plan.clerk_id}: the export no longer holds an importable password for this user"
            " (was it changed since the run began?)"
        )
    await ctx.kinde.set_password(kinde_id, translated.fields)


async def _set_flags(ctx: RunContext, plan: UserPlan, kinde_id: str) -> None:
    flags: dict[str, Any] = {}
    if plan.request_password_reset:
        flags["is_password_reset_requested"] = True
    if plan.suspended:
        flags["is_suspended"] = True
    if flags:
        await ctx.kinde.update_user(kinde_id, flags)
