"""Where each user of a run's lazy cohort stands: moved to Kinde at sign-in, still pending, or never able to
move this way. ``standing`` is pure; ``read_cohort`` asks Kinde and Clerk as little as it can (users looked up
by email in Kinde and by id in Clerk, 100 a request) and writes nothing anywhere.

"Moved", by the reading of Kinde's trigger the run was made for:

* the documented one (the run did not create the cohort): Kinde holds a user whose ``provided_id`` is the
  Clerk id. Only the workflow creates one (after Clerk verified the password), then sets its password.
* users in Kinde (``lazy_users_in_kinde``: the run created them without a password): Kinde's API does not say
  whether a user has a password, so a user counts as moved once Kinde says it signed in (``total_sign_ins``
  or ``last_signed_in``). Without a password the only other way in is Kinde's one-time code, which a user
  may have used instead: read "moved" there as "has signed in".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from migrator.clerk.client import ClerkClient
from migrator.journal import Journal, Run, UserRow
from migrator.kinde.client import KindeClient, lookup_batches
from migrator.mapping import normalized_identity

BATCH = 100  # Clerk's user_id filter takes at most 100 values


class Standing(StrEnum):
    MOVED = "moved"
    PENDING = "pending"
    NEVER = "never"  # cannot move through the workflow: `lazy finish` gives the fallback


@dataclass(frozen=True)
class Member:
    """One user of the cohort as the journal holds it."""

    clerk_id: str
    email: str  # the primary email the run planned (the workflow finds the user by any verified one)
    reason: str  # why the password could not be imported
    kinde_id: str | None = None  # the users-in-Kinde reading: the user the run created

    @classmethod
    def of(cls, row: UserRow) -> Member:
        identities = json.loads(row.plan)["identities"] if row.plan else []
        email = next((i["value"] for i in identities if i["type"] == "email"), row.email_key or "")
        return cls(row.clerk_id, email, row.password_problem or "", row.kinde_id)


@dataclass(frozen=True)
class KindeSeen:
    """What Kinde answered for a lookup of the member's email: its own user (provided_id = Clerk id), if any,
    whether that one has signed in, and another user holding the email."""

    kinde_id: str | None = None
    signed_in: bool = False
    held_by: str | None = None  # a Kinde user with another provided_id holds the email


@dataclass(frozen=True)
class Verdict:
    clerk_id: str
    email: str
    standing: Standing
    why: str = ""
    kinde_id: str | None = None


def _verified_emails(clerk: Mapping[str, Any]) -> set[str]:
    entries = clerk.get("email_addresses")
    verified = set()
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, Mapping) and (entry.get("verification") or {}).get("status") == "verified":
            verified.add(normalized_identity("email", entry.get("email_address")))
    return verified


def standing(member: Member, kinde: KindeSeen, clerk: Mapping[str, Any] | None, *, users_in_kinde: bool) -> Verdict:
    """Where one member stands (pure). Moved wins: once in Kinde, what Clerk says since does not matter."""

    def verdict(state: Standing, why: str = "") -> Verdict:
        return Verdict(member.clerk_id, member.email, state, why, kinde.kinde_id)

    if kinde.kinde_id is not None and (kinde.signed_in or not users_in_kinde):
        return verdict(Standing.MOVED)
    if kinde.held_by is not None and not users_in_kinde:
        return verdict(Standing.NEVER, f"Kinde user {kinde.held_by} (not this Clerk user's) holds the email")
    if clerk is None:
        return verdict(Standing.NEVER, "deleted from Clerk")
    if clerk.get("banned") is True:
        return verdict(Standing.NEVER, "banned in Clerk")
    if clerk.get("locked") is True:
        return verdict(Standing.NEVER, "locked in Clerk (the workflow refuses locked users)")
    if clerk.get("two_factor_enabled") is True:  # the workflow checks the password alone: it cannot ask the 2nd factor
        why = "two-factor in Clerk (the workflow refuses them unless its settings.json says refuse_two_factor: false)"
        return verdict(Standing.NEVER, why)
    if clerk.get("password_enabled") is False:
        return verdict(Standing.NEVER, "no password in Clerk any more")
    if not _verified_emails(clerk):
        return verdict(Standing.NEVER, "no verified email in Clerk (the workflow finds users by email)")
    if users_in_kinde and kinde.kinde_id is None:
        return verdict(Standing.NEVER, "not in Kinde: the run created it, something removed it since")
    return verdict(Standing.PENDING)


@dataclass
class CohortStatus:
    """The answer of `migrator lazy status`."""

    run_id: int
    reading: str  # "absent" (the documented pattern) or "users-in-kinde"
    verdicts: list[Verdict] = field(default_factory=list)
    outside: int = 0  # users of the run whose password could not travel and who are not in the cohort
    finished_by: int | None = None  # the `lazy finish` run that closed the window, if any
    requests: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        found = {state.value: 0 for state in Standing}
        for verdict in self.verdicts:
            found[verdict.standing] += 1
        return found

    def never_by_reason(self) -> dict[str, int]:
        reasons: dict[str, int] = {}
        for verdict in self.verdicts:
            if verdict.standing == Standing.NEVER:
                reasons[verdict.why] = reasons.get(verdict.why, 0) + 1
        return reasons

    def to_json(self) -> dict[str, Any]:
        listed: dict[str, list[dict[str, Any]]] = {state.value: [] for state in Standing}
        for v in self.verdicts:
            entry: dict[str, Any] = {"clerk_id": v.clerk_id, "email": v.email}
            if v.standing == Standing.NEVER:
                entry["why"] = v.why
            if v.kinde_id:
                entry["kinde_id"] = v.kinde_id
            listed[v.standing].append(entry)
        return {
            "run_id": self.run_id,
            "reading": self.reading,
            "cohort": len(self.verdicts),
            "counts": self.counts(),
            "never_by_reason": self.never_by_reason(),
            "outside_cohort": self.outside,
            "finished_by": self.finished_by,
            "users": listed,
            "requests": self.requests,
        }


def members(journal: Journal, run: Run) -> list[Member]:
    return [Member.of(row) for row in journal.users.lazy_cohort(run.id)]


def users_in_kinde(run: Run) -> bool:
    """The run was made for the users-in-Kinde reading (it created the cohort without a password)."""
    return bool(run.config_summary.get("lazy_users_in_kinde"))


async def seen_in_kinde(kinde: KindeClient, cohort: Sequence[Member]) -> dict[str, KindeSeen]:
    """Clerk id -> what Kinde holds for it, from lookups by email (up to 100 addresses a request)."""
    by_email: dict[str, list[Member]] = {}
    for member in cohort:
        by_email.setdefault(normalized_identity("email", member.email), []).append(member)
    ids = {member.clerk_id for member in cohort}
    ours: dict[str, KindeSeen] = {}
    held: dict[str, KindeSeen] = {}
    for batch in lookup_batches(sorted(by_email)):
        for user in await kinde.find_users("email", batch):
            if user.provided_id is not None and user.provided_id in ids:  # whichever email Kinde lists first
                ours[user.provided_id] = KindeSeen(user.id, user.signed_in)
                continue
            for member in by_email.get(normalized_identity("email", user.email or ""), []):
                held.setdefault(member.clerk_id, KindeSeen(held_by=user.id))
    return {**held, **ours}


async def seen_in_clerk(clerk: ClerkClient, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Clerk id -> the Clerk user now (absent: deleted), 100 ids a request."""
    ordered = sorted(ids)
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ordered), BATCH):
        for user in await clerk.users_by_id(ordered[start : start + BATCH]):
            found[user["id"]] = user
    return found


async def read_cohort(journal: Journal, run: Run, clerk: ClerkClient, kinde: KindeClient) -> CohortStatus:
    """Where each member of ``run``'s cohort stands now (reads only)."""
    cohort = members(journal, run)
    reading = users_in_kinde(run)
    kinde_seen = await seen_in_kinde(kinde, cohort)
    moved = {cid for cid, seen in kinde_seen.items() if seen.kinde_id and (seen.signed_in or not reading)}
    clerk_seen = await seen_in_clerk(clerk, (m.clerk_id for m in cohort if m.clerk_id not in moved))
    verdicts = [
        standing(m, kinde_seen.get(m.clerk_id, KindeSeen()), clerk_seen.get(m.clerk_id), users_in_kinde=reading)
        for m in cohort
    ]
    return CohortStatus(run.id, "users-in-kinde" if reading else "absent", verdicts)
