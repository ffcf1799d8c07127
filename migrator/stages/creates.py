"""One rule for every create (users, roles, organizations): never send a create twice blindly.

A create answered "already exists" (400/409, classified by the Kinde client as ``AlreadyExists``)
or answered ambiguously (a timeout, a dropped connection, a 5xx: it may have happened) is settled
by looking first: if what we meant to create is there and is ours, that is the answer; if it is
not there and the failure was ambiguous and retryable, the create is tried again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from migrator.errors import AlreadyExists, ApiError

T = TypeVar("T")


async def create_settled(
    create: Callable[[], Awaitable[T]],
    find_ours: Callable[[ApiError], Awaitable[T | None]],
    *,
    attempts: int,
    on_retry: Callable[[ApiError], None] | None = None,
) -> T:
    """``create()``, settled by ``find_ours`` after any answer that leaves its fate unknown.

    ``find_ours`` returns what an earlier attempt (or an earlier run) created, or None when nothing
    of ours is there; it raises when someone else holds it (not ours to touch).
    """
    for attempt in range(1, attempts + 1):
        try:
            return await create()
        except ApiError as exc:
            if not (isinstance(exc, AlreadyExists) or exc.ambiguous):
                raise
            found = await find_ours(exc)
            if found is not None:
                return found
            if isinstance(exc, AlreadyExists) or not exc.retryable or attempt == attempts:
                raise
            if on_retry is not None:
                on_retry(exc)
    raise AssertionError("unreachable")  # the loop returns or raises


async def create_owned(
    create: Callable[[], Awaitable[T]],
    find_ours: Callable[[ApiError], Awaitable[T | None]],
    *,
    attempts: int,
    intent_was_open: bool,
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

    result = await create_settled(create, find, attempts=attempts)
    return result, created
