"""Stage: identities several Clerk users share, found and settled before anything is written to Kinde.

Kinde keeps an email, a username (ignoring case) and a phone unique; Clerk data imported from
elsewhere may not. Settling it up front means the plan shows every casualty, instead of the run
discovering them one 400 at a time.

Reads: the staged plans of pending users. Writes: skips, dropped identities, problems.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Literal

from migrator.journal import Journal, SharedIdentity, UserFields, UserRow, UserState
from migrator.mapping import normalized_identity

Policy = Literal["first", "skip-all"]
IdentityKey = tuple[str, str, int, bool]  # (identity key "kind:value", clerk id, seq, essential)


@dataclass
class Settlement:
    """What settling the shared identities decided (``settle_shared``)."""

    shared: int = 0  # shared identities held by a user of this run
    skipped: int = 0
    outside_lost: dict[str, set[str]] = field(default_factory=dict)  # outside holder -> shared keys it does not keep
    left_in_kinde: int = 0  # keys the policy gives someone else that a migrated user holds in Kinde: left there


def settle_shared(
    journal: Journal,
    run_id: int,
    policy: Policy,
    outside: Sequence[IdentityKey] = (),
    *,
    held: Mapping[str, str] | None = None,
    rank: Mapping[str, int] | None = None,
) -> Settlement:
    """Settle shared identities among the run's pending users.

    A shared primary email or username cannot go to two Kinde users: under ``first`` the earliest
    Clerk user keeps it and the others are skipped (reported); under ``skip-all`` every holder is
    skipped. A shared extra email or phone is dropped from the later holders instead.

    ``outside``: the identity keys of Clerk users not in this run (or in it, already in Kinde) that share one
    with its users (``stages.shared_holders``), ranked with its users: they take part in choosing the keeper,
    as in a full run, and nothing of theirs is written here (``Settlement.outside_lost`` says what they lose).
    ``held``: identity key -> the migrated user holding it in Kinde now. It stays theirs whatever the policy
    says (nothing is taken off a migrated user): the others lose it, and the detail says so.
    ``rank``: the place of the run's users among ``outside`` (a catch-up's rows are staged in its own order).
    """
    held = held or {}
    outside_seq = {clerk_id: seq for _, clerk_id, seq, _ in outside}
    keys = _identity_keys(journal, run_id)
    if rank:
        keys = ((key, clerk_id, rank.get(clerk_id, seq), essential) for key, clerk_id, seq, essential in keys)
    shared = journal.users.shared_identities(run_id, chain(keys, outside))

    def seq(holder: str) -> int:
        if holder in outside_seq:
            return outside_seq[holder]
        return rank[holder] if rank and holder in rank else journal.users.get(run_id, holder).seq

    rule, _ = _keepers(shared, seq, {}) if policy == "first" else ({}, {})
    keepers, lost = _keepers(shared, seq, held) if policy == "first" else ({}, {})
    settled = Settlement(shared=sum(1 for c in shared if any(h not in outside_seq for h, _ in c.holders)))
    problems: list[tuple[str, str, str]] = []
    with journal.transaction():
        for conflict in shared:
            keeper = keepers.get(conflict.key)
            in_kinde = held.get(conflict.key)
            note = ""
            if in_kinde in {holder for holder, _ in conflict.holders} and rule.get(conflict.key) != in_kinde:
                settled.left_in_kinde += 1
                note = (
                    f"; {in_kinde} holds it in Kinde already and keeps it (policy {policy} would give it to"
                    f" {rule.get(conflict.key) or 'nobody'}): nothing is taken off a migrated user"
                )
            for clerk_id, _ in conflict.holders:
                if clerk_id in outside_seq and clerk_id != keeper:
                    settled.outside_lost.setdefault(clerk_id, set()).add(conflict.key)
            settled.skipped += _settle_holders(journal, run_id, conflict, keeper, lost, outside_seq, note, problems)
        journal.users.add_problems(run_id, problems)
    return settled


def _settle_holders(
    journal: Journal,
    run_id: int,
    conflict: SharedIdentity,
    keeper: str | None,
    lost: dict[str, str],
    outside_seq: Mapping[str, int],
    note: str,
    problems: list[tuple[str, str, str]],
) -> int:
    """Skip the run's essential holders that do not keep ``conflict``'s key, drop it from the others; returns skips."""
    kind, value = conflict.key.split(":", 1)
    others = ", ".join(holder for holder, _ in conflict.holders)
    skipped = 0
    for clerk_id, essential in conflict.holders:
        current = journal.users.get(run_id, clerk_id)
        settled = current is None or current.state not in (UserState.PENDING, UserState.LAZY)
        if clerk_id == keeper or clerk_id in outside_seq or settled:
            continue
        if essential and lost.get(clerk_id, conflict.key) != conflict.key:
            continue  # skipped for the key it lost to an older user, reported there
        if essential:
            reason = f"duplicate_{kind}"
            outside_run = " (not in this run)" if keeper in outside_seq else ""
            detail = f"{kind} {value} is shared by {others}" + (
                f"; kept by {keeper}{outside_run}" if keeper else "; policy skip-all"
            )
            journal.users.skip(run_id, clerk_id, reason, detail + note)
            problems.append((clerk_id, "skipped", f"{reason}: {detail}{note}"))
            skipped += 1
        else:
            _drop_identity(journal, run_id, current, kind, value)
            problems.append((clerk_id, "warning", f"{kind} {value} dropped: also used by {others}{note}"))
    return skipped


def _keepers(
    shared: list[SharedIdentity], seq: Callable[[str], int], held: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Under ``first``: who keeps each shared key, and the key each other essential holder loses.

    Oldest first, a user keeps its shared essential keys unless an older kept user holds one of them
    already: it is skipped for that key. So nobody is skipped for a user that is skipped itself, and a
    key no kept user holds goes to its first holder that is not skipped. A key ``held`` in Kinde by one of
    its holders is that holder's from the start.
    """
    essential: dict[str, list[str]] = defaultdict(list)  # clerk id -> its shared essential keys
    keepers: dict[str, str] = {}
    for conflict in shared:
        holders = {holder for holder, _ in conflict.holders}
        if held.get(conflict.key) in holders:
            keepers[conflict.key] = held[conflict.key]
        for clerk_id, is_essential in conflict.holders:
            if is_essential:
                essential[clerk_id].append(conflict.key)
    lost: dict[str, str] = {}
    for clerk_id in sorted(essential, key=seq):
        taken = next((key for key in essential[clerk_id] if keepers.get(key, clerk_id) != clerk_id), None)
        if taken is None:
            for key in essential[clerk_id]:
                keepers.setdefault(key, clerk_id)
        else:
            lost[clerk_id] = taken
    for conflict in shared:
        free = [holder for holder, _ in conflict.holders if holder not in lost]
        if conflict.key not in keepers and free:
            keepers[conflict.key] = free[0]
    return keepers, lost


def _identity_keys(journal: Journal, run_id: int) -> Iterator[IdentityKey]:
    """(identity key, clerk id, seq, essential) for every identity of every pending (or lazy) user."""
    for row in journal.users.to_settle(run_id):
        yield from row_identity_keys(row)


def row_identity_keys(row: UserRow) -> list[IdentityKey]:
    """(identity key, clerk id, seq, essential) for every identity of one staged row (none when skipped)."""
    return identity_keys(row.clerk_id, row.seq, row.plan, row.email_key, row.username_key, row.phone_key)


def identity_keys(
    clerk_id: str, seq: int, plan: str | None, email_key: str | None, username_key: str | None, phone_key: str | None
) -> list[IdentityKey]:
    """(identity key, clerk id, seq, essential) for every identity of a staged user (none when skipped).

    Essential: the user's primary email and username, or the phone of a phone-only user: what the
    user signs in with. Keepers are chosen among essential holders first.
    """
    if not plan:
        return []
    essential = {email_key and f"email:{email_key}", username_key and f"username:{username_key}"}
    if not email_key and not username_key and phone_key:
        essential.add(f"phone:{phone_key}")  # a phone-only user's only way in
    keys = (f"{kind}:{value}" for kind, value in json.loads(plan)["keys"])
    return [(key, clerk_id, seq, key in essential) for key in keys]


def _drop_identity(journal: Journal, run_id: int, row: UserRow, kind: str, value: str) -> None:
    record = json.loads(row.plan)
    record["identities"] = [
        i
        for i in record["identities"]
        if not (i["type"] == kind and normalized_identity(kind, i["value"]) == value)
    ]
    record["keys"] = [k for k in record["keys"] if k != [kind, value]]
    fields: UserFields = {"plan": json.dumps(record)}
    if kind == "phone" and row.phone_key == value:
        fields["phone_key"] = None
    journal.users.update(run_id, row.clerk_id, **fields)
