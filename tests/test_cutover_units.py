"""Pure parts of the cutover: what a catch-up changes for a user already in Kinde, the canary
sample, the canary's id lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrator.cli.cutover import canary_action
from migrator.errors import ConfigError, InputError
from migrator.stages.canary import _invert, sample_rank
from migrator.stages.catchup import cutover_diff

EMAIL = {"type": "email", "value": "ann@example.com", "is_verified": True, "phone_country_id": None}
PHONE = {"type": "phone", "value": "+14155550100", "is_verified": True, "phone_country_id": "us"}
OLD = {"given_name": "Ann", "family_name": "Lee", "suspended": False, "identities": [EMAIL]}


def row(**plan) -> dict:
    return {"plan": json.dumps({**OLD, **plan}), "skip_reason": None}


def test_nothing_changed_means_no_write() -> None:
    assert cutover_diff(OLD, row(), "reset") == ({}, [], [])


def test_only_the_changed_fields_are_patched() -> None:
    patch, added, notes = cutover_diff(OLD, row(given_name="Anna", suspended=True), "reset")
    assert patch == {"given_name": "Anna", "is_suspended": True}
    assert (added, notes) == ([], [])


def test_a_new_identity_is_added_and_a_removed_one_is_removed() -> None:
    patch, changes, notes = cutover_diff(OLD, row(identities=[PHONE]), "reset")
    assert patch == {} and changes == [PHONE, {**EMAIL, "remove": True}]
    assert notes == []


def test_a_removed_identity_of_a_type_not_matched_by_value_is_reported_not_deleted() -> None:
    social = {"type": "social", "value": "ann@example.com", "is_verified": True, "phone_country_id": None}
    _, changes, notes = cutover_diff({**OLD, "identities": [EMAIL, social]}, row(), "reset")
    assert changes == []
    assert notes == ["social ann@example.com was removed in Clerk: still in Kinde (remove by hand)"]


def test_an_email_differing_only_in_case_is_the_same_identity() -> None:
    assert cutover_diff(OLD, row(identities=[{**EMAIL, "value": "ANN@example.com"}]), "reset")[1] == []


def test_banned_under_the_skip_policy_suspends_and_unbanned_unsuspends() -> None:
    skipped = {"plan": None, "skip_reason": "banned"}
    assert cutover_diff(OLD, skipped, "reset")[0] == {"is_suspended": True}
    assert cutover_diff({**OLD, "suspended": True}, row(suspended=False), "reset")[0] == {"is_suspended": False}


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_the_sample_order_is_inverted_exactly(a: str, b: str) -> None:
    ra, rb = sample_rank(1, a), sample_rank(1, b)
    assert (ra < rb) == (_invert(ra) > _invert(rb))


def test_canary_options(tmp_path: Path) -> None:
    assert canary_action(None, 1, None, None) is None
    assert canary_action(50, 7, None, None).sample == 50
    ids = tmp_path / "ids.txt"
    ids.write_text("# canary\nuser_2a\n\nuser_2b\n")
    assert canary_action(None, 1, "user_2c", ids).only == ("user_2c", "user_2a", "user_2b")
    with pytest.raises(ConfigError):
        canary_action(5, 1, "user_2a", None)
    with pytest.raises(ConfigError):
        canary_action(0, 1, None, None)
    with pytest.raises(InputError, match="cannot read"):
        canary_action(None, 1, None, tmp_path / "missing.txt")
