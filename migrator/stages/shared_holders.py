"""The Clerk users outside a canary who share an identity with its users: the keeper is chosen over them too.

A full run settles each shared email, username or phone over every Clerk user (``stages.conflicts``). A
canary stages only its selection, so on its own it would let a user keep an identity that the full run
(or the export whose ``api-users.csv`` it migrates) gave to someone outside it, and Kinde would refuse the
create (``USER_ALREADY_EXISTS``). So a canary asks Clerk for the other holders of its users' identities
(``email_address``, ``phone_number``, ``username``: exact matches, 100 values a request) and theirs in turn
until no new user appears (a keeper can hang on a chain of shares), maps them exactly as a run maps them,
and ranks everyone in the full run's order (oldest first, then by id). The conflict rule then runs over
both; only the selection's rows are written. The rule: the same keeper as a full run over all of Clerk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from migrator.journal import Journal
from migrator.stages.conflicts import IdentityKey, identity_keys
from migrator.stages.context import RunContext
from migrator.stages.staging import staged_row

BATCH = 100  # filter values per Clerk request (the spec's limit)
FILTERS = {"email": "email_address", "phone": "phone_number", "username": "username"}


def fetch_order(user: dict[str, Any]) -> tuple[int, str]:
    """A full run's order of users: oldest first (Clerk's ``created_at``), then by id."""
    created = user.get("created_at")
    return (created if isinstance(created, int) else 0, user["id"])


async def shared_holders(ctx: RunContext, selection: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every Clerk user outside ``selection`` linked to it by a chain of shared identities."""
    seen = {user["id"] for user in selection}
    asked: set[tuple[str, str]] = set()
    frontier, found = selection, []
    while frontier:
        wanted = {key for user in frontier for key in _keys(ctx, user)} - asked
        asked |= wanted
        frontier = []
        for user in await _holders(ctx, wanted):
            if user["id"] not in seen:
                seen.add(user["id"])
                frontier.append(user)
        found.extend(frontier)
    return found


# a staged row's columns identity_keys reads, in its order
STAGED_KEY_COLUMNS = ("clerk_id", "seq", "plan", "email_key", "username_key", "phone_key")


def outside_keys(ctx: RunContext, holders: Iterable[dict[str, Any]], seq_of: dict[str, int]) -> list[IdentityKey]:
    """The identity keys of users outside the run, ranked by ``seq_of`` (``conflicts.settle_shared``)."""
    staged = (_row(ctx, user, seq_of[user["id"]]) for user in holders)
    return [key for row in staged for key in identity_keys(*(row[name] for name in STAGED_KEY_COLUMNS))]


def held_in_kinde(journal: Journal, clerk_ids: Iterable[str]) -> dict[str, str]:
    """Identity key -> the user holding it in Kinde, per the plan the journal last sent for each migrated user."""
    held: dict[str, str] = {}
    for clerk_id in clerk_ids:
        known = journal.users.known(clerk_id)
        if known is not None:
            held.update((f"{kind}:{value}", clerk_id) for kind, value in json.loads(known.plan)["keys"])
    return held


async def _holders(ctx: RunContext, keys: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """The users holding one of ``keys`` as a run maps them: what Clerk's filter returns beyond those (an
    unverified address, or every user where the filter is ignored) never joins the search."""
    users: list[dict[str, Any]] = []
    for kind, field_name in FILTERS.items():
        values = sorted(value for key_kind, value in keys if key_kind == kind)
        for start in range(0, len(values), BATCH):
            answered = await ctx.clerk.users_holding(field_name, values[start : start + BATCH])
            users.extend(user for user in answered if not keys.isdisjoint(_keys(ctx, user)))
    return users


def _keys(ctx: RunContext, user: dict[str, Any]) -> list[tuple[str, str]]:
    """The user's identities as the run maps them (none when a run would skip the user)."""
    row = _row(ctx, user, 0)
    return [(kind, value) for kind, value in json.loads(row["plan"])["keys"]] if row["plan"] else []


def _row(ctx: RunContext, user: dict[str, Any], seq: int) -> dict[str, Any]:
    return staged_row(user, seq, ctx.export_row(user["id"]), ctx.options, None)[0]
