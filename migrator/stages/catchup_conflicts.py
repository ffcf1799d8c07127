"""A catch-up's shared identities, settled over all of Clerk as a full run would (``stages.shared_holders``).

A catch-up stages only what changed: its sign-ups (and users never migrated) take the ordinary path, its
edited users already in Kinde get a diff. On its own the conflict rule would see only the sign-ups, so a
sign-up sharing an email, phone or username with a user migrated earlier would keep it and Kinde would
refuse the create. So, as a canary does, the catch-up asks Clerk for the other holders of the identities of
its sign-ups and of the edited users that gain one, ranks everyone in a full run's order (oldest first, then
by id), and the rule runs over all of them:

* the keeper is an already-migrated user: the newcomer's shared extra identity is dropped (a shared
  primary skips it), exactly as a full run;
* the rule would give a newcomer an identity a migrated user already holds in Kinde (a newcomer's primary
  email that is a migrated user's extra one; any key under ``skip-all``): it stays with the migrated user,
  never taken off silently; the newcomer loses it and the detail and a warning say so;
* an edited user gains an identity the rule gives someone else: it is not added (``drop_lost_additions``).
"""

from __future__ import annotations

import json
from typing import Any

from migrator.journal import Update
from migrator.mapping import identity_key
from migrator.stages.context import RunContext
from migrator.stages.shared_holders import fetch_order, held_in_kinde, outside_keys, shared_holders

BATCH = 100  # user_id values per Clerk request (the spec's limit)


async def settle_context(ctx: RunContext, fresh: dict[str, dict[str, Any]]) -> None:
    """Prepare the conflict stage of a catch-up: who else in Clerk shares its users' identities, ranked.

    ``fresh``: the Clerk users this pass staged (by id); users staged before a crash are asked of Clerk again."""
    journal, run_id = ctx.journal, ctx.run.id
    pending = [row.clerk_id for row in journal.users.pending(run_id)]
    edited = [row.clerk_id for row in journal.cutover.updates_to_apply(run_id) if _adds_identity(row)]
    if not pending and not edited:
        return
    users = await _users(ctx, [*pending, *edited], fresh)
    holders = await shared_holders(ctx, list(users.values()))
    ranked = sorted([*users.values(), *holders], key=fetch_order)
    seq_of = {user["id"]: seq for seq, user in enumerate(ranked)}
    outside = [*holders, *(users[clerk_id] for clerk_id in edited if clerk_id in users)]
    ctx.outside_keys = outside_keys(ctx, outside, seq_of)
    ctx.conflict_rank = {clerk_id: seq_of[clerk_id] for clerk_id in pending if clerk_id in seq_of}
    ctx.held_keys = held_in_kinde(journal, (user["id"] for user in outside))


def drop_lost_additions(ctx: RunContext, lost: dict[str, set[str]]) -> None:
    """An edited user's new identity that the rule gives someone else is not added to its Kinde user."""
    journal, run_id = ctx.journal, ctx.run.id
    for update in journal.cutover.updates_to_apply(run_id):
        keys = lost.get(update.clerk_id, set())
        changes = json.loads(update.identities)
        dropped = [i for i in changes if not i.get("remove") and identity_key(i.get("type"), i.get("value")) in keys]
        if not dropped:
            continue
        kept = [i for i in changes if i not in dropped]
        row = journal.users.get(run_id, update.clerk_id)
        plan = json.loads(row.plan)
        plan["identities"] = [i for i in plan["identities"] if identity_key(i.get("type"), i.get("value")) not in keys]
        plan["keys"] = [k for k in plan["keys"] if f"{k[0]}:{k[1]}" not in keys]
        with journal.transaction():
            journal.users.update(run_id, update.clerk_id, plan=json.dumps(plan))
            if kept or json.loads(update.patch) or update.password:
                journal.cutover.add_update(
                    run_id, update.clerk_id, update.kinde_id, json.loads(update.patch), kept,
                    bool(update.password),
                )  # fmt: skip
            else:
                journal.cutover.drop_update(run_id, update.clerk_id)
            journal.users.add_problems(
                run_id,
                [
                    (update.clerk_id, "warning", f"{i['type']} {i['value']} not added: another Clerk user keeps it"
                     " (the duplicate-identities policy, as a full run)")
                    for i in dropped
                ],
            )  # fmt: skip


async def _users(ctx: RunContext, clerk_ids: list[str], fresh: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    users = {clerk_id: fresh[clerk_id] for clerk_id in clerk_ids if clerk_id in fresh}
    missing = [clerk_id for clerk_id in clerk_ids if clerk_id not in fresh]
    for start in range(0, len(missing), BATCH):
        users.update((user["id"], user) for user in await ctx.clerk.users_by_id(missing[start : start + BATCH]))
    return users


def _adds_identity(update: Update) -> bool:
    return any(not i.get("remove") for i in json.loads(update.identities))

