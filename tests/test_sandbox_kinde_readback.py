"""The Kinde emulator's read-back endpoints (what `migrator verify` reads), against Kinde's spec,
and the sandbox-only doors that change a user behind the migrator's back."""

from __future__ import annotations

import pytest

from tests import test_sandbox_kinde as base
from tests.contract import Contract
from tests.test_sandbox_kinde import Kinde, MakeKinde

anyio_backend, make_kinde, kinde = base.anyio_backend, base.make_kinde, base.kinde  # the fixtures, shared

pytestmark = pytest.mark.anyio


async def add_member(kinde: Kinde, org: str, user_id: str, roles: list[str]) -> None:
    for key in roles:
        await kinde.client.post("/api/v1/roles", json={"key": key, "name": key.title()})
    response = await kinde.client.post(
        f"/api/v1/organizations/{org}/users", json={"users": [{"id": user_id, "roles": roles}]}
    )
    assert response.status_code == 200, response.text


async def new_org(kinde: Kinde, name: str = "Acme") -> str:
    return (await kinde.client.post("/api/v1/organization", json={"name": name})).json()["organization"]["code"]


async def test_identities_carry_the_verified_flag_as_is_confirmed(kinde: Kinde, kinde_spec: Contract) -> None:
    user_id = await kinde.create_user("lee@example.com", username="lliu", phone="+61426148233")
    response = await kinde.client.get(f"/api/v1/users/{user_id}/identities")
    kinde_spec.check(response)
    body = response.json()
    assert body["has_more"] is False
    found = {(i["type"], i["name"], i["is_confirmed"]) for i in body["identities"]}
    assert found == {("email", "lee@example.com", True), ("phone", "+61426148233", False), ("username", "lliu", False)}


async def test_identities_page_with_starting_after_and_has_more(make_kinde: MakeKinde, kinde_spec: Contract) -> None:
    kinde = await make_kinde(identities_page_size=1)
    user_id = await kinde.create_user("lee@example.com", username="lliu", phone="+61426148233")
    seen: list[str] = []
    params: dict[str, str] = {}
    while True:
        response = await kinde.client.get(f"/api/v1/users/{user_id}/identities", params=params)
        kinde_spec.check(response)
        body = response.json()
        seen += [i["name"] for i in body["identities"]]
        if not body["has_more"]:
            break
        params = {"starting_after": body["identities"][-1]["id"]}
    assert seen == ["lee@example.com", "+61426148233", "lliu"]


async def test_identities_of_an_unknown_user(kinde: Kinde) -> None:
    assert (await kinde.client.get("/api/v1/users/kp_nobody/identities")).status_code == 404


async def test_organization_users_list_members_with_their_roles(kinde: Kinde, kinde_spec: Contract) -> None:
    org = await new_org(kinde)
    lee, ann = await kinde.create_user("lee@example.com"), await kinde.create_user("ann@example.com")
    await add_member(kinde, org, lee, ["admin"])
    await add_member(kinde, org, ann, ["member"])
    first = await kinde.client.get(f"/api/v1/organizations/{org}/users", params={"page_size": "1"})
    kinde_spec.check(first)
    second = await kinde.client.get(
        f"/api/v1/organizations/{org}/users", params={"page_size": "1", "next_token": first.json()["next_token"]}
    )
    kinde_spec.check(second)
    members = first.json()["organization_users"] + second.json()["organization_users"]
    assert [(m["id"], m["roles"]) for m in members] == [(lee, ["admin"]), (ann, ["member"])]
    assert "next_token" not in second.json()
    unknown = await kinde.client.get("/api/v1/organizations/org_nope/users")
    kinde_spec.check(unknown)
    assert unknown.status_code == 400


async def test_a_members_roles_are_listed_with_id_key_and_name(kinde: Kinde, kinde_spec: Contract) -> None:
    """GET /organizations/{code}/users/{id}/roles: what verify reads for a sampled user's membership."""
    org = await new_org(kinde)
    lee, ann = await kinde.create_user("lee@example.com"), await kinde.create_user("ann@example.com")
    await add_member(kinde, org, lee, ["admin", "billing"])
    response = await kinde.client.get(f"/api/v1/organizations/{org}/users/{lee}/roles")
    kinde_spec.check(response)
    roles = response.json()["roles"]
    assert [(r["key"], r["name"]) for r in roles] == [("admin", "Admin"), ("billing", "Billing")]
    assert all(r["id"] for r in roles)
    outsider = await kinde.client.get(f"/api/v1/organizations/{org}/users/{ann}/roles")
    assert outsider.status_code == 400  # not a member: said so, not an empty list that reads as "no roles"
    assert (await kinde.client.get(f"/api/v1/organizations/org_nope/users/{lee}/roles")).status_code == 400


async def test_default_organization_can_take_every_new_user(make_kinde: MakeKinde) -> None:
    kinde = await make_kinde(default_org_joins_new_users=True)
    user_id = await kinde.create_user("lee@example.com")
    default = next(o for o in (await kinde.state())["organizations"] if o["is_default"])
    assert default["members"] == [user_id]
    plain = await make_kinde()
    await plain.create_user("lee@example.com")
    assert all(o["members"] == [] for o in (await plain.state())["organizations"])


async def test_sandbox_doors_delete_duplicate_and_alter(kinde: Kinde) -> None:
    org = await new_org(kinde)
    lee = await kinde.create_user("lee@example.com", username="lliu", provided_id="user_lee")
    ann = await kinde.create_user("ann@example.com", provided_id="user_ann")
    await add_member(kinde, org, lee, ["admin"])

    copy = await kinde.client.post(f"/_sandbox/users/{lee}/duplicate")
    assert copy.status_code == 200
    twin = copy.json()["id"]
    listed = await kinde.client.get("/api/v1/users", params={"email": "lee@example.com"})
    assert {u["id"] for u in listed.json()["users"]} == {lee, twin}
    assert {u["provided_id"] for u in listed.json()["users"]} == {"user_lee"}

    changed = await kinde.client.patch(
        f"/_sandbox/users/{lee}",
        json={"given_name": "Leo", "remove_identities": ["lliu"], "leave_organizations": [org], "is_suspended": True},
    )
    assert changed.status_code == 200
    state = {u["id"]: u for u in (await kinde.state())["users"]}
    assert state[lee]["given_name"] == "Leo" and state[lee]["is_suspended"] is True
    assert [i["value"] for i in state[lee]["identities"]] == ["lee@example.com"]
    assert state[lee]["organizations"] == []
    by_username = (await kinde.client.get("/api/v1/users", params={"username": "lliu"})).json()["users"]
    assert [u["id"] for u in by_username] == [twin]  # the duplicate still holds it

    assert (await kinde.client.delete(f"/_sandbox/users/{ann}")).status_code == 200
    assert ann not in {u["id"] for u in (await kinde.state())["users"]}
    assert (await kinde.client.delete(f"/_sandbox/users/{ann}")).status_code == 404


async def test_sandbox_doors_are_not_on_the_api_paths(kinde: Kinde) -> None:
    lee = await kinde.create_user("lee@example.com")
    kinde.client.headers.pop("authorization")
    assert (await kinde.client.patch(f"/_sandbox/users/{lee}", json={"given_name": "X"})).status_code == 200
    assert (await kinde.client.post(f"/api/v1/users/{lee}/duplicate")).status_code == 404
