"""Every request the migrator sends, and every answer it gets, against the vendors' OpenAPI specs.

The real ``Migration`` runs in-process over a few hundred users with organizations, its clients
talking to the sandbox apps through a transport that records each exchange. Each one is then
validated with ``clerk_spec`` / ``kinde_spec``. Kinde's token endpoint is not in its spec, so it is
checked against the OAuth2 client-credentials shape (RFC 6749 §4.4) instead. The set of operations
seen is asserted too, so the test fails if the migrator stops sending one.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from migrator.clerk import client as clerk_client
from migrator.config import Settings
from migrator.connect import connect
from migrator.journal import Journal
from migrator.reports import Summary
from migrator.runs.migration import Migration
from migrator.sandbox.clerk_app import build_clerk_app
from migrator.sandbox.generator import Dataset
from migrator.sandbox.hashing import CLERK_HASHERS
from migrator.sandbox.kinde_app import KindeSandboxConfig, build_kinde_app
from tests.contract import Contract
from tests.contract import operation as contract_operation

pytestmark = pytest.mark.contract

USERS = 250
PAGE_SIZE = 100  # smaller than Clerk's 500, so a few hundred users take several pages
CLERK_KEY = "sk_test_contract_key"
KINDE_SECRET = "contract-kinde-secret"
CLERK_OPERATIONS = {
    "GET /v1/users/count",
    "GET /v1/users",
    "GET /v1/organizations",
    "GET /v1/organization_memberships",
    "GET /v1/organization_roles",
}
KINDE_OPERATIONS = {
    "POST /oauth2/token",
    "GET /api/v1/users",
    "POST /api/v1/user",
    "PUT /api/v1/users/{user_id}/password",
    "PATCH /api/v1/user",
    "GET /api/v1/roles",
    "POST /api/v1/roles",
    "GET /api/v1/organizations",
    "POST /api/v1/organization",
    "POST /api/v1/organizations/{org_code}/users",
    # metadata as properties, social identities, role permissions
    "GET /api/v1/properties",
    "POST /api/v1/properties",
    "GET /api/v1/property_categories",
    "POST /api/v1/property_categories",
    "PATCH /api/v1/users/{user_id}/properties",
    "POST /api/v1/users/{user_id}/identities",
    "GET /api/v1/permissions",
    "POST /api/v1/permissions",
    "GET /api/v1/roles/{role_id}/permissions",
    "PATCH /api/v1/roles/{role_id}/permissions",
    "GET /api/v1/organizations/{org_code}/properties",
    "PATCH /api/v1/organizations/{org_code}/properties",
}
# Sent only when an earlier attempt may have written (resume): covered by ``resumed`` below.
KINDE_COMPARE_OPERATIONS = {"GET /api/v1/users/{user_id}/properties", "GET /api/v1/users/{user_id}/identities"}
TEMPLATES = (
    (re.compile(r"^/api/v1/users/[^/]+/password$"), "/api/v1/users/{user_id}/password"),
    (re.compile(r"^/api/v1/organizations/[^/]+/users$"), "/api/v1/organizations/{org_code}/users"),
    (re.compile(r"^/api/v1/users/[^/]+/properties$"), "/api/v1/users/{user_id}/properties"),
    (re.compile(r"^/api/v1/users/[^/]+/identities$"), "/api/v1/users/{user_id}/identities"),
    (re.compile(r"^/api/v1/roles/[^/]+/permissions$"), "/api/v1/roles/{role_id}/permissions"),
    (re.compile(r"^/api/v1/organizations/[^/]+/properties$"), "/api/v1/organizations/{org_code}/properties"),
)
PROPERTIES = {
    "public_metadata.plan": {"key": "plan"},
    "external_id": {"key": "app_user_id"},
    "private_metadata": {"key": "clerk_private", "type": "multi_line_text"},
}
ORGANIZATION_PROPERTIES = {"public_metadata.tier": {"key": "tier"}, "slug": {"key": "clerk_slug"}}
SOCIAL_CONNECTIONS = {"oauth_google": "conn_google0001", "oauth_github": "conn_github0001"}
# The Kinde hashing methods the translations in migrator.passwords produce.
HASHING_METHODS = {"bcrypt", "md5", "sha256", "pbkdf2", "wordpress", "firebase-scrypt"}


@dataclass
class Recording:
    """A run's summary and every exchange with each API, in order."""

    summary: Summary
    clerk: list[httpx.Response]
    kinde: list[httpx.Response]


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes each request on to ``inner`` and keeps every exchange, both bodies read."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[httpx.Response] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        await response.aclose()

        def copy() -> httpx.Response:
            return httpx.Response(response.status_code, headers=response.headers, content=content, request=request)

        self.exchanges.append(copy())
        return copy()

    async def aclose(self) -> None:
        await self.inner.aclose()


def operation(exchange: httpx.Response) -> str:
    return contract_operation(exchange, TEMPLATES)


def query(exchange: httpx.Response) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(str(exchange.request.url)).query))


def token_problems(exchange: httpx.Response) -> list[str]:
    """What breaks OAuth2's client-credentials grant (RFC 6749 §4.4, §5.1) in one token exchange."""
    request, problems = exchange.request, []
    if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
        problems.append("the request is not form-encoded")
    form = dict(parse_qsl(request.content.decode(), keep_blank_values=True))
    if form.get("grant_type") != "client_credentials":
        problems.append("grant_type is not client_credentials")
    if not form.get("client_id") or not form.get("client_secret"):
        problems.append("the client credentials are not in the body")
    if not set(form) <= {"grant_type", "client_id", "client_secret", "audience", "scope"}:
        problems.append(f"unexpected form fields {sorted(form)}")
    if exchange.status_code != 200 or not exchange.headers.get("content-type", "").startswith("application/json"):
        return [*problems, f"the answer is {exchange.status_code} {exchange.headers.get('content-type')}"]
    body = exchange.json()
    if not isinstance(body.get("access_token"), str) or not body["access_token"]:
        problems.append("no access_token")
    if str(body.get("token_type", "")).lower() != "bearer":
        problems.append("token_type is not Bearer")
    if "expires_in" in body and not (isinstance(body["expires_in"], int) and body["expires_in"] > 0):
        problems.append("expires_in is not a positive integer")
    if "no-store" not in exchange.headers.get("cache-control", ""):
        problems.append("the token answer may be cached (no Cache-Control: no-store)")
    return problems


def contract_problems(exchanges: list[httpx.Response], contract: Contract) -> list[str]:
    problems = []
    for exchange in exchanges:
        if operation(exchange) == "POST /oauth2/token":
            problems.extend(f"{operation(exchange)}: {p}" for p in token_problems(exchange))
            continue
        try:
            contract.check(exchange)
        except AssertionError as exc:
            problems.append(str(exc)[:600])
    return problems


def migrate(tmp_path: Path, runs: int = 1) -> Recording:
    """Real runs, in-process, over both sandbox apps; the last run's summary and exchanges."""
    dataset = Dataset(USERS, hasher_weights=dict.fromkeys(CLERK_HASHERS, 1.0))
    export = tmp_path / "clerk-export.csv"
    dataset.write_export_csv(export)
    config = KindeSandboxConfig(client_secret=KINDE_SECRET)
    clerk = RecordingTransport(httpx.ASGITransport(app=build_clerk_app(dataset, secret_key=CLERK_KEY)))
    kinde = RecordingTransport(httpx.ASGITransport(app=build_kinde_app(config)))
    settings = Settings(
        clerk_api_url="http://localhost/v1",
        clerk_secret_key=CLERK_KEY,
        clerk_export=export,
        clerk_max_rps=1000,
        kinde_domain="http://localhost",
        kinde_management_client_id=config.client_id,
        kinde_management_client_secret=KINDE_SECRET,
        kinde_max_rps=5000,
        kinde_initial_rps=1000,
        salted_hash_salt_position="prefix",
        state_dir=tmp_path / "state",
        properties=PROPERTIES,
        organization_properties=ORGANIZATION_PROPERTIES,
        social_connections=SOCIAL_CONNECTIONS,
    )
    journal = Journal(settings.state_dir)

    async def run() -> Summary:
        async with connect(settings, clerk_transport=clerk, kinde_transport=kinde) as (clerk_api, kinde_api):
            migration = Migration(settings, journal, clerk_api, kinde_api, lambda event: None)
            return await migration.start(dry_run=False, confirm=lambda plan: True)

    try:
        for _ in range(runs):
            clerk.exchanges.clear()
            kinde.exchanges.clear()
            summary = asyncio.run(run())
    finally:
        journal.close()
    return Recording(summary, clerk.exchanges, kinde.exchanges)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clerk_client, "PAGE_SIZE", PAGE_SIZE)
        return migrate(tmp_path_factory.mktemp("contract"))


@pytest.fixture(scope="module")
def rerun(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """A second run over the same Kinde: everything is found, compared, and nothing is written."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clerk_client, "PAGE_SIZE", PAGE_SIZE)
        return migrate(tmp_path_factory.mktemp("contract-rerun"), runs=2)


def test_a_rerun_compares_with_requests_the_spec_allows_and_writes_nothing(
    kinde_spec: Contract, rerun: Recording
) -> None:
    operations = {operation(e) for e in rerun.kinde}
    assert KINDE_COMPARE_OPERATIONS | {"GET /api/v1/roles/{role_id}/permissions"} <= operations
    assert {o for o in operations if not o.startswith("GET ")} == {"POST /oauth2/token"}
    assert rerun.summary.exit_code == 0
    assert contract_problems(rerun.kinde, kinde_spec) == []


def test_the_run_did_everything_it_should(recorded: Recording) -> None:
    summary = recorded.summary
    assert summary.exit_code == 0, summary.failures
    assert summary.created > USERS * 0.9
    assert set(summary.passwords_set) == HASHING_METHODS
    assert summary.password_resets > 0
    assert summary.memberships_added == summary.plan.memberships_pending > PAGE_SIZE


def test_every_clerk_exchange_matches_the_spec(clerk_spec: Contract, recorded: Recording) -> None:
    exchanges = recorded.clerk
    assert {operation(e) for e in exchanges} == CLERK_OPERATIONS
    assert contract_problems(exchanges, clerk_spec) == []


def test_every_kinde_exchange_matches_the_spec(kinde_spec: Contract, recorded: Recording) -> None:
    exchanges = recorded.kinde
    assert {operation(e) for e in exchanges} == KINDE_OPERATIONS
    assert contract_problems(exchanges, kinde_spec) == []


def test_every_kind_of_request_was_sent(recorded: Recording) -> None:
    """Variants the spec validates differently: cursors, offsets, lookup fields, body shapes."""
    clerk, kinde = recorded.clerk, recorded.kinde
    user_pages = [query(e) for e in clerk if operation(e) == "GET /v1/users"]
    assert any("starting_after" in q for q in user_pages)
    assert any("starting_after" not in q for q in user_pages)
    assert any(int(query(e).get("offset", 0)) > 0 for e in clerk if operation(e) == "GET /v1/organization_memberships")
    lookups = {field for e in kinde if operation(e) == "GET /api/v1/users" for field in query(e)} - {"page_size"}
    assert lookups == {"email", "username", "phone"}
    passwords = [json.loads(e.request.content) for e in kinde if operation(e) == "PUT /api/v1/users/{user_id}/password"]
    assert {body["hashing_method"] for body in passwords} == HASHING_METHODS
    assert any("salt_position" in body for body in passwords)
    updates = [json.loads(e.request.content) for e in kinde if operation(e) == "PATCH /api/v1/user"]
    assert {key for body in updates for key in body} == {"is_password_reset_requested", "is_suspended"}


def altered(exchange: httpx.Response, *, request_body: object = None, response_body: object = None) -> httpx.Response:
    """A copy of a recorded exchange with its request or response JSON replaced."""

    def headers(message: httpx.Request | httpx.Response) -> dict[str, str]:
        return {k: v for k, v in message.headers.items() if k.lower() != "content-length"}

    original = exchange.request
    content = json.dumps(request_body).encode() if request_body is not None else original.content
    request = httpx.Request(original.method, original.url, headers=headers(original), content=content)
    body = json.dumps(response_body).encode() if response_body is not None else exchange.content
    return httpx.Response(exchange.status_code, headers=headers(exchange), content=body, request=request)


def test_the_checks_refuse_what_breaks_the_contract(
    clerk_spec: Contract, kinde_spec: Contract, recorded: Recording
) -> None:
    """The control: the same exchanges, broken on purpose, do not pass."""
    clerk, kinde = recorded.clerk, recorded.kinde
    page = next(e for e in clerk if operation(e) == "GET /v1/users")
    users = json.loads(page.content)
    del users[0]["id"]
    assert len(contract_problems([altered(page, response_body=users)], clerk_spec)) == 1

    put = next(e for e in kinde if operation(e) == "PUT /api/v1/users/{user_id}/password")
    body = {**json.loads(put.request.content), "hashing_method": "argon2id"}
    assert len(contract_problems([altered(put, request_body=body)], kinde_spec)) == 1

    token = next(e for e in kinde if operation(e) == "POST /oauth2/token")
    form = {**dict(parse_qsl(token.request.content.decode())), "grant_type": "password"}
    request = httpx.Request("POST", token.request.url, data=form)
    answer = httpx.Response(200, headers={"cache-control": "no-store"}, json={"token": "x"}, request=request)
    assert token_problems(answer) == [
        "grant_type is not client_credentials",
        "no access_token",
        "token_type is not Bearer",
    ]
