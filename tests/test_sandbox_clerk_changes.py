"""The sandbox's Clerk changed while serving (``POST /_sandbox/users``): sign-ups, edits, bans,
password changes and deletions show in every endpoint, with created_at/updated_at as the spec says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from migrator.sandbox.clerk_app import build_clerk_app
from migrator.sandbox.generator import Dataset
from tests.test_sandbox_clerk import SECRET, SyncClient


@pytest.fixture
def world() -> Iterator[tuple[SyncClient, Dataset]]:
    dataset = Dataset(120, seed=3)
    client = SyncClient(build_clerk_app(dataset, secret_key=SECRET, requests_per_10s=None))
    yield client, dataset
    client.close()


def change(client: SyncClient, body: dict) -> dict:
    response = client.request("POST", "/_sandbox/users", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_sign_ups_come_after_everyone_and_created_at_after_finds_only_them(world) -> None:
    client, dataset = world
    newest = dataset.created_at(dataset.n - 1)
    added = change(client, {"add": 3})["added"]
    assert client.get("/v1/users/count").json()["total_count"] == 123
    found = client.get("/v1/users", params={"created_at_after": newest, "limit": 500, "order_by": "+created_at"})
    assert [u["id"] for u in found.json()] == added


def test_edits_and_bans_lead_the_updated_at_order_and_bump_updated_at(world) -> None:
    client, dataset = world
    renamed, banned = dataset.user_id(10), dataset.user_id(20)
    before = client.get("/v1/users", params={"user_id": renamed}).json()[0]
    change(client, {"change": {renamed: {"first_name": "Ada"}}})
    change(client, {"change": {banned: {"banned": True}}})
    first = client.get("/v1/users", params={"order_by": "-updated_at", "limit": 2}).json()
    assert [u["id"] for u in first] == [banned, renamed]
    assert first[1]["first_name"] == "Ada" and first[1]["updated_at"] > before["updated_at"]
    assert first[0]["banned"] is True
    everyone = client.get("/v1/users", params={"order_by": "-updated_at", "limit": 500}).json()
    stamps = [u["updated_at"] for u in everyone]
    assert stamps == sorted(stamps, reverse=True) and len(everyone) == 120


def test_a_deleted_user_is_gone_from_lists_filters_and_counts(world) -> None:
    client, dataset = world
    gone = dataset.user_id(30)
    change(client, {"delete": [gone]})
    assert client.get("/v1/users", params={"user_id": [gone, dataset.user_id(31)]}).json()[0]["id"] != gone
    assert client.get("/v1/users/count").json()["total_count"] == 119
    ids = [u["id"] for u in client.get("/v1/users", params={"limit": 500}).json()]
    assert gone not in ids and len(ids) == 119
    assert client.request("POST", "/_sandbox/users", json={"delete": [gone]}).status_code == 404


def test_a_password_change_is_dated_and_changes_the_password(world) -> None:
    client, dataset = world
    index = next(i for i in range(60, 120) if dataset.password(i))
    user_id = dataset.user_id(index)
    old = client.get(f"/_sandbox/users/{user_id}/password").json()["password"]
    change(client, {"password": [user_id]})
    user = client.get("/v1/users", params={"user_id": user_id}).json()[0]
    assert client.get(f"/_sandbox/users/{user_id}/password").json()["password"] != old
    assert user["password_last_updated_at"] == user["updated_at"]


def test_garbage_is_a_clear_422_or_400(world) -> None:
    client, _ = world
    assert client.request("POST", "/_sandbox/users", json=[1]).status_code == 400
    bad = client.request("POST", "/_sandbox/users", json={"change": {"x": {}}})
    assert bad.status_code == 404
    refused = client.request("POST", "/_sandbox/users", json={"add": -1})
    assert refused.status_code == 422
