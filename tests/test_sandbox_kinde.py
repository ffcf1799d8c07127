"""The Kinde emulator: every endpoint against Kinde's spec, plus the behaviours our claims rest on.

Driven in-process (httpx + ASGITransport). Responses whose status the spec declares go through
``kinde_spec.check``; statuses the spec does not declare for that operation (401, 404, 409: real,
but undocumented) are checked against the envelope shape by ``assert_envelope``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import bcrypt
import httpx
import pytest
from starlette.applications import Starlette

from migrator.sandbox import kinde_app
from migrator.sandbox.kinde_app import ALL_SCOPES, KindeSandboxConfig, KindeStore, build_kinde_app
from tests.contract import Contract

pytestmark = pytest.mark.anyio

BASE_URL = "http://testserver"
AUDIENCE = f"{BASE_URL}/api"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """Injected into the config so expiry and rate limits are tested without waiting."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Kinde:
    app: Starlette
    client: httpx.AsyncClient
    config: KindeSandboxConfig

    @property
    def store(self) -> KindeStore:
        return self.app.state.store

    async def token(self, **form: str) -> httpx.Response:
        fields = {
            "grant_type": "client_credentials",
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "audience": AUDIENCE,
            **form,
        }
        return await self.client.post("/oauth2/token", data={k: v for k, v in fields.items() if v is not None})

    async def authorize(self, scope: str | None = None) -> None:
        """Point the client's bearer token at a new token (all granted scopes unless ``scope``)."""
        response = await self.token(**({"scope": scope} if scope is not None else {}))
        assert response.status_code == 200, response.text
        self.client.headers["authorization"] = f"Bearer {response.json()['access_token']}"

    async def create_user(
        self,
        email: str | None = None,
        *,
        username: str | None = None,
        phone: str | None = None,
        provided_id: str | None = None,
    ) -> str:
        response = await self.client.post("/api/v1/user", json=user_body(email, username, phone, provided_id))
        assert response.status_code == 200, response.text
        return response.json()["id"]

    async def state(self) -> dict[str, Any]:
        response = await self.client.get("/_sandbox/state")
        assert response.status_code == 200
        return response.json()


def user_body(
    email: str | None = None,
    username: str | None = None,
    phone: str | None = None,
    provided_id: str | None = None,
) -> dict[str, Any]:
    identities: list[dict[str, Any]] = []
    if email:
        identities.append({"type": "email", "is_verified": True, "details": {"email": email}})
    if phone:
        identities.append(
            {"type": "phone", "is_verified": False, "details": {"phone": phone, "phone_country_id": "au"}}
        )
    if username:
        identities.append({"type": "username", "details": {"username": username}})
    body: dict[str, Any] = {"profile": {"given_name": "Lee", "family_name": "Liu"}, "identities": identities}
    if provided_id:
        body["provided_id"] = provided_id
    return body


def assert_envelope(response: httpx.Response, status: int, code: str | None = None, *, shape: str = "list") -> str:
    """Kinde's error envelope, for statuses the spec does not declare; returns the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    errors = response.json()["errors"]
    if shape == "list":
        assert isinstance(errors, list) and len(errors) == 1, errors
        error = errors[0]
    else:
        assert isinstance(errors, dict), errors
        error = errors
    assert set(error) == {"code", "message"} and all(isinstance(v, str) for v in error.values()), error
    if code is not None:
        assert error["code"] == code
    assert "Traceback" not in response.text
    return error["message"]


def error_code(response: httpx.Response) -> str:
    errors = response.json()["errors"]
    return (errors[0] if isinstance(errors, list) else errors)["code"]


MakeKinde = Callable[..., Awaitable[Kinde]]


@pytest.fixture
async def make_kinde() -> AsyncIterator[MakeKinde]:
    async with AsyncExitStack() as stack:

        async def make(*, base_url: str = BASE_URL, **config_fields: Any) -> Kinde:
            config = KindeSandboxConfig(**config_fields)
            app = build_kinde_app(config)
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=base_url)
            )
            kinde = Kinde(app, client, config)
            if base_url == BASE_URL:
                await kinde.authorize()
            return kinde

        yield make


@pytest.fixture
async def kinde(make_kinde: MakeKinde) -> Kinde:
    return await make_kinde()


# ---------------------------------------------------------------------------------------------
# POST /oauth2/token (not in the Management API spec: checked against RFC 6749's shapes)
# ---------------------------------------------------------------------------------------------


async def test_token_endpoint_is_outside_the_spec(kinde: Kinde, kinde_spec: Contract) -> None:
    response = await kinde.token()
    with pytest.raises(Exception, match=r"(?i)path"):
        kinde_spec.validate_request(response.request)


async def test_token_answers_the_oauth2_shape(make_kinde: MakeKinde) -> None:
    kinde = await make_kinde(
        token_lifetime=120, scopes=frozenset({"read:users", "create:users"}), answer_scope="present"
    )
    response = await kinde.token()
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 120
    assert body["scope"].split() == ["create:users", "read:users"]
    assert isinstance(body["access_token"], str) and len(body["access_token"]) >= 32
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "someone-else"}, 401, "invalid_client"),
        ({"audience": None}, 400, "invalid_request"),
        ({"audience": "http://elsewhere.example/api"}, 400, "invalid_request"),
        ({"audience": f"{BASE_URL}/api/v1"}, 400, "invalid_request"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": None}, 400, "invalid_request"),
        ({"scope": "read:users delete:everything"}, 400, "invalid_scope"),
    ],
)
async def test_token_errors(kinde: Kinde, form: dict[str, str | None], status: int, error: str) -> None:
    response = await kinde.token(**form)  # type: ignore[arg-type]
    assert response.status_code == status
    assert response.json()["error"] == error
    assert isinstance(response.json()["error_description"], str)


async def test_token_refuses_a_json_body(kinde: Kinde) -> None:
    response = await kinde.client.post(
        "/oauth2/token",
        json={"grant_type": "client_credentials", "client_id": kinde.config.client_id, "audience": AUDIENCE},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_token_accepts_http_basic_client_authentication(kinde: Kinde) -> None:
    credentials = base64.b64encode(f"{kinde.config.client_id}:{kinde.config.client_secret}".encode()).decode()
    response = await kinde.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "audience": AUDIENCE},
        headers={"authorization": f"Basic {credentials}"},
    )
    assert response.status_code == 200


async def test_audience_is_the_servers_own_base_url(make_kinde: MakeKinde) -> None:
    kinde = await make_kinde(base_url="http://kinde.localhost:8123")
    assert (await kinde.token(audience="http://kinde.localhost:8123/api")).status_code == 200
    assert (await kinde.token()).status_code == 400  # http://testserver/api is someone else's


async def test_requested_scopes_narrow_the_token(kinde: Kinde) -> None:
    await kinde.authorize(scope="read:users")
    assert (await kinde.client.get("/api/v1/users")).status_code == 200
    assert "create:users" in assert_envelope(await kinde.client.post("/api/v1/user", json={}), 403, "FORBIDDEN")


# ---------------------------------------------------------------------------------------------
# Authentication and scopes
# ---------------------------------------------------------------------------------------------

# Every operation, the scope the spec names for it, and a body the spec accepts.
OPERATIONS: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/users", "read:users", None),
    ("POST", "/api/v1/user", "create:users", {}),
    ("GET", "/api/v1/user?id=kp_unknown", "read:users", None),
    ("PATCH", "/api/v1/user?id=kp_unknown", "update:users", {"given_name": "Lee"}),
    ("DELETE", "/api/v1/user?id=kp_unknown", "delete:users", None),
    ("DELETE", "/api/v1/identities/identity_unknown", "delete:identities", None),
    ("PUT", "/api/v1/users/kp_unknown/password", "update:user_passwords", {"hashed_password": "x"}),
    ("POST", "/api/v1/users/kp_unknown/identities", "create:user_identities", {"type": "email", "value": "a@b.co"}),
    ("GET", "/api/v1/users/kp_unknown/identities", "read:user_identities", None),
    ("GET", "/api/v1/organizations/org_unknown/users", "read:organization_users", None),
    ("PATCH", "/api/v1/users/kp_unknown/properties", "update:user_properties", {"properties": {}}),
    ("POST", "/api/v1/organization", "create:organizations", {"name": "Acme"}),
    ("GET", "/api/v1/organizations", "read:organizations", None),
    ("POST", "/api/v1/organizations/org_unknown/users", "create:organization_users", {"users": []}),
    ("GET", "/api/v1/roles", "read:roles", None),
    ("POST", "/api/v1/roles", "create:roles", {"key": "admin", "name": "Admin"}),
    ("DELETE", "/api/v1/organization/org_unknown", "delete:organizations", None),
    ("GET", "/api/v1/organizations/org_unknown/users", "read:organization_users", None),
    ("GET", "/api/v1/organizations/org_unknown/users/kp_unknown/roles", "read:organization_user_roles", None),
    ("DELETE", "/api/v1/roles/role_unknown", "delete:roles", None),
    ("GET", "/api/v1/permissions", "read:permissions", None),
    ("POST", "/api/v1/permissions", "create:permissions", {"key": "admin", "name": "Admin"}),
    ("GET", "/api/v1/properties", "read:properties", None),
    (
        "POST",
        "/api/v1/properties",
        "create:properties",
        {"name": "N", "key": "k", "type": "single_line_text", "context": "usr", "is_private": True, "category_id": "c"},
    ),
    ("GET", "/api/v1/property_categories", "read:property_categories", None),
    ("POST", "/api/v1/property_categories", "create:property_categories", {"name": "Clerk", "context": "usr"}),
    ("GET", "/api/v1/users/kp_unknown/identities", "read:user_identities", None),
    ("GET", "/api/v1/users/kp_unknown/properties", "read:user_properties", None),
    ("GET", "/api/v1/roles/r_unknown/permissions", "read:role_permissions", None),
    ("PATCH", "/api/v1/roles/r_unknown/permissions", "update:role_permissions", {"permissions": []}),
    ("GET", "/api/v1/organizations/org_unknown/properties", "read:organization_properties", None),
    ("PATCH", "/api/v1/organizations/org_unknown/properties", "update:organization_properties", {"properties": {}}),
    # an undo's deletions of definitions
    ("DELETE", "/api/v1/roles/r_unknown/permissions/p_unknown", "delete:role_permissions", None),
    ("DELETE", "/api/v1/permissions/p_unknown", "delete:permissions", None),
    ("DELETE", "/api/v1/properties/prop_unknown", "delete:properties", None),
    ("GET", "/api/v1/search/users?query=*", "read:users", None),
    # an undo of a catch-up: a re-added identity made primary again
    ("PATCH", "/api/v1/identities/identity_unknown", "update:identities", {"is_primary": True}),
    # lazy migration's workflow variables (`migrator lazy setup`)
    ("GET", "/api/v1/environment_variables", "read:environment_variables", None),
    ("POST", "/api/v1/environment_variables", "create:environment_variables", {"key": "K", "value": "v"}),
    ("GET", "/api/v1/environment_variables/env_var_unknown", "read:environment_variables", None),
    ("PATCH", "/api/v1/environment_variables/env_var_unknown", "update:environment_variables", {"value": "v"}),
    ("DELETE", "/api/v1/environment_variables/env_var_unknown", "delete:environment_variables", None),
]


def test_all_scopes_is_exactly_what_the_endpoints_enforce() -> None:
    assert {scope for _, _, scope, _ in OPERATIONS} == ALL_SCOPES


@pytest.mark.parametrize(("method", "path", "scope", "body"), OPERATIONS, ids=lambda v: str(v)[:40])
async def test_each_endpoint_enforces_its_scope(
    kinde: Kinde, kinde_spec: Contract, method: str, path: str, scope: str, body: dict[str, Any] | None
) -> None:
    await kinde.authorize(scope=" ".join(sorted(ALL_SCOPES - {scope})))
    denied = await kinde.client.request(method, path, json=body)
    kinde_spec.check(denied)
    assert scope in assert_envelope(denied, 403, "FORBIDDEN")

    await kinde.authorize(scope=scope)
    allowed = await kinde.client.request(method, path, json=body)
    assert allowed.status_code not in (401, 403), allowed.text


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer not-a-token", "Basic dXNlcjpwYXNz"])
async def test_missing_or_invalid_token_is_401(kinde: Kinde, authorization: str | None) -> None:
    headers = {"authorization": authorization} if authorization else {}
    kinde.client.headers.pop("authorization")
    response = await kinde.client.get("/api/v1/users", headers=headers)
    assert_envelope(response, 401)


async def test_token_expires_after_its_lifetime(make_kinde: MakeKinde) -> None:
    clock = FakeClock()
    kinde = await make_kinde(clock=clock, token_lifetime=60)
    clock.advance(59.9)
    assert (await kinde.client.get("/api/v1/users")).status_code == 200
    clock.advance(0.1)
    assert_envelope(await kinde.client.get("/api/v1/users"), 401, "TOKEN_EXPIRED")
    await kinde.authorize()
    assert (await kinde.client.get("/api/v1/users")).status_code == 200


async def test_auth_is_checked_before_the_body(kinde: Kinde) -> None:
    kinde.client.headers.pop("authorization")
    assert_envelope(await kinde.client.post("/api/v1/user", content=b"{not json"), 401)


# ---------------------------------------------------------------------------------------------
# Users
# ---------------------------------------------------------------------------------------------


async def test_create_user(kinde: Kinde, kinde_spec: Contract) -> None:
    org = (await kinde.client.post("/api/v1/organization", json={"name": "Acme"})).json()["organization"]["code"]
    body = user_body("lee@example.com", "lliu", "+61426148233", provided_id="user_2abc")
    body["organization_code"] = org
    response = await kinde.client.post("/api/v1/user", json=body)
    kinde_spec.check(response)
    assert response.status_code == 200
    created = response.json()
    assert created["id"].startswith("kp_") and len(created["id"]) == 35
    int(created["id"][3:], 16)
    assert created["created"] is True
    assert [i["type"] for i in created["identities"]] == ["email", "phone", "username"]

    (user,) = (await kinde.state())["users"]
    assert user["id"] == created["id"]
    assert user["provided_id"] == "user_2abc"
    assert user["identities"] == [
        {"type": "email", "value": "lee@example.com", "is_verified": True},
        {"type": "phone", "value": "+61426148233", "is_verified": False},
        {"type": "username", "value": "lliu", "is_verified": False},
    ]
    assert user["organizations"] == [{"code": org, "roles": [], "permissions": []}]
    assert user["password_method"] is None


async def test_create_user_without_a_body(kinde: Kinde, kinde_spec: Contract) -> None:
    response = await kinde.client.post("/api/v1/user")
    kinde_spec.check(response)
    assert response.json()["identities"] == []


@pytest.mark.parametrize("duplicate_status", [400, 409])
@pytest.mark.parametrize(
    ("first", "second"),
    [
        (user_body(email="Lee@Example.com"), user_body(email="lee@example.COM")),
        (user_body(username="LLiu"), user_body(username="lliu")),
        (user_body(phone="+61426148233"), user_body(phone="+61426148233")),
    ],
    ids=["email-ignoring-case", "username-ignoring-case", "phone"],
)
async def test_duplicate_identities_are_refused(
    make_kinde: MakeKinde,
    kinde_spec: Contract,
    duplicate_status: int,
    first: dict[str, Any],
    second: dict[str, Any],
) -> None:
    kinde = await make_kinde(duplicate_status=duplicate_status, duplicate_code="EMAIL_ALREADY_USED")
    assert (await kinde.client.post("/api/v1/user", json=first)).status_code == 200
    response = await kinde.client.post("/api/v1/user", json=second)
    assert_envelope(response, duplicate_status, "EMAIL_ALREADY_USED")
    if duplicate_status == 400:  # the spec declares 400 for createUser, not 409
        kinde_spec.check(response)
    assert len((await kinde.state())["users"]) == 1


async def test_duplicate_default_code_and_different_phone(kinde: Kinde) -> None:
    await kinde.create_user(phone="+61426148233")
    await kinde.create_user(phone="+61426148234")
    response = await kinde.client.post("/api/v1/user", json=user_body("a@example.com", "a", "+61426148233"))
    assert_envelope(response, 400, "USER_ALREADY_EXISTS")


async def test_duplicate_within_one_request(kinde: Kinde) -> None:
    body = user_body("a@example.com")
    body["identities"].append({"type": "email", "details": {"email": "A@example.com"}})
    assert_envelope(await kinde.client.post("/api/v1/user", json=body), 400, "USER_ALREADY_EXISTS")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"identities": {"type": "email"}}, "INVALID_REQUEST"),
        ({"identities": [{"type": "oauth2:google", "details": {}}]}, "INVALID_REQUEST"),
        ({"identities": [{"type": "email", "details": {"email": "not-an-email"}}]}, "INVALID_EMAIL"),
        ({"identities": [{"type": "phone", "details": {"phone": "0426 148 233"}}]}, "INVALID_PHONE"),
        ({"identities": [{"type": "username"}]}, "INVALID_REQUEST"),
        ({"profile": {"given_name": 5}}, "INVALID_REQUEST"),
        ({"provided_id": 12}, "INVALID_REQUEST"),
        ({"organization_code": "org_00000000000"}, "ORGANIZATION_NOT_FOUND"),
    ],
)
async def test_create_user_rejects_bad_input(
    kinde: Kinde, kinde_spec: Contract, body: dict[str, Any], code: str
) -> None:
    response = await kinde.client.post("/api/v1/user", json=body)
    kinde_spec.check(response, request=False)  # some of these requests break the spec on purpose
    assert_envelope(response, 400, code)
    assert (await kinde.state())["users"] == []


async def test_list_users_filters(kinde: Kinde, kinde_spec: Contract) -> None:
    lee = await kinde.create_user("Lee@Example.com", username="lliu", provided_id="user_1")
    ann = await kinde.create_user("ann@example.com", phone="+61426148233")
    await kinde.create_user("bob@example.com")

    async def ids(**params: str) -> list[str]:
        response = await kinde.client.get("/api/v1/users", params=params)
        kinde_spec.check(response)
        return [user["id"] for user in response.json()["users"]]

    assert await ids(email="lee@EXAMPLE.com,ANN@example.com") == [lee, ann]
    assert await ids(username="LLIU") == [lee]
    assert await ids(phone="+61426148233") == [ann]
    assert await ids(user_id=f"{ann},kp_nobody") == [ann]
    assert await ids(email="lee@example.com,ann@example.com", user_id=ann) == [ann]
    assert await ids(email="nobody@example.com") == []

    response = await kinde.client.get("/api/v1/users", params={"email": "lee@example.com"})
    (user,) = response.json()["users"]
    assert user["email"] == "Lee@Example.com"
    assert user["provided_id"] == "user_1"
    assert user["username"] == "lliu"
    assert "identities" not in user  # only with expand


async def test_list_users_expand(kinde: Kinde, kinde_spec: Contract) -> None:
    user_id = await kinde.create_user("lee@example.com", username="lliu")
    org = (await kinde.client.post("/api/v1/organization", json={"name": "Acme"})).json()["organization"]["code"]
    await kinde.client.post(f"/api/v1/organizations/{org}/users", json={"users": [{"id": user_id}]})
    response = await kinde.client.get("/api/v1/users", params={"expand": "organizations,identities"})
    kinde_spec.check(response)
    (user,) = response.json()["users"]
    assert user["organizations"] == [org]
    assert user["identities"] == [
        {"type": "email", "identity": "lee@example.com", "connection_id": None},
        {"type": "username", "identity": "lliu", "connection_id": None},
    ]
    with_org = await kinde.client.get("/api/v1/users", params={"has_organization": "false"})
    assert with_org.json()["users"] == []
    social = {"type": "social", "value": "lee@gmail.com", "connection_id": "conn_google"}
    assert (await kinde.client.post(f"/api/v1/users/{user_id}/identities", json=social)).status_code == 201
    listed = await kinde.client.get("/api/v1/users", params={"expand": "identities"})
    kinde_spec.check(listed)
    (user,) = listed.json()["users"]
    assert user["identities"][-1] == {"type": "social", "identity": "lee@gmail.com", "connection_id": "conn_google"}
    assert "organizations" not in user  # only what expand names
    one = await kinde.client.get("/api/v1/user", params={"id": user_id, "expand": "identities"})
    kinde_spec.check(one)
    assert all("connection_id" not in i for i in one.json()["identities"])  # GET /user's schema has none


async def test_list_users_pages_with_next_token(kinde: Kinde, kinde_spec: Contract) -> None:
    created = [await kinde.create_user(f"user{i}@example.com") for i in range(5)]
    seen: list[str] = []
    params: dict[str, str] = {"page_size": "2"}
    pages = 0
    while True:
        response = await kinde.client.get("/api/v1/users", params=params)
        kinde_spec.check(response)
        body = response.json()
        seen += [user["id"] for user in body["users"]]
        pages += 1
        if not body.get("next_token"):
            break
        params["next_token"] = body["next_token"]
    assert seen == created
    assert pages == 3


async def test_list_users_default_page_size_is_10(kinde: Kinde) -> None:
    for i in range(11):
        await kinde.create_user(f"user{i}@example.com")
    body = (await kinde.client.get("/api/v1/users")).json()
    assert len(body["users"]) == 10 and body["next_token"]


@pytest.mark.parametrize(
    "params",
    [{"page_size": "501"}, {"page_size": "0"}, {"page_size": "ten"}, {"next_token": "%%%"}, {"next_token": "e30"}],
)
async def test_list_users_rejects_bad_paging(kinde: Kinde, kinde_spec: Contract, params: dict[str, str]) -> None:
    response = await kinde.client.get("/api/v1/users", params=params)
    kinde_spec.check(response, request=False)
    assert_envelope(response, 400, "INVALID_REQUEST")


async def test_list_users_accepts_500(kinde: Kinde) -> None:
    assert (await kinde.client.get("/api/v1/users", params={"page_size": "500"})).status_code == 200


async def test_get_user(kinde: Kinde, kinde_spec: Contract) -> None:
    user_id = await kinde.create_user("lee@example.com", provided_id="user_1")
    response = await kinde.client.get("/api/v1/user", params={"id": user_id, "expand": "identities"})
    kinde_spec.check(response)
    user = response.json()
    assert user["id"] == user_id
    assert user["preferred_email"] == "lee@example.com"
    assert user["first_name"] == "Lee" and user["last_name"] == "Liu"
    assert user["identities"] == [{"type": "email", "identity": "lee@example.com"}]


UNKNOWN_USER_CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/user?id=kp_00000000000000000000000000000000", None),
    ("PATCH", "/api/v1/user?id=kp_00000000000000000000000000000000", {"is_suspended": True}),
    ("DELETE", "/api/v1/user?id=kp_00000000000000000000000000000000", None),
    (
        "PUT",
        "/api/v1/users/kp_00000000000000000000000000000000/password",
        # A fixed salt: the test ids show this hash, and they must be the same in every pytest-xdist worker.
        {"hashed_password": bcrypt.hashpw(b"pw", b"$2b$04$0123456789abcdefghijku").decode()},
    ),
    ("PATCH", "/api/v1/users/kp_00000000000000000000000000000000/properties", {"properties": {}}),
]


@pytest.mark.parametrize(("method", "path", "body"), UNKNOWN_USER_CALLS, ids=lambda v: str(v)[:30])
async def test_unknown_user_is_404_by_default(
    kinde: Kinde, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = await kinde.client.request(method, path, json=body)
    # The spec's 404 body (not_found_response) has ``errors`` as one object.
    assert_envelope(response, 404, "USER_NOT_FOUND", shape="object")


@pytest.mark.parametrize(("method", "path", "body"), UNKNOWN_USER_CALLS, ids=lambda v: str(v)[:30])
async def test_unknown_user_can_be_the_specs_400(
    make_kinde: MakeKinde, kinde_spec: Contract, method: str, path: str, body: dict[str, Any] | None
) -> None:
    kinde = await make_kinde(unknown_user_status=400)
    response = await kinde.client.request(method, path, json=body)
    kinde_spec.check(response)
    assert_envelope(response, 400, "USER_NOT_FOUND")


async def test_user_id_is_required(kinde: Kinde, kinde_spec: Contract) -> None:
    response = await kinde.client.get("/api/v1/user")
    kinde_spec.check(response, request=False)
    assert_envelope(response, 400, "INVALID_REQUEST")


async def test_update_user_stores_flags(kinde: Kinde, kinde_spec: Contract) -> None:
    user_id = await kinde.create_user("lee@example.com", provided_id="user_1")
    response = await kinde.client.patch(
        "/api/v1/user",
        params={"id": user_id},
        json={
            "is_password_reset_requested": True,
            "is_suspended": True,
            "provided_id": "user_2",
            "given_name": "Leigh",
            "ignored_field": "x",
        },
    )
    kinde_spec.check(response)
    assert response.json() == {
        "id": user_id,
        "given_name": "Leigh",
        "family_name": "Liu",
        "email": "lee@example.com",
        "is_suspended": True,
        "is_password_reset_requested": True,
        "picture": None,
    }
    (user,) = (await kinde.state())["users"]
    assert user["is_password_reset_requested"] is True
    assert user["is_suspended"] is True
    assert user["provided_id"] == "user_2"
    assert user["given_name"] == "Leigh"


@pytest.mark.parametrize(
    "body", [{"is_suspended": "yes"}, {"is_password_reset_requested": 1}, {"given_name": ["Lee"]}, [1, 2]]
)
async def test_update_user_rejects_wrong_types(kinde: Kinde, kinde_spec: Contract, body: Any) -> None:
    user_id = await kinde.create_user("lee@example.com")
    response = await kinde.client.patch("/api/v1/user", params={"id": user_id}, json=body)
    kinde_spec.check(response, request=False)
    assert_envelope(response, 400, "INVALID_REQUEST")
    (user,) = (await kinde.state())["users"]
    assert user["is_suspended"] is False and user["is_password_reset_requested"] is False


async def test_delete_user_frees_its_identities(kinde: Kinde, kinde_spec: Contract) -> None:
    user_id = await kinde.create_user("lee@example.com", username="lliu", provided_id="user_1")
    response = await kinde.client.delete("/api/v1/user", params={"id": user_id, "is_delete_profile": "true"})
    kinde_spec.check(response)
    assert response.json() == {"message": "Success", "code": "OK"}
    assert_envelope(await kinde.client.get("/api/v1/user", params={"id": user_id}), 404, shape="object")
    again = await kinde.create_user("LEE@example.com", username="LLIU", provided_id="user_1")
    assert again != user_id
    state = await kinde.state()
    assert [u["id"] for u in state["users"]] == [again]
    assert state["creations_by_provided_id"] == {"user_1": 2}
    assert state["duplicate_creations"] == ["user_1"]


# ---------------------------------------------------------------------------------------------
# Passwords and sign-in
# ---------------------------------------------------------------------------------------------

PLAINTEXT = "correct horse battery staple"


async def sign_in(kinde: Kinde, email: str, password: str) -> httpx.Response:
    return await kinde.client.post("/_sandbox/sign-in", json={"email": email, "password": password})


async def test_bcrypt_password_then_sign_in(kinde: Kinde, kinde_spec: Contract) -> None:
    user_id = await kinde.create_user("lee@example.com")
    digest = bcrypt.hashpw(PLAINTEXT.encode(), bcrypt.gensalt(4)).decode()
    response = await kinde.client.put(
        f"/api/v1/users/{user_id}/password",
        json={"hashed_password": digest, "hashing_method": "bcrypt", "is_temporary_password": False},
    )
    kinde_spec.check(response)
    assert response.json() == {"message": "Success", "code": "OK"}

    ok = await sign_in(kinde, "LEE@example.com", PLAINTEXT)
    assert ok.status_code == 200
    assert ok.json()["id"] == user_id and ok.json()["password_method"] == "bcrypt"
    assert_envelope(await sign_in(kinde, "lee@example.com", PLAINTEXT + "!"), 401, "INVALID_CREDENTIALS")
    assert_envelope(await sign_in(kinde, "nobody@example.com", PLAINTEXT), 404, "USER_NOT_FOUND", shape="object")

    state = await kinde.state()
    (user,) = state["users"]
    assert user["password_method"] == "bcrypt"
    assert user["total_sign_ins"] == 1 and user["failed_sign_ins"] == 1
    assert digest not in json.dumps(state)
    listing = await kinde.client.get("/api/v1/users", params={"expand": "identities"})
    assert digest not in listing.text
    assert digest not in (await kinde.client.get("/api/v1/user", params={"id": user_id})).text


async def test_pbkdf2_and_salted_md5_sign_in(kinde: Kinde, kinde_spec: Contract) -> None:
    salt = b"0123456789abcdef"
    key = hashlib.pbkdf2_hmac("sha256", PLAINTEXT.encode(), salt, 1000, 32)
    records = {
        "pbkdf2@example.com": {
            "hashed_password": base64.b64encode(key).decode(),
            "hashing_method": "pbkdf2",
            "salt": base64.b64encode(salt).decode(),
            "iterations": 1000,
            "variant": "salted-pbkdf2-hmac-sha256",
        },
        "md5@example.com": {
            "hashed_password": hashlib.md5(b"s4lt" + PLAINTEXT.encode()).hexdigest(),
            "hashing_method": "md5",
            "salt": "s4lt",
            "salt_position": "prefix",
        },
    }
    for email, record in records.items():
        user_id = await kinde.create_user(email)
        response = await kinde.client.put(f"/api/v1/users/{user_id}/password", json=record)
        kinde_spec.check(response)
        assert response.status_code == 200
        assert (await sign_in(kinde, email, PLAINTEXT)).status_code == 200
        assert (await sign_in(kinde, email, "wrong")).status_code == 401
    methods = {u["identities"][0]["value"]: u["password_method"] for u in (await kinde.state())["users"]}
    assert methods == {"pbkdf2@example.com": "pbkdf2", "md5@example.com": "md5"}


async def test_sign_in_without_a_password_is_the_one_time_code_path(kinde: Kinde) -> None:
    await kinde.create_user("lee@example.com")
    assert_envelope(await sign_in(kinde, "lee@example.com", ""), 401, "ONE_TIME_CODE_REQUIRED")


@pytest.mark.parametrize("body", [{"email": "lee@example.com"}, {"email": 5, "password": "x"}, ["x"]])
async def test_sign_in_rejects_bad_bodies(kinde: Kinde, body: Any) -> None:
    assert_envelope(await kinde.client.post("/_sandbox/sign-in", json=body), 400)


@pytest.mark.parametrize(
    "record",
    [
        {"hashed_password": "abc", "hashing_method": "pbkdf2", "variant": "salted-pbkdf2-hmac-sha256"},
        {"hashed_password": "not-hex", "hashing_method": "md5"},
        {"hashed_password": "not-bcrypt"},
        {"hashing_method": "bcrypt"},
    ],
    ids=["pbkdf2-without-salt", "md5-not-hex", "bcrypt-malformed", "no-hash"],
)
async def test_set_password_rejects_what_the_spec_forbids(
    kinde: Kinde, kinde_spec: Contract, record: dict[str, Any]
) -> None:
    user_id = await kinde.create_user("lee@example.com")
    response = await kinde.client.put(f"/api/v1/users/{user_id}/password", json=record)
    kinde_spec.check(response, request="hashed_password" in record)
    assert_envelope(response, 400, "INVALID_PASSWORD")
    assert (await kinde.state())["users"][0]["password_method"] is None


# ---------------------------------------------------------------------------------------------
# Organizations, roles, permissions, memberships
# ---------------------------------------------------------------------------------------------


async def create_org(kinde: Kinde, name: str, external_id: str | None = None) -> str:
    body = {"name": name} | ({"external_id": external_id} if external_id else {})
    response = await kinde.client.post("/api/v1/organization", json=body)
    assert response.status_code == 200, response.text
    return response.json()["organization"]["code"]


async def test_create_and_list_organizations(kinde: Kinde, kinde_spec: Contract) -> None:
    response = await kinde.client.post(
        "/api/v1/organization", json={"name": "Acme", "external_id": "org_2Clerk", "handle": "acme"}
    )
    kinde_spec.check(response)
    code = response.json()["organization"]["code"]
    assert code.startswith("org_") and len(code) == 15
    int(code[4:], 16)
    await create_org(kinde, "Beta", "org_2Beta")

    listed: list[dict[str, Any]] = []
    params = {"page_size": "1"}
    while True:
        page = await kinde.client.get("/api/v1/organizations", params=params)
        kinde_spec.check(page)
        listed += page.json()["organizations"]
        if "next_token" not in page.json():
            break
        params["next_token"] = page.json()["next_token"]
    by_name = {org["name"]: org for org in listed}
    assert set(by_name) == {"Acme", "Beta", "Default Organization"}
    assert by_name["Acme"] == {
        "code": code,
        "name": "Acme",
        "handle": "acme",
        "is_default": False,
        "external_id": "org_2Clerk",
        "is_auto_membership_enabled": False,
    }
    assert by_name["Default Organization"]["is_default"] is True
    assert by_name["Default Organization"]["external_id"] is None

    descending = await kinde.client.get("/api/v1/organizations", params={"sort": "name_desc"})
    assert [o["name"] for o in descending.json()["organizations"]] == ["Default Organization", "Beta", "Acme"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "Again", "external_id": "org_2Clerk"}, "ORGANIZATION_EXTERNAL_ID_EXISTS"),
        ({"name": "Again", "handle": "acme"}, "ORGANIZATION_HANDLE_EXISTS"),
        ({"external_id": "org_2Other"}, "INVALID_REQUEST"),
        ({"name": 7}, "INVALID_REQUEST"),
    ],
)
async def test_create_organization_rejections(
    kinde: Kinde, kinde_spec: Contract, body: dict[str, Any], code: str
) -> None:
    await kinde.client.post(
        "/api/v1/organization", json={"name": "Acme", "external_id": "org_2Clerk", "handle": "acme"}
    )
    response = await kinde.client.post("/api/v1/organization", json=body)
    kinde_spec.check(response, request=False)
    assert_envelope(response, 400, code)
    assert len((await kinde.state())["organizations"]) == 2


async def test_roles(kinde: Kinde, kinde_spec: Contract) -> None:
    created = await kinde.client.post(
        "/api/v1/roles", json={"key": "admin", "name": "Admin", "description": "All", "is_default_role": False}
    )
    kinde_spec.check(created)
    assert created.status_code == 201
    await kinde.client.post("/api/v1/roles", json={"key": "member", "name": "Member"})
    listing = await kinde.client.get("/api/v1/roles", params={"sort": "key_desc"})
    kinde_spec.check(listing)
    roles = listing.json()["roles"]
    assert [r["key"] for r in roles] == ["member", "admin"]
    assert roles[1] == {
        "id": created.json()["role"]["id"],
        "key": "admin",
        "name": "Admin",
        "description": "All",
        "is_default_role": False,
    }
    duplicate = await kinde.client.post("/api/v1/roles", json={"key": "admin", "name": "Again"})
    kinde_spec.check(duplicate)
    assert_envelope(duplicate, 400, "ROLE_ALREADY_EXISTS")
    missing_key = await kinde.client.post("/api/v1/roles", json={"name": "No key"})
    kinde_spec.check(missing_key)
    assert_envelope(missing_key, 400, "INVALID_REQUEST")


async def test_permissions(kinde: Kinde, kinde_spec: Contract) -> None:
    created = await kinde.client.post("/api/v1/permissions", json={"key": "billing", "name": "Billing"})
    kinde_spec.check(created)
    assert created.status_code == 201 and created.json() == {"message": "Success", "code": "OK"}
    listing = await kinde.client.get("/api/v1/permissions")
    kinde_spec.check(listing)
    assert [p["key"] for p in listing.json()["permissions"]] == ["billing"]
    duplicate = await kinde.client.post("/api/v1/permissions", json={"key": "billing", "name": "Billing"})
    kinde_spec.check(duplicate)
    assert_envelope(duplicate, 400, "PERMISSION_ALREADY_EXISTS")


async def test_add_organization_users_is_idempotent(kinde: Kinde, kinde_spec: Contract) -> None:
    org = await create_org(kinde, "Acme", "org_2Clerk")
    for key in ("admin", "member"):
        await kinde.client.post("/api/v1/roles", json={"key": key, "name": key.title()})
    await kinde.client.post("/api/v1/permissions", json={"key": "billing", "name": "Billing"})
    lee, ann = await kinde.create_user("lee@example.com"), await kinde.create_user("ann@example.com")

    first = await kinde.client.post(
        f"/api/v1/organizations/{org}/users",
        json={"users": [{"id": lee, "roles": ["admin"], "permissions": ["billing"]}, {"id": ann, "roles": ["member"]}]},
    )
    kinde_spec.check(first)
    assert first.json()["users_added"] == [lee, ann]

    again = await kinde.client.post(
        f"/api/v1/organizations/{org}/users", json={"users": [{"id": lee, "roles": ["admin", "member"]}]}
    )
    kinde_spec.check(again)
    assert again.json()["users_added"] == []

    memberships = {u["id"]: u["organizations"] for u in (await kinde.state())["users"]}
    assert memberships[lee] == [{"code": org, "roles": ["admin", "member"], "permissions": ["billing"]}]
    assert memberships[ann] == [{"code": org, "roles": ["member"], "permissions": []}]


async def test_add_organization_users_accepts_100(kinde: Kinde, kinde_spec: Contract) -> None:
    org = await create_org(kinde, "Acme")
    users = [{"id": await kinde.create_user(f"u{i}@example.com")} for i in range(100)]
    response = await kinde.client.post(f"/api/v1/organizations/{org}/users", json={"users": users})
    kinde_spec.check(response)
    assert len(response.json()["users_added"]) == 100


@pytest.mark.parametrize(
    ("users", "code"),
    [
        ([{"id": "LEE"}] * 101, "INVALID_REQUEST"),
        ([{"id": "LEE", "roles": ["owner"]}], "ROLE_NOT_FOUND"),
        ([{"id": "LEE", "permissions": ["root"]}], "PERMISSION_NOT_FOUND"),
        ([{"id": "LEE"}, {"id": "kp_00000000000000000000000000000000"}], "USER_NOT_FOUND"),
        ([{"id": "LEE", "roles": "admin"}], "INVALID_REQUEST"),
        ([{"roles": []}], "INVALID_REQUEST"),
    ],
    ids=["101-users", "unknown-role", "unknown-permission", "unknown-user", "roles-not-a-list", "no-id"],
)
async def test_add_organization_users_rejections(
    kinde: Kinde, kinde_spec: Contract, users: list[dict[str, Any]], code: str
) -> None:
    org = await create_org(kinde, "Acme")
    await kinde.client.post("/api/v1/roles", json={"key": "admin", "name": "Admin"})
    lee = await kinde.create_user("lee@example.com")
    body = {"users": [{**user, "id": lee} if user.get("id") == "LEE" else user for user in users]}
    response = await kinde.client.post(f"/api/v1/organizations/{org}/users", json=body)
    kinde_spec.check(response, request=False)
    message = assert_envelope(response, 400, code)
    if len(users) > 100:
        assert "100" in message
    assert (await kinde.state())["users"][0]["organizations"] == []  # nothing applied


async def test_add_users_to_an_unknown_organization(kinde: Kinde, kinde_spec: Contract) -> None:
    response = await kinde.client.post("/api/v1/organizations/org_00000000000/users", json={"users": []})
    kinde_spec.check(response)
    assert_envelope(response, 400, "ORGANIZATION_NOT_FOUND")


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


async def define_property(kinde: Kinde, key: str, context: str = "usr") -> str:
    category = await kinde.client.post("/api/v1/property_categories", json={"name": "Clerk", "context": context})
    response = await kinde.client.post(
        "/api/v1/properties",
        json={
            "name": key,
            "key": key,
            "description": "From Clerk",
            "type": "multi_line_text",
            "context": context,
            "is_private": True,
            "category_id": category.json()["category"]["id"],
        },
    )
    assert response.status_code == 201, response.text
    return response.json()["property"]["id"]


async def test_property_categories(kinde: Kinde, kinde_spec: Contract) -> None:
    created = await kinde.client.post("/api/v1/property_categories", json={"name": "Clerk", "context": "usr"})
    kinde_spec.check(created)
    assert created.status_code == 201
    await kinde.client.post("/api/v1/property_categories", json={"name": "Org stuff", "context": "org"})
    listing = await kinde.client.get("/api/v1/property_categories", params={"context": "usr"})
    kinde_spec.check(listing)
    assert listing.json()["categories"] == [{"id": created.json()["category"]["id"], "name": "Clerk"}]
    bad = await kinde.client.post("/api/v1/property_categories", json={"name": "X", "context": "galaxy"})
    kinde_spec.check(bad, request=False)
    assert_envelope(bad, 400, "INVALID_REQUEST")


async def test_properties_define_list_and_page(kinde: Kinde, kinde_spec: Contract) -> None:
    first = await define_property(kinde, "clerk_public_metadata")
    second = await define_property(kinde, "clerk_id")
    await define_property(kinde, "org_only", context="org")
    page = await kinde.client.get("/api/v1/properties", params={"context": "usr", "page_size": "1"})
    kinde_spec.check(page)
    assert [p["id"] for p in page.json()["properties"]] == [first]
    assert page.json()["has_more"] is True
    rest = await kinde.client.get(
        "/api/v1/properties", params={"context": "usr", "page_size": "1", "starting_after": first}
    )
    kinde_spec.check(rest)
    assert [p["key"] for p in rest.json()["properties"]] == ["clerk_id"]
    assert rest.json()["has_more"] is False
    assert rest.json()["properties"][0] == {
        "id": second,
        "key": "clerk_id",
        "name": "clerk_id",
        "is_private": True,
        "description": "From Clerk",
        "is_kinde_property": False,
    }


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"key": "clerk_id"}, "PROPERTY_ALREADY_EXISTS"),
        ({"category_id": "cat_unknown"}, "CATEGORY_NOT_FOUND"),
        ({"type": "boolean"}, "INVALID_REQUEST"),
        ({"is_private": None}, "INVALID_REQUEST"),
    ],
)
async def test_create_property_rejections(
    kinde: Kinde, kinde_spec: Contract, change: dict[str, Any], code: str
) -> None:
    await define_property(kinde, "clerk_id")
    category = (await kinde.state())["property_categories"][0]["id"]
    body = {
        "name": "N",
        "key": "new_key",
        "type": "single_line_text",
        "context": "usr",
        "is_private": False,
        "category_id": category,
    } | change
    response = await kinde.client.post("/api/v1/properties", json={k: v for k, v in body.items() if v is not None})
    kinde_spec.check(response, request=False)
    assert_envelope(response, 400, code)


async def test_set_user_properties(kinde: Kinde, kinde_spec: Contract) -> None:
    await define_property(kinde, "clerk_public_metadata")
    await define_property(kinde, "clerk_id")
    await define_property(kinde, "org_tier", context="org")
    user_id = await kinde.create_user("lee@example.com")
    response = await kinde.client.patch(
        f"/api/v1/users/{user_id}/properties",
        json={"properties": {"clerk_public_metadata": '{"plan":"pro"}', "clerk_id": "user_2abc"}},
    )
    kinde_spec.check(response)
    assert response.json() == {"message": "Success", "code": "OK"}
    assert (await kinde.state())["users"][0]["properties"] == {
        "clerk_public_metadata": '{"plan":"pro"}',
        "clerk_id": "user_2abc",
    }

    for properties, code in (
        ({"nope": "x", "clerk_id": "changed"}, "PROPERTY_NOT_FOUND"),
        ({"org_tier": "gold"}, "PROPERTY_NOT_FOUND"),
        ({"clerk_id": {"nested": True}}, "INVALID_REQUEST"),
    ):
        rejected = await kinde.client.patch(f"/api/v1/users/{user_id}/properties", json={"properties": properties})
        kinde_spec.check(rejected)
        assert_envelope(rejected, 400, code)
    assert (await kinde.state())["users"][0]["properties"]["clerk_id"] == "user_2abc"  # all-or-nothing

    missing = await kinde.client.patch(f"/api/v1/users/{user_id}/properties", json={})
    kinde_spec.check(missing, request=False)
    assert_envelope(missing, 400, "INVALID_REQUEST")


# ---------------------------------------------------------------------------------------------
# Rate limiting
# ---------------------------------------------------------------------------------------------


async def test_rate_limit_bucket(make_kinde: MakeKinde, kinde_spec: Contract) -> None:
    clock = FakeClock()
    kinde = await make_kinde(clock=clock, rate_limit_rps=3)  # the token request took 1 of 3
    assert [(await kinde.client.get("/api/v1/users")).status_code for _ in range(2)] == [200, 200]
    throttled = await kinde.client.get("/api/v1/users")
    kinde_spec.check(throttled)
    assert_envelope(throttled, 429, "TOO_MANY_REQUESTS")
    assert throttled.headers["RateLimit-Reset"] == "1"
    assert "Retry-After" not in throttled.headers

    for _ in range(5):  # refused requests consume nothing...
        assert (await kinde.client.get("/api/v1/users")).status_code == 429
    clock.advance(1 / 3)  # ...so one third of a second frees exactly one token
    assert (await kinde.client.get("/api/v1/users")).status_code == 200
    assert (await kinde.client.get("/api/v1/users")).status_code == 429

    clock.advance(60)  # refills to the one-second burst, no more
    statuses = [(await kinde.client.get("/api/v1/users")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


async def test_rate_limit_reset_rounds_up(make_kinde: MakeKinde) -> None:
    clock = FakeClock()
    kinde = await make_kinde(clock=clock, rate_limit_rps=0.25)  # one token every 4 s; the token took it
    assert (await kinde.client.get("/api/v1/users")).headers["RateLimit-Reset"] == "4"
    clock.advance(1.5)
    assert (await kinde.client.get("/api/v1/users")).headers["RateLimit-Reset"] == "3"
    clock.advance(2.4)
    assert (await kinde.client.get("/api/v1/users")).headers["RateLimit-Reset"] == "1"
    clock.advance(0.1)
    assert (await kinde.client.get("/api/v1/users")).status_code == 200


@pytest.mark.parametrize(
    "headers", [("Retry-After",), ("RateLimit-Reset", "Retry-After"), ()], ids=["retry-after", "both", "none"]
)
async def test_rate_limit_headers_are_configurable(make_kinde: MakeKinde, headers: tuple[str, ...]) -> None:
    kinde = await make_kinde(clock=FakeClock(), rate_limit_rps=1, rate_limit_headers=headers)
    response = await kinde.client.get("/api/v1/users")
    assert response.status_code == 429
    for name in ("RateLimit-Reset", "Retry-After"):
        assert (response.headers.get(name) == "1") is (name in headers)


async def test_rate_limit_covers_the_token_endpoint_not_the_sandbox(make_kinde: MakeKinde) -> None:
    kinde = await make_kinde(clock=FakeClock(), rate_limit_rps=1)
    assert_envelope(await kinde.token(), 429, "TOO_MANY_REQUESTS")
    assert (await kinde.client.get("/_sandbox/state")).status_code == 200
    assert (await kinde.client.post("/_sandbox/sign-in", json={"email": "a@b.co", "password": "x"})).status_code == 404


@pytest.mark.parametrize("rps", [0, -1.0])
def test_rate_limit_must_be_positive(rps: float) -> None:
    with pytest.raises(ValueError, match="rate_limit_rps"):
        build_kinde_app(KindeSandboxConfig(rate_limit_rps=rps))


async def test_no_rate_limit_by_default(kinde: Kinde) -> None:
    for _ in range(50):
        assert (await kinde.client.get("/api/v1/roles")).status_code == 200


# ---------------------------------------------------------------------------------------------
# Bad requests never leak a traceback
# ---------------------------------------------------------------------------------------------


async def test_unknown_route_is_the_specs_not_found(kinde: Kinde) -> None:
    for path in ("/api/v1/nothing", "/api/v2/users", "/favicon.ico"):
        assert_envelope(await kinde.client.get(path), 404, "ROUTE_NOT_FOUND", shape="object")


async def test_wrong_method_is_405(kinde: Kinde) -> None:
    response = await kinde.client.delete("/api/v1/users")
    assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["allow"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/user"),
        ("PATCH", "/api/v1/user?id=kp_x"),
        ("POST", "/api/v1/organization"),
        ("POST", "/api/v1/roles"),
        ("POST", "/_sandbox/sign-in"),
    ],
)
async def test_bad_json_is_400(kinde: Kinde, kinde_spec: Contract, method: str, path: str) -> None:
    for content in (b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"'):
        response = await kinde.client.request(
            method, path, content=content, headers={"content-type": "application/json"}
        )
        assert_envelope(response, 400)
        if path.startswith("/api/") and "kp_x" not in path:
            kinde_spec.check(response, request=False)


async def test_required_body_missing_is_400(kinde: Kinde) -> None:
    assert_envelope(await kinde.client.post("/api/v1/organization"), 400, "INVALID_REQUEST")


async def test_a_crash_is_a_500_envelope_without_details(
    kinde: Kinde, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(record: Any, plaintext: str) -> bool:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(kinde_app, "verify_kinde_password", explode)
    user_id = await kinde.create_user("lee@example.com")
    digest = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    await kinde.client.put(f"/api/v1/users/{user_id}/password", json={"hashed_password": digest})
    response = await sign_in(kinde, "lee@example.com", "pw")
    assert_envelope(response, 500, "INTERNAL_SERVER_ERROR")
    assert "secret internals" not in response.text
    assert any("secret internals" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    assert (await kinde.client.get("/api/v1/users")).status_code == 200  # still serving


async def test_error_shape_object(make_kinde: MakeKinde) -> None:
    kinde = await make_kinde(error_shape="object")
    await kinde.create_user("lee@example.com")
    duplicate = await kinde.client.post("/api/v1/user", json=user_body("lee@example.com"))
    assert_envelope(duplicate, 400, "USER_ALREADY_EXISTS", shape="object")
    assert_envelope(await kinde.client.get("/api/v1/users", params={"page_size": "0"}), 400, shape="object")


def test_error_body_for_the_fault_injector_follows_the_shape() -> None:
    as_list = json.loads(kinde_app.make_error_body(KindeSandboxConfig())(503))
    as_object = json.loads(kinde_app.make_error_body(KindeSandboxConfig(error_shape="object"))(429))
    assert as_list == {"errors": [{"code": "INTERNAL_SERVER_ERROR", "message": "Something went wrong."}]}
    assert as_object == {"errors": {"code": "TOO_MANY_REQUESTS", "message": "Request was throttled."}}


# ---------------------------------------------------------------------------------------------
# /_sandbox/state: request counts and everything stored
# ---------------------------------------------------------------------------------------------


async def test_requests_are_counted_per_route_template_and_status(kinde: Kinde) -> None:
    user_id = await kinde.create_user("lee@example.com")
    await kinde.client.post("/api/v1/user", json=user_body("lee@example.com"))
    await kinde.client.put(f"/api/v1/users/{user_id}/password", json={"hashed_password": "bad"})
    await kinde.client.get("/api/v1/nowhere")
    requests = (await kinde.state())["requests"]
    by_route = requests["by_route"]
    assert by_route["POST /oauth2/token"] == {"total": 1, "by_status": {"200": 1}}
    assert by_route["POST /api/v1/user"] == {"total": 2, "by_status": {"200": 1, "400": 1}}
    assert by_route["PUT /api/v1/users/{user_id}/password"] == {"total": 1, "by_status": {"400": 1}}
    assert by_route["GET <unmatched>"] == {"total": 1, "by_status": {"404": 1}}
    assert requests["total"] == 5
    assert requests["by_status"] == {"200": 2, "400": 2, "404": 1}
    assert 1e9 < requests["first_request_at"] <= requests["last_request_at"]
    assert requests["max_in_flight"] >= 1


async def test_state_shows_everything(kinde: Kinde) -> None:
    org = await create_org(kinde, "Acme", "org_2Clerk")
    await kinde.client.post("/api/v1/roles", json={"key": "admin", "name": "Admin"})
    user_id = await kinde.create_user("lee@example.com", provided_id="user_1")
    await kinde.client.post(f"/api/v1/organizations/{org}/users", json={"users": [{"id": user_id, "roles": ["admin"]}]})
    await kinde.client.patch("/api/v1/user", params={"id": user_id}, json={"is_password_reset_requested": True})
    state = await kinde.state()
    assert set(state) >= {"users", "organizations", "roles", "requests", "creations_by_provided_id"}
    (user,) = state["users"]
    assert user["organizations"] == [{"code": org, "roles": ["admin"], "permissions": []}]
    assert user["is_password_reset_requested"] is True
    assert {o["external_id"] for o in state["organizations"]} == {None, "org_2Clerk"}
    assert next(o for o in state["organizations"] if o["code"] == org)["members"] == [user_id]
    assert [r["key"] for r in state["roles"]] == ["admin"]
    assert state["creations_by_provided_id"] == {"user_1": 1}
    assert state["duplicate_creations"] == []
    assert state["tokens_issued"] == 1
    assert kinde.store.snapshot()["users"] == state["users"]
