"""``create_owned``: whose a role or organization is once its create is settled, over a small in-memory
Kinde whose answers can be lost (the create lands, the answer does not) and which others can write to."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from migrator.errors import AlreadyExists, ApiError
from migrator.stages.creates import create_owned


@dataclass
class Roles:
    """Kinde's roles: ``lose`` answers are lost after the create landed; ``race`` is created by someone
    else just before the first create arrives."""

    keys: set[str] = field(default_factory=set)
    lose: int = 0
    race: bool = False
    sent: int = 0

    async def create(self, key: str) -> str:
        self.sent += 1
        if self.race:
            self.race = False
            self.keys.add(key)
        if key in self.keys:
            raise AlreadyExists(f"role {key} exists", service="kinde", status=400)
        self.keys.add(key)
        if self.lose:
            self.lose -= 1
            raise ApiError("timed out", service="kinde", retryable=True, ambiguous=True)
        return key

    async def find(self, key: str) -> str | None:
        return key if key in self.keys else None


def settle(roles: Roles, *, intent_was_open: bool = False) -> tuple[str, bool]:
    return asyncio.run(
        create_owned(
            lambda: roles.create("admin"),
            lambda _: roles.find("admin"),
            attempts=3,
            intent_was_open=intent_was_open,
        )
    )


def test_a_create_answered_is_ours() -> None:
    assert settle(Roles()) == ("admin", True)


def test_a_create_whose_answer_was_lost_is_found_and_ours() -> None:
    roles = Roles(lose=1)
    assert settle(roles) == ("admin", True)
    assert roles.sent == 1  # found by the look: never re-sent


def test_already_exists_for_the_first_clean_send_is_someone_elses() -> None:
    assert settle(Roles(race=True)) == ("admin", False)


def test_already_exists_under_an_earlier_attempts_intent_is_ours() -> None:
    """The killed attempt's create landed; the resume's list did not show it yet, so it sent again."""
    assert settle(Roles(keys={"admin"}), intent_was_open=True) == ("admin", True)


def test_a_create_refused_for_another_reason_is_raised() -> None:
    async def refuse() -> str:
        raise ApiError("bad key", service="kinde", status=422)

    async def nothing(_: ApiError) -> str | None:
        return None

    with pytest.raises(ApiError, match="bad key"):
        asyncio.run(create_owned(refuse, nothing, attempts=3, intent_was_open=False))
