"""Warnings grouped by kind: the user, the values and the numbers taken out of the text."""

from __future__ import annotations

import pytest

from migrator.status_lists import warning_kind


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            "user_2a: phone_numbers: 2 other number(s) not migrated (Kinde keeps one phone)",
            "user_9z: phone_numbers: 1 other number(s) not migrated (Kinde keeps one phone)",
        ),
        (
            "users.csv: row 12 (user_2a): primary_email_address: 'a@@b' is not a valid email address",
            "/tmp/x.csv: row 7 (user_3b): primary_email_address: 'nope' is not a valid email address",
        ),
        (
            "phone +15551234567 dropped: also used by user_a, user_b",
            "phone +4930123456 dropped: also used by user_c",
        ),
    ],
)
def test_warnings_that_differ_only_in_user_and_values_are_one_kind(first: str, second: str) -> None:
    assert warning_kind(first) == warning_kind(second)


def test_different_warnings_stay_different_kinds() -> None:
    kinds = {
        warning_kind("user_1: email_addresses: unverified 'a@b.c' is not migrated"),
        warning_kind("user_1: phone_numbers: 'x' is not a valid phone number; dropped"),
        warning_kind("user_1: image_url: 'ftp://x' is not an http(s) URL; no picture"),
    }
    assert len(kinds) == 3
    assert all("user_1" not in kind and "a@b.c" not in kind for kind in kinds)
