"""Stage (catch-up runs, ``migrator sync``): fetch only what changed in Clerk since a run began.

Reads: the run's ``since_ms`` (its base run's start, less a margin for clock skew). Writes: staged
users (sign-ups since, and users updated since), an ``updates`` row for each user this journal
already put in Kinde whose owned fields changed, and a ``deletions`` row for each such user Clerk
no longer has. Emits: the ``catch-up`` phase.

* sign-ups: ``GET /v1/users?created_at_after=`` (the spec's parameter, Unix ms), oldest first;
  they take the ordinary path (lookup first, then create), so nothing is created twice;
* changes: ``order_by=-updated_at``, paged until a user older than ``since_ms``; a user the
  journal knows is compared with what the journal says Kinde holds (``cutover_diff``), and only
  differences are written later (``stages.updates``), so a second catch-up writes nothing;
* ``--full``: every user is paged (the hardened pager) and diffed, for an API whose ``updated_at``
  does not move on a ban or a password change (the spec does not say; ``ClerkBehaviour``);
* shared identities: the other holders in Clerk of its sign-ups' identities (and of those edited users
  gain) are asked for, so the conflict rule settles them as a full run would (``stages.catchup_conflicts``);
* deletions: when Clerk's count differs from the users the journal has seen, the known ids are
  swept 100 at a time (``user_id=`` filter); those missing are listed (or deleted with
  ``--delete-removed``, by ``stages.updates``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from migrator.events import Notice, PhaseAdvanced, PhaseFinished, PhaseStarted
from migrator.journal import Created, DeletionState, Lookup, PasswordStep, Step, UserRow, UserState
from migrator.mapping import identity_key, password_updated_at
from migrator.stages.catchup_conflicts import settle_context
from migrator.stages.context import RunContext
from migrator.stages.fetch import fetch_organizations
from migrator.stages.staging import staged_row

SKEW_MARGIN_MS = 5 * 60_000  # our clock and Clerk's may differ: look a little further back (diffs are idempotent)
SWEEP_BATCH = 100  # the spec's limit of user_id values per request
REMOVABLE = ("email", "phone", "username")  # identity types a catch-up removes when Clerk removed them


def since_ms(started_at: str) -> int:
    """The base run's start (ISO, seconds) as the Unix ms a catch-up looks back to."""
    return int(datetime.fromisoformat(started_at).timestamp() * 1000) - SKEW_MARGIN_MS


async def catch_up(ctx: RunContext) -> None:
    options = ctx.run.run_options or {}
    since = int(options["since_ms"])
    ctx.emit(PhaseStarted("catch-up", None))
    _, seq = ctx.journal.users.last_staged(ctx.run.id)
    staged = 0
    fresh: dict[str, dict[str, Any]] = {}  # sign-ups, and edited users gaining an identity: their conflicts
    sources = (ctx.clerk.iter_users_created_after(since), ctx.clerk.iter_users_updated_since(since))
    if options.get("full"):  # an API whose updated_at misses bans or password changes: compare everyone
        sources = (ctx.clerk.iter_user_pages(),)
    for pages in sources:
        async for page in pages:
            seq = _stage_page(ctx, page, seq, fresh)
            staged += len(page)
            ctx.emit(PhaseAdvanced("catch-up", staged, None))
    if ctx.settings.migrate_organizations:
        await fetch_organizations(ctx)  # memberships of sign-ups; those already added are marked 'earlier'
    await settle_context(ctx, fresh)  # shared identities settled over all of Clerk (gather: conflicts)
    gone = await _sweep_deletions(ctx)
    ctx.journal.runs.record_source_count(ctx.run.id, ctx.journal.users.staged_count(ctx.run.id))
    if gone:
        verb = "to delete from Kinde" if options.get("delete_removed") else "listed (--delete-removed deletes them)"
        ctx.emit(Notice(f"{gone} user(s) this journal migrated are gone from Clerk: {verb}", level="warning"))
    ctx.emit(PhaseFinished("catch-up"))


def _stage_page(ctx: RunContext, page: list[dict[str, Any]], seq: int, fresh: dict[str, dict[str, Any]]) -> int:
    export_path = ctx.export.path if ctx.export else None
    with ctx.journal.transaction():
        for user in page:
            if ctx.journal.users.is_staged(ctx.run.id, user["id"]):
                continue  # on both lists, or seen before a crash: decided once
            row, problems = staged_row(user, seq, ctx.export_row(user["id"]), ctx.options, export_path)
            seq += 1
            ctx.journal.users.stage(ctx.run.id, [row])
            known = ctx.journal.users.known(user["id"])
            if known is None and _keep_lazy(ctx, user["id"]):
                continue  # left to Kinde's lazy workflow: never created by a catch-up
            if known is None:
                _keep_conflict_skip(ctx, user["id"])
                ctx.journal.users.add_problems(ctx.run.id, problems)  # a sign-up (or never migrated): the ordinary path
                fresh[user["id"]] = user
            elif _stage_known(ctx, user, row, known):
                fresh[user["id"]] = user
    return seq


def _keep_lazy(ctx: RunContext, clerk_id: str) -> bool:
    """A user an earlier run left to Kinde's lazy workflow stays so while its window is open, whatever this
    catch-up's policy: the workflow creates it at its first sign-in, `migrator lazy finish` adopts it."""
    waiting = ctx.journal.users.left_to_workflow(ctx.run.id, clerk_id)
    if waiting is None:
        return False
    ctx.journal.users.keep_lazy(ctx.run.id, clerk_id, waiting.password_problem)
    return True


def _keep_conflict_skip(ctx: RunContext, clerk_id: str) -> None:
    """A user an earlier run skipped because another held its email/username/phone stays skipped: the
    keeper still holds it in Kinde (this run's conflict check sees only this run's users)."""
    earlier = ctx.journal.users.earlier_skip(ctx.run.id, clerk_id)
    if earlier is not None and str(earlier.skip_reason).startswith("duplicate_"):
        detail = f"{earlier.skip_detail} (settled by run {earlier.run_id})"
        ctx.journal.users.skip(ctx.run.id, clerk_id, earlier.skip_reason, detail)


def _stage_known(ctx: RunContext, user: dict[str, Any], row: dict[str, Any], known: UserRow) -> bool:
    """A user already in Kinde: record what to bring up to date; its row costs the load stage nothing.
    True when it gains an identity (its conflicts are settled with the sign-ups')."""
    # a user already in Kinde cannot move lazily (the workflow creates users): the fallback applies
    policy = ctx.settings.unimportable_passwords
    policy = ctx.settings.lazy_fallback if policy == "lazy" else policy
    patch, added, notes = cutover_diff(json.loads(known.plan), row, policy)
    settled = _password_settled_at(ctx, known)
    password = False
    changed_at = _password_changed_at(user)
    if changed_at is not None and changed_at >= settled:
        if row.get("password_method"):
            password = True  # importable from the fresh export given to this catch-up
            settled = _export_ms(ctx) or changed_at + 1
        elif policy == "reset":
            patch["is_password_reset_requested"] = True
            settled = changed_at + 1  # this change is handled; only a later one is news
        else:
            notes.append("password changed in Clerk and no export holds the new one: Kinde keeps the old password")
    ctx.journal.users.update(
        ctx.run.id,
        user["id"],
        state=UserState.DONE,
        lookup=Lookup.FOUND,
        created=Created.EARLIER,
        kinde_id=known.kinde_id,
        password=PasswordStep.SET if password else PasswordStep.NA,
        password_method=row.get("password_method") if password else None,
        password_problem=None,  # Kinde keeps the password it has unless it changed (then: an update or a note)
        password_settled_ms=settled,  # an n/a row keeps when the password was last settled
        flags=Step.NA,
        identities=Step.NA,
        lazy=0,  # in Kinde already: not of this catch-up's lazy cohort
        skip_reason=None,
        skip_detail=None,
        plan=row["plan"] or json.dumps({**json.loads(known.plan), **_suspension(patch)}),
    )
    ctx.journal.users.add_problems(ctx.run.id, [(user["id"], "warning", note) for note in notes])
    if patch or added or password:
        ctx.journal.cutover.add_update(ctx.run.id, user["id"], known.kinde_id, patch, added, password)
    return any(not identity.get("remove") for identity in added)


def _password_settled_at(ctx: RunContext, known: UserRow) -> int:
    """Unix ms from which a password change is news to Kinde: what the known row recorded (a catch-up's),
    else the export the known password came from, or (no password imported then) the run's start, to the ms
    (a journal older than ``started_ms``: to the second, which errs towards "changed")."""
    if known.password_settled_ms is not None:
        return int(known.password_settled_ms)
    run = ctx.journal.runs.get(known.run_id)
    export_time = run.config_summary.get("clerk_export_time")
    if known.password == PasswordStep.SET and export_time:
        return _iso_ms(export_time)
    return run.started_ms if run.started_ms is not None else _iso_ms(run.started_at)


def _export_ms(ctx: RunContext) -> int | None:
    moment = ctx.settings.export_time
    return int(moment.timestamp() * 1000) if moment else None


def _iso_ms(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp() * 1000)


def cutover_diff(old: dict[str, Any], row: dict[str, Any], policy: str) -> tuple[dict[str, Any], list[Any], list[str]]:
    """(PATCH body, identity changes, notes) that bring Kinde from ``old`` (the plan it holds) to the
    staged ``row``. Only fields we own: names, suspension, identities. An identity change is one to add,
    or one to remove (``"remove": True``: in the old plan, gone from Clerk). Pure."""
    patch: dict[str, Any] = {}
    notes: list[str] = []
    if row["plan"] is None:
        if row.get("skip_reason") == "banned" and not old.get("suspended"):
            patch["is_suspended"] = True  # banned since, under banned_users=skip: suspend rather than leave active
        elif row.get("skip_reason") != "banned":
            notes.append(f"now skipped ({row.get('skip_reason')}): left unchanged in Kinde")
        return patch, [], notes
    new = json.loads(row["plan"])
    for name in ("given_name", "family_name"):
        if (new.get(name) or None) != (old.get(name) or None):
            patch[name] = new.get(name) or ""
    if bool(new.get("suspended")) != bool(old.get("suspended")):
        patch["is_suspended"] = bool(new.get("suspended"))
    before = {identity_key(i.get("type"), i.get("value")) for i in old.get("identities", [])}
    after = {identity_key(i.get("type"), i.get("value")) for i in new.get("identities", [])}
    added = [i for i in new.get("identities", []) if identity_key(i.get("type"), i.get("value")) not in before]
    for identity in old.get("identities", []):
        if identity_key(identity.get("type"), identity.get("value")) in after:
            continue
        if identity.get("type") in REMOVABLE:  # ours: the plan this journal sent put it there
            added.append({**identity, "remove": True})
        else:
            notes.append(
                f"{identity['type']} {identity['value']} was removed in Clerk: still in Kinde (remove by hand)"
            )
    return patch, added, notes


def _suspension(patch: dict[str, Any]) -> dict[str, Any]:
    return {"suspended": patch["is_suspended"]} if "is_suspended" in patch else {}



def _password_changed_at(user: dict[str, Any]) -> int | None:
    """When Clerk says the password was last set, as Unix ms (None: never, or unreadable)."""
    try:
        changed = password_updated_at(user.get("password_last_updated_at"))
    except ValueError:
        return None  # unreadable: the staged row carries the problem
    return round(changed.timestamp() * 1000) if changed is not None else None


async def _sweep_deletions(ctx: RunContext) -> int:
    """Users this journal put in Kinde that Clerk no longer has. Swept only when Clerk's count says
    someone is gone: every user seen is either still there or missing from the count."""
    delete = bool((ctx.run.run_options or {}).get("delete_removed"))
    state = DeletionState.PENDING if delete else DeletionState.LISTED
    earlier = ctx.journal.cutover.removals_still_listed() if delete else []
    ctx.journal.cutover.add_deletions(ctx.run.id, "user", earlier, state)  # listed by an earlier catch-up: delete now
    total = await ctx.clerk.count_users()
    if total == ctx.journal.cutover.seen_count():
        return len(earlier)
    after, gone = "", len(earlier)
    ctx.journal.cutover.start_sweep()
    while batch := ctx.journal.cutover.sweep_batch(after, SWEEP_BATCH):
        present = {user["id"] for user in await ctx.clerk.users_by_id([clerk_id for clerk_id, _ in batch])}
        missing = [(clerk_id, kinde_id) for clerk_id, kinde_id in batch if clerk_id not in present]
        ctx.journal.cutover.add_deletions(ctx.run.id, "user", missing, state)
        gone += len(missing)
        after = batch[-1][0]
    return gone
