"""The Clerk emulator's ``POST /v1/users/{id}/verify_password``: the user's real password, Clerk's
answers (200 / 422 / 400 / 404 in the spec's shapes), and Clerk's lockout with both readings of whether
Backend API failures count."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS30Validator

from migrator.sandbox.clerk_app import ClerkBehaviour, build_clerk_app
from migrator.sandbox.generator import Dataset
from tests.contract import Contract
from tests.test_sandbox_clerk import SECRET, FakeClock, SyncClient, clerk_errors  # noqa: F401 (fixture)

DATASET = Dataset(120, seed=11)


def _with_password(dataset: Dataset, *, digest: bool = True) -> str:
    """A user with a password, whose digest the export has (or lacks)."""
    for i in range(120):
        user = dataset.user(i)
        if user.get("locked") or not user.get("password_enabled"):
            continue
        if (dataset.plaintext(user["id"]) is not None) == digest:
            return user["id"]
    raise AssertionError("the dataset has no such user")


def _without_password(dataset: Dataset) -> str:
    return next(dataset.user(i)["id"] for i in range(120) if not dataset.user(i).get("password_enabled"))


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


def _client(clock: FakeClock, **behaviour: Any) -> Iterator[SyncClient]:
    app = build_clerk_app(DATASET, secret_key=SECRET, requests_per_10s=None, clock=clock, behaviour=ClerkBehaviour(**behaviour))
    sync = SyncClient(app)
    yield sync
    sync.close()


@pytest.fixture()
def client(clock: FakeClock) -> Iterator[SyncClient]:
    yield from _client(clock)


def verify(client: SyncClient, user_id: str, password: str | None) -> httpx.Response:
    return client.request("POST", f"/v1/users/{user_id}/verify_password", json={"password": password})


def lookup(client: SyncClient, user_id: str) -> dict[str, Any]:
    response = client.get("/v1/users", params={"user_id": user_id})
    assert response.status_code == 200
    return response.json()[0]


@pytest.mark.contract
def test_the_real_password_verifies_and_the_answer_matches_the_spec(client: SyncClient, clerk_spec: Contract) -> None:
    for digest in (True, False):  # also a user the export has no digest for: Clerk still knows the password
        user_id = _with_password(DATASET, digest=digest)
        response = verify(client, user_id, DATASET.clerk_password(user_id))
        assert response.status_code == 200, response.text
        assert response.json() == {"verified": True}
        clerk_spec.check(response)


@pytest.mark.contract
def test_wrong_no_password_and_unknown_are_clerk_errors(
    client: SyncClient, clerk_spec: Contract, clerk_errors: OAS30Validator  # noqa: F811
) -> None:
    user_id = _with_password(DATASET)
    cases = [
        (user_id, "not the password", 422, "incorrect_password"),
        (_without_password(DATASET), "anything", 400, "no_password_set"),
        ("user_2doesnotexist", "anything", 404, "resource_not_found"),
    ]
    for target, password, status, code in cases:
        response = verify(client, target, password)
        assert response.status_code == status, response.text
        body = response.json()
        assert body["errors"][0]["code"] == code
        clerk_errors.validate(body)
        clerk_spec.validate_request(response.request)


def test_a_changed_password_is_the_one_that_verifies(client: SyncClient) -> None:
    user_id = _with_password(DATASET)
    before = DATASET.clerk_password(user_id)
    assert client.request("POST", "/_sandbox/users", json={"password": [user_id]}).status_code == 200
    after = DATASET.clerk_password(user_id)
    assert after != before
    assert verify(client, user_id, before).status_code == 422
    assert verify(client, user_id, after).status_code == 200


def test_ten_failures_lock_the_user_for_an_hour(clock: FakeClock) -> None:
    client = next(_client(clock))
    user_id = _with_password(DATASET, digest=True)
    password = DATASET.clerk_password(user_id)
    for attempt in range(9):
        assert verify(client, user_id, f"wrong {attempt}").status_code == 422
    assert lookup(client, user_id)["verification_attempts_remaining"] == 1
    assert lookup(client, user_id)["locked"] is False
    verify(client, user_id, "wrong again")
    user = lookup(client, user_id)
    assert user["locked"] is True
    assert user["lockout_expires_in_seconds"] == 3600
    clock.now += 3600
    assert lookup(client, user_id)["locked"] is False
    assert verify(client, user_id, password).status_code == 200


def test_a_success_resets_the_count(clock: FakeClock) -> None:
    client = next(_client(clock, lockout_attempts=3))
    user_id = _with_password(DATASET)
    verify(client, user_id, "wrong")
    verify(client, user_id, "wrong")
    verify(client, user_id, DATASET.clerk_password(user_id))
    verify(client, user_id, "wrong")
    verify(client, user_id, "wrong")
    assert lookup(client, user_id)["locked"] is False


def test_failures_need_not_count_toward_the_lockout(clock: FakeClock) -> None:
    client = next(_client(clock, verify_failures_count=False))
    user_id = _with_password(DATASET)
    for attempt in range(12):
        verify(client, user_id, f"wrong {attempt}")
    assert lookup(client, user_id)["locked"] is False


def test_verify_needs_the_secret_key() -> None:
    app = build_clerk_app(DATASET, secret_key=SECRET, requests_per_10s=None)
    anonymous = SyncClient(app, key=None)
    user_id = _with_password(DATASET)
    assert verify(anonymous, user_id, DATASET.clerk_password(user_id)).status_code == 401
    anonymous.close()
