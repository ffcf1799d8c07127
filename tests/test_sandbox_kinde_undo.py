"""The Kinde emulator's deletions of definitions (what `migrator undo` sends) and its user search, against
Kinde's spec, with each reading of what Kinde does to a definition still in use."""

from __future__ import annotations

from typing import Any

import pytest

from tests import test_sandbox_kinde as base
from tests.contract import Contract
from tests.test_sandbox_kinde import Kinde, MakeKinde, assert_envelope

anyio_backend, make_kinde, kinde = base.anyio_backend, base.make_kinde, base.kinde  # the fixtures, shared

pytestmark = pytest.mark.anyio


async def role_with_permission(kinde: Kinde) -> tuple[str, str]:
    role = (await kinde.client.post("/api/v1/roles", json={"key": "viewer", "name": "Viewer"})).json()["role"]["id"]
    await kinde.client.post("/api/v1/permissions", json={"key": "reports:read", "name": "Reports"})
    permission = (await kinde.client.get("/api/v1/permissions")).json()["permissions"][0]["id"]
    attached = await kinde.client.patch(f"/api/v1/roles/{role}/permissions", json={"permissions": [{"id": permission}]})
    assert attached.status_code == 200, attached.text
    return role, permission


async def user_property(kinde: Kinde, value: str | None) -> tuple[str, str]:
    """A user property definition and, with ``value``, a user holding it: (property id, user id)."""
    category = (await kinde.client.post("/api/v1/property_categories", json={"name": "C", "context": "usr"})).json()
    body = {"name": "Plan", "key": "plan", "type": "single_line_text", "context": "usr", "is_private": False,
            "category_id": category["category"]["id"]}  # fmt: skip
    definition = (await kinde.client.post("/api/v1/properties", json=body)).json()["property"]["id"]
    user_id = await kinde.create_user("holder@example.com")
    if value is not None:
        await kinde.client.patch(f"/api/v1/users/{user_id}/properties", json={"properties": {"plan": value}})
    return definition, user_id


async def test_remove_role_permission(kinde: Kinde, kinde_spec: Contract) -> None:
    role, permission = await role_with_permission(kinde)
    removed = await kinde.client.delete(f"/api/v1/roles/{role}/permissions/{permission}")
    kinde_spec.check(removed)
    assert removed.status_code == 200
    assert (await kinde.state())["roles"][0]["permissions"] == []
    again = await kinde.client.delete(f"/api/v1/roles/{role}/permissions/{permission}")
    kinde_spec.check(again)
    assert_envelope(again, 400, "INVALID_PERMISSION_ID_ROLE")


@pytest.mark.parametrize("reading", ["detach", "refuse"])
async def test_delete_a_permission_roles_carry(make_kinde: MakeKinde, kinde_spec: Contract, reading: str) -> None:
    kinde = await make_kinde(permission_delete_in_use=reading)
    role, permission = await role_with_permission(kinde)
    deleted = await kinde.client.delete(f"/api/v1/permissions/{permission}")
    kinde_spec.check(deleted)
    state = await kinde.state()
    if reading == "refuse":
        assert_envelope(deleted, 400, "PERMISSION_IN_USE")
        assert state["roles"][0]["permissions"] == ["reports:read"]
        await kinde.client.delete(f"/api/v1/roles/{role}/permissions/{permission}")
        free = await kinde.client.delete(f"/api/v1/permissions/{permission}")
        assert free.status_code == 200
    else:
        assert deleted.status_code == 200
    state = await kinde.state()
    assert state["permissions"] == [] and state["roles"][0]["permissions"] == []


@pytest.mark.parametrize("reading", ["cascade", "refuse"])
async def test_delete_a_property_users_hold(make_kinde: MakeKinde, kinde_spec: Contract, reading: str) -> None:
    kinde = await make_kinde(property_delete_with_values=reading)
    definition, _user_id = await user_property(kinde, "gold")
    deleted = await kinde.client.delete(f"/api/v1/properties/{definition}")
    kinde_spec.check(deleted)
    state = await kinde.state()
    if reading == "refuse":
        assert_envelope(deleted, 400, "PROPERTY_IN_USE")
        assert state["users"][0]["properties"] == {"plan": "gold"}
    else:
        assert deleted.status_code == 200
        assert state["properties"] == [] and state["users"][0]["properties"] == {}
    unknown = await kinde.client.delete("/api/v1/properties/prop_unknown")
    kinde_spec.check(unknown)
    assert_envelope(unknown, 400, "PROPERTY_NOT_FOUND")


@pytest.mark.parametrize(("reading", "status", "left"), [("clears", 200, {}), ("refused", 400, {"plan": "gold"})])
async def test_a_null_value_clears_or_is_refused(
    make_kinde: MakeKinde, kinde_spec: Contract, reading: str, status: int, left: dict[str, Any]
) -> None:
    kinde = await make_kinde(property_null_value=reading)
    _, user_id = await user_property(kinde, "gold")
    cleared = await kinde.client.patch(f"/api/v1/users/{user_id}/properties", json={"properties": {"plan": None}})
    kinde_spec.check(cleared)
    assert cleared.status_code == status
    assert (await kinde.state())["users"][0]["properties"] == left


async def test_search_users_pages_with_their_properties(kinde: Kinde, kinde_spec: Contract) -> None:
    _, first = await user_property(kinde, "gold")
    others = [await kinde.create_user(f"u{i}@example.com") for i in range(4)]
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"query": "*", "expand": "properties", "page_size": 2}
    while True:
        page = await kinde.client.get("/api/v1/search/users", params=params)
        kinde_spec.check(page)
        results = page.json()["results"]
        if not results:
            break
        seen.extend(results)
        params["starting_after"] = results[-1]["id"]
    assert [u["id"] for u in seen] == [first, *others]
    assert seen[0]["properties"] == {"plan": "gold"} and seen[1]["properties"] == {}
    found = await kinde.client.get("/api/v1/search/users", params={"query": "u3@EXAMPLE"})
    kinde_spec.check(found)
    assert [u["id"] for u in found.json()["results"]] == [others[3]]
    assert "properties" not in found.json()["results"][0]  # only with expand=properties
