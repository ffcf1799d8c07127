"""Stages of a `lazy finish` run (mode ``lazy-finish``, ``parent_run_id`` = the run whose lazy window it closes).

* ``fetch_cohort``: the base run's cohort read again from Clerk by id (100 a request) and staged like a canary's
  users (their organizations and memberships with them), mapped with the fallback policy instead of ``lazy``;
  each row is marked of the closing cohort (``users.lazy = 2``). A user deleted from Clerk since is recorded
  skipped (``deleted_from_clerk``): accounted for, nothing to adopt or create.
* the ordinary lookup then finds whom the workflow created (by email; ``provided_id`` = the Clerk id):
  ``reconcile.adopt`` hands such a row to ``lazy_adopt.adopt_moved``: its Kinde id recorded, ``created = workflow``
  (or ``earlier`` when the run itself created it, the users-in-Kinde reading), its password never touched and
  no reset; its organizations, roles, properties and social identities follow as for any migrated user, and
  the phone the workflow cannot send (Kinde needs its country) is added like an identity a create did not carry.
* ``skip_unmoved`` (fallback ``skip``): the rest are recorded skipped (``lazy_not_moved``), nothing created.
* everyone else is created by the ordinary load, with the fallback (a reset by default).
"""

from __future__ import annotations

from dataclasses import replace

from migrator.events import Notice, PhaseStarted
from migrator.journal import Created, Lookup, PasswordStep, RunMode, Step, UserState
from migrator.mapping import FallbackPolicy
from migrator.stages.canary import stage_selected
from migrator.stages.context import RunContext

BATCH = 100  # Clerk's user_id filter takes at most 100 values
FALLBACK_OPTION = "fallback"  # run_options of a lazy-finish run: the policy its cohort falls back to
NOT_MOVED = "lazy_not_moved"  # skip reason under fallback ``skip``
GONE = "deleted_from_clerk"  # skip reason of a cohort user Clerk no longer has
GONE_DETAIL = "deleted from Clerk since the run: nothing to adopt or create"


def fallback_of(ctx: RunContext) -> FallbackPolicy:
    return (ctx.run.run_options or {}).get(FALLBACK_OPTION, ctx.settings.lazy_fallback)


async def fetch_cohort(ctx: RunContext) -> None:
    base = ctx.run.parent_run_id
    assert base is not None, "a lazy-finish run names the run whose window it closes"
    ids = [row.clerk_id for row in ctx.journal.users.lazy_cohort(base)]
    fallback = fallback_of(ctx)
    # ``skip`` is decided after the lookup (a moved user is adopted, never skipped): staged without a password
    policy = "no-password" if fallback == "skip" else fallback
    ctx.options = replace(ctx.options, unimportable_passwords=policy, lazy_users_in_kinde=False)
    ctx.emit(PhaseStarted("fetch", len(ids)))
    users = []
    for start in range(0, len(ids), BATCH):
        users.extend(await ctx.clerk.users_by_id(ids[start : start + BATCH]))
    await stage_selected(ctx, users)
    gone = sorted(set(ids) - {user["id"] for user in users})
    if gone:
        _, seq = ctx.journal.users.last_staged(ctx.run.id)
        with ctx.journal.transaction():
            ctx.journal.users.stage(ctx.run.id, [_gone_row(clerk_id, seq + n) for n, clerk_id in enumerate(gone)])
        ctx.emit(Notice(f"{len(gone)} user(s) of the lazy cohort were {GONE_DETAIL}", level="warning"))
    ctx.journal.users.mark_closing_cohort(ctx.run.id, base)


def _gone_row(clerk_id: str, seq: int) -> dict[str, object]:
    """A cohort user deleted from Clerk since the run: recorded skipped (accounted for), nothing to do."""
    na = {step: Step.NA for step in ("flags", "properties", "social")}
    return {
        "clerk_id": clerk_id, "seq": seq, "hasher": None, "mfa": 0, "plan": None, "email_key": None,
        "username_key": None, "phone_key": None, "password_method": None, "password_problem": None,
        "state": UserState.SKIPPED, "lookup": Lookup.NA, "created": Created.NA, "password": PasswordStep.NA, **na,
        "skip_reason": GONE, "skip_detail": GONE_DETAIL,
    }  # fmt: skip


def skip_unmoved(ctx: RunContext) -> int:
    """Fallback ``skip``: the cohort's users not in Kinde are recorded skipped (after the lookup, so a user the
    workflow moved is adopted instead). Returns how many."""
    if ctx.run.mode != RunMode.LAZY_FINISH or fallback_of(ctx) != "skip":
        return 0
    skipped = 0
    with ctx.journal.transaction():
        for row in ctx.journal.users.not_found_in_kinde(ctx.run.id):
            detail = "did not sign in during the lazy window (lazy_fallback = skip)"
            ctx.journal.users.skip(ctx.run.id, row.clerk_id, NOT_MOVED, detail)
            skipped += 1
    return skipped
