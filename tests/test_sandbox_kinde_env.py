"""The sandbox's Kinde environment variables (``/api/v1/environment_variables``), every exchange validated
against Kinde's spec: create, list, get, update, delete; a secret's value never read back; a key held once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from migrator.sandbox.kinde_app import KindeSandboxConfig, build_kinde_app
from tests.contract import Contract

pytestmark = pytest.mark.anyio
BASE = "/api/v1/environment_variables"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    config = KindeSandboxConfig()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(build_kinde_app(config)), base_url="http://t") as http:
        token = await http.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": config.client_id,
                "client_secret": config.client_secret,
                "audience": "http://t/api",
            },
        )
        http.headers["authorization"] = f"Bearer {token.json()['access_token']}"
        yield http


async def test_create_list_get_update_delete_as_the_spec_says(client: httpx.AsyncClient, kinde_spec: Contract) -> None:
    created = await client.post(BASE, json={"key": "CLERK_API_URL", "value": "https://api.clerk.com/v1"})
    kinde_spec.check(created)
    assert created.status_code == 201
    variable_id = created.json()["environment_variable"]["id"]
    secret = await client.post(BASE, json={"key": "CLERK_SECRET_KEY", "value": "sk_live_x", "is_secret": True})
    kinde_spec.check(secret)

    listed = await client.get(BASE)
    kinde_spec.check(listed)
    items = {item["key"]: item for item in listed.json()["environment_variables"]}
    assert items["CLERK_API_URL"]["value"] == "https://api.clerk.com/v1"
    assert items["CLERK_API_URL"]["is_secret"] is False
    assert items["CLERK_SECRET_KEY"]["value"] is None  # not readable after creation
    assert "sk_live_x" not in listed.text

    updated = await client.patch(f"{BASE}/{variable_id}", json={"value": "https://clerk.internal/v1"})
    kinde_spec.check(updated)
    assert updated.status_code == 200
    one = await client.get(f"{BASE}/{variable_id}")
    kinde_spec.check(one)
    assert one.json()["environment_variable"]["value"] == "https://clerk.internal/v1"

    deleted = await client.delete(f"{BASE}/{variable_id}")
    kinde_spec.check(deleted)
    assert [i["key"] for i in (await client.get(BASE)).json()["environment_variables"]] == ["CLERK_SECRET_KEY"]


async def test_a_key_is_held_once_and_a_secret_stays_secret(client: httpx.AsyncClient, kinde_spec: Contract) -> None:
    first = await client.post(BASE, json={"key": "K", "value": "a", "is_secret": True})
    again = await client.post(BASE, json={"key": "K", "value": "b"})
    kinde_spec.check(again)
    assert again.status_code == 400
    variable_id = first.json()["environment_variable"]["id"]
    readable = await client.patch(f"{BASE}/{variable_id}", json={"is_secret": False})
    kinde_spec.check(readable)
    assert readable.status_code == 400
    unknown = await client.patch(f"{BASE}/env_var_unknown", json={"value": "v"})
    kinde_spec.check(unknown)
    assert (unknown.status_code, unknown.json()["errors"][0]["code"]) == (400, "ENVIRONMENT_VARIABLE_NOT_FOUND")


@pytest.mark.parametrize(
    "body", [{"value": "v"}, {"key": "K"}, {"key": "", "value": "v"}, {"key": "K" * 129, "value": "v"},
             {"key": "K", "value": "v" * 2049}, {"key": "K", "value": "v", "is_secret": "yes"}]
)  # fmt: skip
async def test_bad_bodies_are_refused(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    response = await client.post(BASE, json=body)
    assert response.status_code == 400, response.text
    assert (await client.get(BASE)).json()["environment_variables"] == []
