"""The generator's password history: passwords changed around the export, and how Clerk reports when."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from migrator.mapping import password_updated_at
from migrator.sandbox.clerk_app import build_clerk_app
from migrator.sandbox.generator import MAX_USERS, NEW_PASSWORD_SUFFIX, Dataset, PasswordHistory
from tests.contract import Contract
from tests.test_sandbox_clerk import SECRET, SyncClient

N = 600


def digest_holders(dataset: Dataset) -> list[int]:
    return [i for i in range(dataset.n) if dataset.password(i) is not None]


def ms(value: Any) -> int:
    """A served password_last_updated_at back in Unix ms, as the migrator reads it."""
    when = password_updated_at(value)
    assert when is not None
    return int(when.timestamp() * 1000)


def test_by_default_every_password_was_set_before_the_export_and_nobody_changed_it_after() -> None:
    dataset = Dataset(N)
    assert not any(dataset.changed_after_export(i) for i in range(N))
    changed_since_sign_up = 0
    for i in range(N):
        user = dataset.user(i)
        value = user["password_last_updated_at"]
        if not user["password_enabled"]:
            assert value is None, i
            continue
        assert isinstance(value, int) and user["created_at"] <= value < dataset.export_time_ms, i
        changed_since_sign_up += value != user["created_at"]
        assert dataset.plaintext(user["id"]) == dataset.exported_plaintext(user["id"])
    assert 0 < changed_since_sign_up < len(digest_holders(dataset))  # some changed it before the export


def test_export_time_is_after_every_sign_up_and_a_whole_second() -> None:
    dataset = Dataset(N)
    assert dataset.export_time_ms > dataset.created_at(N - 1)
    assert dataset.export_time_ms % 1000 == 0


def test_the_written_export_carries_the_export_time_as_its_modification_time(tmp_path: Path) -> None:
    dataset = Dataset(60)
    path = tmp_path / "export.csv"
    dataset.write_export_csv(path)
    assert path.stat().st_mtime_ns == dataset.export_time_ms * 1_000_000


@pytest.mark.parametrize("count", [1, 7, 40])
def test_a_count_changes_that_many_digest_holders_after_the_export(count: int) -> None:
    dataset = Dataset(N, password_history=PasswordHistory(changed_after_export=count))
    changed = [i for i in range(N) if dataset.changed_after_export(i)]
    assert changed == digest_holders(dataset)[:count]


def test_a_fraction_changes_about_that_share_of_digest_holders() -> None:
    dataset = Dataset(3000, password_history=PasswordHistory(changed_after_export=0.2))
    holders = digest_holders(dataset)
    changed = [i for i in holders if dataset.changed_after_export(i)]
    assert 0.15 * len(holders) < len(changed) < 0.25 * len(holders)
    assert not any(dataset.changed_after_export(i) for i in range(3000) if dataset.password(i) is None)


def test_a_count_on_a_huge_dataset_stops_at_the_users_it_needs() -> None:
    dataset = Dataset(MAX_USERS, password_history=PasswordHistory(changed_after_export=3))
    assert dataset.changed_after_export(MAX_USERS - 1) is False
    assert dataset._changed_first is not None and len(dataset._changed_first) == 3


def test_a_user_who_changed_after_the_export_has_a_new_password_and_the_old_digest() -> None:
    dataset = Dataset(N, password_history=PasswordHistory(changed_after_export=30), hasher_weights={"bcrypt": 1})
    changed = [i for i in range(N) if dataset.changed_after_export(i)]
    assert len(changed) == 30
    for i in changed:
        user_id, user = dataset.user_id(i), dataset.user(i)
        old, new = dataset.exported_plaintext(user_id), dataset.plaintext(user_id)
        assert old and new == old + NEW_PASSWORD_SUFFIX
        hasher, digest = dataset.password(i) or ("", "")
        assert hasher == "bcrypt"
        assert bcrypt.checkpw(old.encode(), digest.encode())
        assert not bcrypt.checkpw(new.encode(), digest.encode())  # the export's digest is stale
        assert (
            dataset.export_time_ms + 1000
            <= user["password_last_updated_at"]
            <= dataset.export_time_ms + 31 * 86_400_000
        )


def test_the_history_is_deterministic() -> None:
    history = PasswordHistory(changed_after_export=0.3)
    first, again = Dataset(N, password_history=history), Dataset(N, password_history=history)
    assert [first.user(i) for i in range(N)] == [again.user(i) for i in range(N)]
    assert [first.plaintext(first.user_id(i)) for i in range(N)] == [
        again.plaintext(again.user_id(i)) for i in range(N)
    ]


def test_the_export_is_the_same_whoever_changed_their_password_later(tmp_path: Path) -> None:
    Dataset(N).write_export_csv(tmp_path / "plain.csv")
    Dataset(N, password_history=PasswordHistory(changed_after_export=0.5)).write_export_csv(tmp_path / "changed.csv")
    assert (tmp_path / "plain.csv").read_bytes() == (tmp_path / "changed.csv").read_bytes()


@pytest.mark.parametrize("reading", ["seconds", "null-until-changed", "absent"])
def test_each_timestamp_reading_says_the_same_about_the_export(reading: str) -> None:
    truth = Dataset(N, password_history=PasswordHistory(changed_after_export=0.1))
    read = Dataset(N, password_history=PasswordHistory(changed_after_export=0.1, timestamps=reading))  # type: ignore[arg-type]
    for i in range(N):
        served, reference = read.user(i), truth.user(i)
        if reading == "absent":
            assert "password_last_updated_at" not in served
            continue
        value, ms_value = served["password_last_updated_at"], reference["password_last_updated_at"]
        if reading == "seconds":
            assert value == (None if ms_value is None else ms_value // 1000), i
        elif truth.password_updated_at(i) is None:
            assert value is None, i  # null until the user changes it
        else:
            assert value == ms_value, i
        if value is not None:
            assert (ms(value) >= truth.export_time_ms) is truth.changed_after_export(i), i


@pytest.mark.parametrize(
    "history",
    [
        {"changed_after_export": -1},
        {"changed_after_export": 1.5},
        {"changed_after_export": True},
        {"changed_after_export": "3"},
        {"timestamps": "minutes"},
    ],
)
def test_bad_switches_are_refused(history: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PasswordHistory(**history)


def test_salted_digests_in_hash_first_order(tmp_path: Path) -> None:
    weights = {"md5_salted": 1.0, "sha256_salted": 1.0}
    default, reordered = (
        Dataset(200, hasher_weights=weights),
        Dataset(200, hasher_weights=weights, salted_order="hash-first"),
    )
    checked = 0
    for i in digest_holders(default):
        hasher, digest = default.password(i) or ("", "")
        hasher_again, other = reordered.password(i) or ("", "")
        salt, _, hash_hex = digest.rpartition("$")
        assert hasher_again == hasher and other == f"{hash_hex}${salt}"
        function = hashlib.md5 if hasher == "md5_salted" else hashlib.sha256
        assert function((salt + default.plaintext(default.user_id(i))).encode()).hexdigest() == hash_hex  # type: ignore[operator]
        checked += 1
    assert checked > 50
    with pytest.raises(ValueError):
        Dataset(10, salted_order="sideways")  # type: ignore[arg-type]


@pytest.mark.contract
@pytest.mark.parametrize("reading", ["ms", "seconds", "null-until-changed", "absent"])
def test_every_reading_still_validates_against_the_user_schema(clerk_spec: Contract, reading: str) -> None:
    dataset = Dataset(120, password_history=PasswordHistory(changed_after_export=10, timestamps=reading))  # type: ignore[arg-type]
    client = SyncClient(build_clerk_app(dataset, secret_key=SECRET, requests_per_10s=None))
    try:
        response = client.get("/v1/users", params={"limit": 120, "order_by": "+created_at"})
        assert response.status_code == 200
        clerk_spec.check(response)
        served = {user["id"]: user for user in response.json()}
        assert len(served) == 120
    finally:
        client.close()


def test_the_sandbox_sign_in_password_is_the_new_one() -> None:
    dataset = Dataset(N, password_history=PasswordHistory(changed_after_export=5))
    client = SyncClient(build_clerk_app(dataset, secret_key=SECRET, requests_per_10s=None))
    try:
        for i in (i for i in range(N) if dataset.changed_after_export(i)):
            user_id = dataset.user_id(i)
            response = client.get(f"/_sandbox/users/{user_id}/password")
            assert response.json() == {"password": dataset.exported_plaintext(user_id) + NEW_PASSWORD_SUFFIX}  # type: ignore[operator]
    finally:
        client.close()
