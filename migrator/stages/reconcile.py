"""Decide, for a user Kinde already has, whose it is and what is left to do.

This is the reason a run never creates a user twice and never touches someone else's: every
lookup result goes through :func:`record_lookup`, which consults the journal's history (this run,
earlier runs) and the Kinde user's ``provided_id``.
"""

from __future__ import annotations

from migrator.journal import (
    CARRIED_FLAGS,
    CARRIED_PASSWORD,
    Created,
    Journal,
    Lookup,
    PasswordStep,
    Step,
    UserFields,
    UserRow,
    UserState,
)
from migrator.kinde.client import KindeUser
from migrator.mapping import normalized_identity
from migrator.stages.lazy_adopt import adopt_moved, closes_window


def key_of(user: KindeUser, field_name: str) -> str | None:
    """The Kinde user's email/username (lower-cased) or phone, as lookups compare them."""
    value = getattr(user, field_name)
    if not value:
        return None
    return normalized_identity(field_name, value)


def record_lookup(journal: Journal, run_id: int, row: UserRow, field_name: str, found: list[KindeUser]) -> None:
    """Record what a lookup by ``field_name`` found for one staged user (``row``)."""
    clerk_id = row.clerk_id
    match = next((u for u in found if u.provided_id == clerk_id), None)
    if match is None:
        match = next((u for u in found if key_of(u, field_name) == row.lookup_key(field_name)), None)
    if match is None:
        journal.users.record_absent(run_id, clerk_id)
    else:
        adopt(journal, run_id, row, match)


def adopt(journal: Journal, run_id: int, row: UserRow, match: KindeUser) -> None:
    """A Kinde user already holds this identity: decide whether its remaining steps are ours.

    * it carries our Clerk id and this run looked before and found nothing (``recheck``): this
      run created it just before a crash or a lost answer, so its steps continue;
    * it carries our Clerk id and an earlier run of this journal created it, or meant to and
      died before recording it: continue that run's unfinished steps (nothing is done twice);
    * anything else existed before us (another tool, a CSV import, a real Kinde user): it is
      left untouched and reported.
    """
    clerk_id = row.clerk_id
    ours = match.provided_id == clerk_id
    if ours and row.lookup == Lookup.RECHECK:
        journal.users.update(run_id, clerk_id, lookup=Lookup.FOUND, created=Created.CREATED, kinde_id=match.id)
        return
    if ours and closes_window(row):
        adopt_moved(journal, run_id, row, match)  # a lazy cohort's user the workflow moved: adopted
        return
    earlier = journal.users.earlier_steps(run_id, clerk_id, match.id)
    if ours and (earlier is not None or journal.users.earlier_run_meant_to_create(run_id, clerk_id)):
        journal.users.update(run_id, clerk_id, **_continue_earlier(row, earlier, match.id))
        return
    if not ours:
        note = (
            f"Kinde user {match.id} already holds this user's identity with provided_id "
            f"{match.provided_id or '(none)'}: left untouched"
        )
        journal.users.add_problems(run_id, [(clerk_id, "warning", note)])
    journal.users.update(
        run_id,
        clerk_id,
        lookup=Lookup.FOUND,
        created=Created.EXISTED,
        kinde_id=match.id,
        state=UserState.DONE,
        password=PasswordStep.NA,
        flags=Step.NA,
        properties=Step.NA,
        social=Step.NA,
    )


def _continue_earlier(row: UserRow, earlier: UserRow, kinde_id: str) -> UserFields:
    """This run's steps for a user an earlier run created: whatever that run finished is not redone."""
    fields: UserFields = {"lookup": Lookup.FOUND, "created": Created.EARLIER, "kinde_id": kinde_id}
    if earlier is not None:
        # what an earlier run did is recorded as carried over, so this run's summary does not claim it
        carried = 0
        if earlier.password in (PasswordStep.SET, PasswordStep.NA) and row.password == PasswordStep.PENDING:
            fields["password"] = earlier.password
            carried |= CARRIED_PASSWORD
        if earlier.flags in (Step.DONE, Step.NA) and row.flags == Step.PENDING:
            fields["flags"] = earlier.flags
            carried |= CARRIED_FLAGS
        fields["carried"] = carried
        if earlier.identities == Step.PENDING:
            fields["identities"] = Step.PENDING  # identities Kinde refused are still missing
            fields["missing_identities"] = earlier.missing_identities
    left = (
        fields.get("password", row.password) == PasswordStep.PENDING
        or fields.get("flags", row.flags) == Step.PENDING
        or fields.get("identities") == Step.PENDING
        or row.properties == Step.PENDING  # compared with Kinde before writing: nothing twice
        or row.social == Step.PENDING
    )
    if not left:
        fields["state"] = UserState.DONE  # nothing left: costs no request at all
    return fields
