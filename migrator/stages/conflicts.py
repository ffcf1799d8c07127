"""Stage: identities several Clerk users share, found and settled before anything is written to Kinde.

Kinde keeps an email, a username (ignoring case) and a phone unique; Clerk data imported from
elsewhere may not. Settling it up front means the plan shows every casualty, instead of the run
discovering them one 400 at a time.

Reads: the staged plans of pending users. Writes: skips, dropped identities, problems.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Any, Literal

from migrator.journal import Journal, SharedIdentity

Policy = Literal["first", "skip-all"]
IdentityKey = tuple[str, str, int, bool]  # (identity key "kind:value", clerk id, seq, essential)


def resolve_conflicts(
    journal: Journal, run_id: int, policy: Policy, outside: Sequence[IdentityKey] = ()
) -> tuple[int, int]:
    """Settle shared identities among the run's pending users; returns (shared identities, users skipped).

    A shared primary email or username cannot go to two Kinde users: under ``first`` the earliest
    Clerk user keeps it and the others are skipped (reported); under ``skip-all`` every holder is
    skipped. A shared extra email or phone is dropped from the later holders instead.

    ``outside``: the identity keys of Clerk users not in this run that share one with its users (a
    canary's, ``stages.shared_holders``), ranked with its users' ``seq``: they take part in choosing the
    keeper, as in a full run, and nothing of theirs is written.
    """
    shared = journal.shared_identities(run_id, chain(_identity_keys(journal, run_id), outside))
    outside_seq = {clerk_id: seq for _, clerk_id, seq, _ in outside}
    keepers, lost = _keepers(journal, run_id, shared, outside_seq) if policy == "first" else ({}, {})
    problems: list[tuple[str, str, str]] = []
    skipped = 0
    with journal.transaction():
        for conflict in shared:
            kind, value = conflict.key.split(":", 1)
            keeper = keepers.get(conflict.key)
            others = ", ".join(holder for holder, _ in conflict.holders)
            for clerk_id, essential in conflict.holders:
                current = journal.user(run_id, clerk_id)
                if clerk_id == keeper or current is None or current["state"] != "pending":
                    continue
                if essential and lost.get(clerk_id, conflict.key) != conflict.key:
                    continue  # skipped for the key it lost to an older user, reported there
                if essential:
                    reason = f"duplicate_{kind}"
                    outside_run = " (not in this run)" if keeper in outside_seq else ""
                    detail = f"{kind} {value} is shared by {others}" + (
                        f"; kept by {keeper}{outside_run}" if keeper else "; policy skip-all"
                    )
                    journal.skip_user(run_id, clerk_id, reason, detail)
                    problems.append((clerk_id, "skipped", f"{reason}: {detail}"))
                    skipped += 1
                else:
                    _drop_identity(journal, run_id, current, kind, value)
                    problems.append((clerk_id, "warning", f"{kind} {value} dropped: also used by {others}"))
        journal.add_problems(run_id, problems)
    return sum(1 for c in shared if any(h not in outside_seq for h, _ in c.holders)), skipped


def _keepers(
    journal: Journal, run_id: int, shared: list[SharedIdentity], outside_seq: dict[str, int]
) -> tuple[dict[str, str], dict[str, str]]:
    """Under ``first``: who keeps each shared key, and the key each other essential holder loses.

    Oldest first, a user keeps its shared essential keys unless an older kept user holds one of them
    already: it is skipped for that key. So nobody is skipped for a user that is skipped itself, and a
    key no kept user holds goes to its first holder that is not skipped.
    """
    essential: dict[str, list[str]] = defaultdict(list)  # clerk id -> its shared essential keys
    for conflict in shared:
        for clerk_id, is_essential in conflict.holders:
            if is_essential:
                essential[clerk_id].append(conflict.key)
    keepers: dict[str, str] = {}
    lost: dict[str, str] = {}

    def seq(holder: str) -> int:
        return outside_seq[holder] if holder in outside_seq else journal.user(run_id, holder)["seq"]

    for clerk_id in sorted(essential, key=seq):
        taken = next((key for key in essential[clerk_id] if key in keepers), None)
        if taken is None:
            keepers.update(dict.fromkeys(essential[clerk_id], clerk_id))
        else:
            lost[clerk_id] = taken
    for conflict in shared:
        free = [holder for holder, _ in conflict.holders if holder not in lost]
        if conflict.key not in keepers and free:
            keepers[conflict.key] = free[0]
    return keepers, lost


def _identity_keys(journal: Journal, run_id: int) -> Iterator[IdentityKey]:
    """(identity key, clerk id, seq, essential) for every identity of every pending user."""
    for row in journal.pending_users(run_id):
        yield from row_identity_keys(row)


def row_identity_keys(row: Any) -> list[IdentityKey]:
    """(identity key, clerk id, seq, essential) for every identity of one staged row (none when skipped).

    Essential: the user's primary email and username, or the phone of a phone-only user: what the
    user signs in with. Keepers are chosen among essential holders first.
    """
    if not row["plan"]:
        return []
    essential = {
        row["email_key"] and f"email:{row['email_key']}",
        row["username_key"] and f"username:{row['username_key']}",
    }
    if not row["email_key"] and not row["username_key"] and row["phone_key"]:
        essential.add(f"phone:{row['phone_key']}")  # a phone-only user's only way in
    keys = (f"{kind}:{value}" for kind, value in json.loads(row["plan"])["keys"])
    return [(key, row["clerk_id"], row["seq"], key in essential) for key in keys]


def _drop_identity(journal: Journal, run_id: int, row: Any, kind: str, value: str) -> None:
    record = json.loads(row["plan"])
    record["identities"] = [
        i
        for i in record["identities"]
        if not (i["type"] == kind and (i["value"] if kind == "phone" else i["value"].lower()) == value)
    ]
    record["keys"] = [k for k in record["keys"] if k != [kind, value]]
    fields: dict[str, Any] = {"plan": json.dumps(record)}
    if kind == "phone" and row["phone_key"] == value:
        fields["phone_key"] = None
    journal.update_user(run_id, row["clerk_id"], **fields)
