"""One rule for every create (users, roles, organizations): never send a create twice blindly.

A create answered "already exists" (400/409, classified by the Kinde client as ``AlreadyExists``)
or answered ambiguously (a timeout, a dropped connection, a 5xx: it may have happened) is settled
by looking first: if what we meant to create is there and is ours, that is the answer; if it is
not there and the failure was ambiguous and retryable, the create is tried again.

Each lookup after an answer that left a send's fate unknown is a *reconciliation*, told to ``reconciled``
with what it decided (``found``: an earlier send went through; ``resent``; ``failed``): counted on the
pacing line and in the request log, shown only with ``-v`` (runs/session.py, the one rule).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from migrator.errors import AlreadyExists, ApiError, MigratorError

T = TypeVar("T")
Outcome = Literal["found", "resent", "failed"]
Reconciled = Callable[[ApiError, Outcome], None]  # the unclear answer, and what the lookup decided


@dataclass(frozen=True)
class Reconciliation:
    """One create settled by a lookup: what it was for (``kind``, ``key``: a Clerk user id, a role key),
    the answer that left its fate unknown (an error's message: no body, no secret), what was decided."""

    service: str
    kind: str
    key: str
    outcome: Outcome
    answer: ApiError

    @property
    def message(self) -> str:
        decided = {
            "found": f"the {self.kind} is in Kinde: the create went through",
            "resent": f"the {self.kind} is not in Kinde: retrying",
            "failed": f"the {self.kind} is not in Kinde: giving up",
        }[self.outcome]
        return f"{self.key}: create had no clear answer ({self.answer}); {decided}"


async def create_settled(
    create: Callable[[], Awaitable[T]],
    find_ours: Callable[[ApiError], Awaitable[T | None]],
    *,
    attempts: int,
    reconciled: Reconciled | None = None,
) -> T:
    """``create()``, settled by ``find_ours`` after any answer that leaves its fate unknown.

    ``find_ours`` returns what an earlier attempt (or an earlier run) created, or None when nothing
    of ours is there; it raises when someone else holds it (not ours to touch). ``reconciled`` hears of
    each lookup made because a send of ours may have gone through (not of a first clean "already exists").
    """

    def report(exc: ApiError, outcome: Outcome) -> None:
        if reconciled is not None:
            reconciled(exc, outcome)

    for attempt in range(1, attempts + 1):
        try:
            return await create()
        except ApiError as exc:
            if not (isinstance(exc, AlreadyExists) or exc.ambiguous):
                raise
            unclear = exc.ambiguous or attempt > 1  # only an ambiguous send makes another attempt
            try:
                found = await find_ours(exc)
            except MigratorError:
                if unclear:
                    report(exc, "failed")
                raise
            final = isinstance(exc, AlreadyExists) or not exc.retryable or attempt == attempts
            if unclear:
                report(exc, "found" if found is not None else "failed" if final else "resent")
            if found is not None:
                return found
            if final:
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


async def create_owned(
    create: Callable[[], Awaitable[T]],
    find_ours: Callable[[ApiError], Awaitable[T | None]],
    *,
    attempts: int,
    intent_was_open: bool,
    reconciled: Reconciled | None = None,
) -> tuple[T, bool]:
    """``create_settled()`` for a role or an organization, telling whose it is (an undo deletes only ours).

    The caller recorded its intent just before (``intent_was_open``: an earlier attempt's intent, whose create
    may have landed, was still open). What comes back is ours when this create made it, when it was found
    after an ambiguous send of ours, or when an earlier attempt's intent was open; found in answer to our
    first clean send (Kinde: "already exists"), with no earlier intent, it is someone else's (made since we
    looked). Returns (the result, ours).
    """
    sent_ambiguously = intent_was_open
    created = True

    async def find(exc: ApiError) -> T | None:
        nonlocal created, sent_ambiguously
        sent_ambiguously = sent_ambiguously or exc.ambiguous
        found = await find_ours(exc)
        if found is not None:
            created = sent_ambiguously
        return found

    result = await create_settled(create, find, attempts=attempts, reconciled=reconciled)
    return result, created
