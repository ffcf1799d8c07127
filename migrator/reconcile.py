"""Decide, for a user Kinde already has, whose it is and what is left to do.

This is the reason a run never creates a user twice and never touches someone else's: every
lookup result goes through :func:`record_lookup`, which consults the journal's history (this run,
earlier runs) and the Kinde user's ``provided_id``.
"""

from __future__ import annotations

from typing import Any

from migrator.journal import Journal
from migrator.kinde.client import KindeUser


def key_of(user: KindeUser, field_name: str) -> str | None:
    """The Kinde user's email/username (lower-cased) or phone, as lookups compare them."""
    value = getattr(user, field_name)
    if not value:
        return None
    return value if field_name == "phone" else value.lower()


def record_lookup(journal: Journal, run_id: int, row: Any, field_name: str, found: list[KindeUser]) -> None:
    """Record what a lookup by ``field_name`` found for one staged user (``row``)."""
    clerk_id = row["clerk_id"]
    match = next((u for u in found if u.provided_id == clerk_id), None)
    if match is None:
        match = next((u for u in found if key_of(u, field_name) == row[f"{field_name}_key"]), None)
    if match is None:
        journal.update_user(run_id, clerk_id, lookup="absent")
    else:
        adopt(journal, run_id, row, match)


def adopt(journal: Journal, run_id: int, row: Any, match: KindeUser) -> None:
    """A Kinde user already holds this identity: decide whether its remaining steps are ours.

    * it carries our Clerk id and this run looked before and found nothing (``recheck``): this
      run created it just before a crash or a lost answer, so its steps continue;
    * it carries our Clerk id and an earlier run of this journal created it, or meant to and
      died before recording it: continue that run's unfinished steps (nothing is done twice);
    * anything else existed before us (another tool, a CSV import, a real Kinde user): it is
      left untouched and reported.
    """
    clerk_id = row["clerk_id"]
    ours = match.provided_id == clerk_id
    if ours and row["lookup"] == "recheck":
        journal.update_user(run_id, clerk_id, lookup="found", created="created", kinde_id=match.id)
        return
    earlier = journal.db.execute(
        "SELECT password, flags FROM users WHERE clerk_id = ? AND kinde_id = ? AND run_id != ?"
        " AND created IN ('created', 'earlier') ORDER BY run_id DESC LIMIT 1",
        (clerk_id, match.id, run_id),
    ).fetchone()
    meant_to = (
        earlier is None
        and journal.db.execute(
            "SELECT 1 FROM users u JOIN runs r ON r.id = u.run_id WHERE u.clerk_id = ? AND u.run_id != ?"
            " AND r.mode = 'run' AND u.created = 'pending' AND u.lookup IN ('absent', 'recheck') LIMIT 1",
            (clerk_id, run_id),
        ).fetchone()
    )
    if ours and (earlier is not None or meant_to):
        fields: dict[str, Any] = {"lookup": "found", "created": "earlier", "kinde_id": match.id}
        if earlier is not None and earlier["password"] in ("set", "n/a") and row["password"] == "pending":
            fields["password"] = earlier["password"]
        if earlier is not None and earlier["flags"] in ("done", "n/a") and row["flags"] == "pending":
            fields["flags"] = earlier["flags"]
        if fields.get("password", row["password"]) != "pending" and fields.get("flags", row["flags"]) != "pending":
            fields["state"] = "done"  # nothing left: costs no request at all
        journal.update_user(run_id, clerk_id, **fields)
        return
    if not ours:
        note = (
            f"Kinde user {match.id} already holds this user's identity with provided_id "
            f"{match.provided_id or '(none)'}: left untouched"
        )
        journal.add_problems(run_id, [(clerk_id, "warning", note)])
    journal.update_user(
        run_id,
        clerk_id,
        lookup="found",
        created="existed",
        kinde_id=match.id,
        state="done",
        password="n/a",
        flags="n/a",
    )
