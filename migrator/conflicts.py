"""Identities several Clerk users share, found and settled before anything is written to Kinde.

Kinde keeps an email, a username (ignoring case) and a phone unique; Clerk data imported from
elsewhere may not. Settling it up front means the plan shows every casualty, instead of the run
discovering them one 400 at a time.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from migrator.journal import Journal

Policy = Literal["first", "skip-all"]


def resolve_conflicts(journal: Journal, run_id: int, policy: Policy) -> tuple[int, int]:
    """Settle shared identities among the run's pending users; returns (shared identities, users skipped).

    A shared primary email or username cannot go to two Kinde users: under ``first`` the earliest
    Clerk user keeps it and the others are skipped (reported); under ``skip-all`` every holder is
    skipped. A shared extra email or phone is dropped from the later holders instead.
    """
    db = journal.db
    db.execute("CREATE TEMP TABLE IF NOT EXISTS keys(key TEXT, clerk_id TEXT, seq INTEGER, essential INTEGER)")
    db.execute("DELETE FROM temp.keys")
    for row in journal.iter_users(run_id, "state = 'pending'"):
        record = json.loads(row["plan"])
        essential = {
            row["email_key"] and f"email:{row['email_key']}",
            row["username_key"] and f"username:{row['username_key']}",
        }
        if not row["email_key"] and not row["username_key"] and row["phone_key"]:
            essential.add(f"phone:{row['phone_key']}")  # a phone-only user's only way in
        db.executemany(
            "INSERT INTO temp.keys VALUES (?, ?, ?, ?)",
            [
                (f"{kind}:{value}", row["clerk_id"], row["seq"], int(f"{kind}:{value}" in essential))
                for kind, value in record["keys"]
            ],
        )
    conflicts = db.execute(
        "SELECT key, GROUP_CONCAT(clerk_id || ' ' || essential, ',') FROM"
        " (SELECT * FROM temp.keys ORDER BY essential DESC, seq) GROUP BY key HAVING COUNT(DISTINCT clerk_id) > 1"
    ).fetchall()
    problems: list[tuple[str, str, str]] = []
    skipped = 0
    with journal.transaction():
        for key, holders_text in conflicts:
            holders = [(h.split(" ")[0], h.split(" ")[1] == "1") for h in holders_text.split(",")]
            kind, value = key.split(":", 1)
            keeper = holders[0][0] if policy == "first" else None
            others = ", ".join(h for h, _ in holders)
            for clerk_id, essential in holders:
                if clerk_id == keeper:
                    continue
                current = journal.user(run_id, clerk_id)
                if current is None or current["state"] != "pending":
                    continue
                if essential:
                    reason = f"duplicate_{kind}"
                    detail = f"{kind} {value} is shared by {others}" + (
                        f"; kept by {keeper}" if keeper else "; policy skip-all"
                    )
                    journal.update_user(
                        run_id,
                        clerk_id,
                        state="skipped",
                        skip_reason=reason,
                        skip_detail=detail,
                        lookup="n/a",
                        created="n/a",
                        password="n/a",
                        flags="n/a",
                    )
                    problems.append((clerk_id, "skipped", f"{reason}: {detail}"))
                    skipped += 1
                else:
                    _drop_identity(journal, run_id, clerk_id, kind, value)
                    problems.append((clerk_id, "warning", f"{kind} {value} dropped: also used by {others}"))
        journal.add_problems(run_id, problems)
    return len(conflicts), skipped


def _drop_identity(journal: Journal, run_id: int, clerk_id: str, kind: str, value: str) -> None:
    row = journal.user(run_id, clerk_id)
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
    journal.update_user(run_id, clerk_id, **fields)
