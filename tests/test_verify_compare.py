"""The per-user comparison of `migrator verify` (pure): what is drift, what is incomplete."""

from __future__ import annotations

from typing import Any

from migrator.stages.verify import user_differences

PLAN: dict[str, Any] = {
    "given_name": "Lee",
    "family_name": "Liu",
    "suspended": False,
    "identities": [
        {"type": "email", "value": "Lee@Example.com", "is_verified": True},
        {"type": "phone", "value": "+61426148233", "is_verified": False},
        {"type": "username", "value": "lliu", "is_verified": False},
    ],
}
KINDE = {"first_name": "Lee", "last_name": "Liu", "is_suspended": 0}
HELD = [("email", "lee@example.com", True), ("phone", "+61426148233", False), ("username", "LLiu", None)]


def test_the_same_user_differs_in_nothing_ignoring_case_of_emails_and_usernames() -> None:
    assert user_differences(PLAN, True, KINDE, HELD) == []


def test_a_missing_identity_is_incomplete_when_done_and_drift_otherwise() -> None:
    held = HELD[:1] + HELD[2:]
    assert user_differences(PLAN, True, KINDE, held) == [("incomplete", "phone", "+61426148233", "")]
    assert user_differences(PLAN, False, KINDE, held) == [("drift", "phone", "+61426148233", "")]


def test_extra_identities_names_flags_and_suspension_are_drift() -> None:
    held = [("email", "lee@example.com", False), *HELD[1:], ("email", "other@example.com", True)]
    kinde = {"first_name": "Leo", "last_name": None, "is_suspended": 1}
    assert user_differences(PLAN, True, kinde, held) == [
        ("drift", "given_name", "Lee", "Leo"),
        ("drift", "family_name", "Liu", ""),
        ("drift", "suspended", "False", "True"),
        ("drift", "email", "", "other@example.com"),
        ("drift", "email_verified", "lee@example.com: True", "lee@example.com: False"),
    ]


def test_an_unknown_confirmation_is_not_drift() -> None:
    held = [("email", "lee@example.com", None), *HELD[1:]]
    assert user_differences(PLAN, True, KINDE, held) == []
