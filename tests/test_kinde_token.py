"""Kinde's M2M token: scopes read from its claims, the preflight's scope check, and the bearer auth
flow (renew once on 401/403, one refresh for many concurrent requests, the token request paced and
retried like any call). Servers are played by ``httpx.MockTransport``; the limiter runs on a virtual clock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from pydantic import SecretStr

from migrator.errors import AuthError, ProtocolError, ScopeError, TransientError
from migrator.kinde.client import KindeClient, M2MCredentials
from migrator.kinde.scopes import (
    ROLE_PERMISSIONS,
    WHERE_TO_GRANT,
    Work,
    check_needs,
    check_scopes,
    needs,
)
from migrator.kinde.token import DEFAULT_LIFETIME, read_grant
from migrator.limiter import AdaptiveLimiter

BASE = "https://tenant.kinde.test"
SECRET = "m2m-client-secret-Xk29fQ"
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def jwt_token(**claims: object) -> str:
    return jwt.encode({"aud": [f"{BASE}/api"], "azp": "id", "gty": ["client_credentials"], **claims}, "k" * 32)


@pytest.fixture(autouse=True)
def instant_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tenacity's waits between retries return at once: these tests check what is retried."""

    async def no_sleep(_: float) -> None:
        return None

    monkeypatch.setattr("tenacity.asyncio._portable_async_sleep", no_sleep, raising=False)


def virtual_limiter(rate: float = 1000.0) -> AdaptiveLimiter:
    """A limiter whose waits advance a virtual clock instead of sleeping."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    return AdaptiveLimiter(initial_rate=rate, max_rate=rate, clock=lambda: now[0], sleep=sleep)


def kinde(handler: Handler, *, limiter: AdaptiveLimiter | None = None) -> KindeClient:
    http = httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(handler))
    credentials = M2MCredentials(client_id="id", client_secret=SecretStr(SECRET), audience=f"{BASE}/api")
    return KindeClient(http, limiter or virtual_limiter(), credentials, max_attempts=4, backoff_cap=0.001)


def token_answer(access_token: str, **extra: object) -> httpx.Response:
    return httpx.Response(200, json={"access_token": access_token, "token_type": "Bearer", **extra})


def bearer(request: httpx.Request) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ")


# -- scopes from the token ------------------------------------------------------------------------


def granted_scopes(access_token: str, answer_scope: str | None = None) -> frozenset[str] | None:
    """The scopes of a token answer carrying ``access_token`` (and ``answer_scope`` as its ``scope`` field)."""
    grant = read_grant({"access_token": access_token, "scope": answer_scope})
    assert grant is not None
    return grant.scopes


@pytest.mark.parametrize(
    ("claims", "answer_scope", "expected"),
    [
        ({"scope": "read:users create:users"}, None, {"read:users", "create:users"}),
        ({"scp": ["read:users", "create:users"]}, None, {"read:users", "create:users"}),
        ({"scope": "read:users", "scp": ["create:users"]}, "", {"read:users", "create:users"}),
        ({"scp": "read:users update:users"}, None, {"read:users", "update:users"}),  # scp written as a string
        ({"scope": "read:users"}, "read:users create:users delete:users", {"read:users"}),  # the token wins
        ({}, "read:users create:users", {"read:users", "create:users"}),
        ({}, "", None),
        ({}, None, None),
        ({"scope": "", "scp": []}, "", None),
    ],
)
def test_granted_scopes_come_from_the_claims_else_the_answer(
    claims: dict[str, object], answer_scope: str | None, expected: set[str] | None
) -> None:
    granted = granted_scopes(jwt_token(**claims), answer_scope)
    assert granted == (frozenset(expected) if expected is not None else None)


def test_an_opaque_token_has_unknown_scopes_unless_the_answer_lists_them() -> None:
    assert granted_scopes("2YotnFZFEjr1zCsicMWpAA") is None
    assert granted_scopes("2YotnFZFEjr1zCsicMWpAA", " ") is None
    assert granted_scopes("2YotnFZFEjr1zCsicMWpAA", "read:users") == {"read:users"}


def test_lifetime_is_expires_in_else_the_tokens_exp_minus_iat_else_the_default() -> None:
    token = jwt_token(iat=1_000, exp=1_000 + 86_400)
    assert read_grant({"access_token": token, "expires_in": 600}).lifetime == 600  # type: ignore[union-attr]
    assert read_grant({"access_token": token}).lifetime == 86_400  # type: ignore[union-attr]
    assert read_grant({"access_token": "opaque"}).lifetime == DEFAULT_LIFETIME  # type: ignore[union-attr]
    assert read_grant({"access_token": ""}) is None
    assert read_grant({"token": "x"}) is None


# -- the preflight check --------------------------------------------------------------------------


def needed_scopes(work: Work) -> set[str]:
    return {scope for need in needs(work) for scope in need.scopes}


def test_needs_follow_the_work_not_the_features() -> None:
    dry = needed_scopes(Work(writes_users=False, organizations=5, roles=5, permissions=9))
    assert dry == {"read:users"}
    users_only = needed_scopes(Work())
    assert users_only == {"read:users", "create:users", "update:users", "update:user_passwords"}
    with_orgs = needed_scopes(Work(organizations=3, roles=5))
    assert with_orgs - users_only == {
        "read:roles",
        "create:roles",
        "read:organizations",
        "create:organizations",
        "create:organization_users",
    }
    assert needed_scopes(Work(organizations=3, roles=5, permissions=31)) - with_orgs == set(ROLE_PERMISSIONS)
    assert needed_scopes(Work(organizations=0, roles=5, permissions=31)) == users_only  # no organization: no role
    assert needed_scopes(Work(verify=True)) - users_only == {"read:user_identities"}


def test_a_refusal_names_each_missing_scope_with_the_data_that_needs_it() -> None:
    work = Work(organizations=12, roles=12, permissions=31, social=("oauth_google",))
    granted = needed_scopes(Work(organizations=12, roles=12))
    with pytest.raises(ScopeError) as caught:
        check_needs(granted, needs(work))
    message = str(caught.value)
    assert "12 roles carry 31 permissions: grant create:permissions, read:permissions" in message
    assert "skip it: migrate_organizations = false" in message
    assert "social sign-in is mapped for oauth_google: grant create:user_identities, read:user_identities" in message
    assert caught.value.scope.split() == sorted(
        set(ROLE_PERMISSIONS) | {"read:user_identities", "create:user_identities"}
    )


def test_unknown_scopes_pass_and_known_missing_ones_are_all_named() -> None:
    needed = needed_scopes(Work())
    check_scopes(None, needed)  # unknown: the calls themselves will tell
    check_scopes(needed | {"read:roles"}, needed)
    with pytest.raises(ScopeError) as caught:
        check_scopes({"read:users", "update:users"}, needed)
    message = str(caught.value)
    assert "create:users, update:user_passwords" in message and WHERE_TO_GRANT in message
    assert "read:users" not in message and "update:users," not in message
    assert caught.value.scope == "create:users update:user_passwords"
    assert caught.value.exit_code == 3


# -- the bearer auth flow -------------------------------------------------------------------------


def test_concurrent_requests_refused_with_one_stale_token_share_a_single_refresh() -> None:
    """Twenty requests share token t1, which the server refuses (expired early, as far as the client
    knows). The renewal is held back until every one of them has been refused, so all twenty wait
    on the same refresh: exactly one new token is requested, and each request is repeated once."""
    workers = 20
    refused: list[str] = []
    all_refused = asyncio.Event()
    issued: list[str] = []
    accepted: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            issued.append(f"t{len(issued) + 1}")
            if len(issued) > 1:
                await all_refused.wait()
            return token_answer(issued[-1], expires_in=3600)
        if bearer(request) == "t1":
            refused.append(bearer(request))
            if len(refused) == workers:
                all_refused.set()
            return httpx.Response(401, json={"errors": [{"code": "TOKEN_EXPIRED"}]})
        accepted.append(bearer(request))
        return httpx.Response(200, json={"users": [{"id": "kp_1"}]})

    async def scenario() -> list[list[str]]:
        api = kinde(handler)
        found = await asyncio.gather(*(api.find_users("email", ["a@x.io"]) for _ in range(workers)))
        return [[user.id for user in users] for users in found]

    assert asyncio.run(scenario()) == [["kp_1"]] * workers
    assert issued == ["t1", "t2"]  # one token at the start, one refresh for all twenty
    assert refused == ["t1"] * workers and accepted == ["t2"] * workers


def test_a_request_refused_with_an_already_replaced_token_reuses_the_new_one() -> None:
    tokens_issued = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal tokens_issued
        if request.url.path == "/oauth2/token":
            tokens_issued += 1
            return token_answer(f"t{tokens_issued}", expires_in=3600)
        return httpx.Response(200, json={"users": []})

    async def scenario() -> tuple[str, str]:
        api = kinde(handler)
        first = await api.tokens.token()
        second = await api.tokens.renew(first)
        return second, await api.tokens.renew(first)  # a latecomer refused with t1

    assert asyncio.run(scenario()) == (("t2", True), ("t2", False))
    assert tokens_issued == 2


def test_a_latecomer_whose_borrowed_replacement_is_refused_too_renews_it_itself() -> None:
    """A request sent with t1 is answered late, after another request replaced t1 by t2 and the
    server has stopped accepting t2 as well: the latecomer first reuses t2 (no second renewal of
    t1), and when t2 is refused, renews it (t3) and succeeds."""
    sent: list[str] = []
    issued: list[str] = []
    t2_issued = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            issued.append(f"t{len(issued) + 1}")
            return token_answer(issued[-1], expires_in=3600)
        sent.append(bearer(request))
        if bearer(request) == "t1":
            await t2_issued.wait()  # the answer to t1 arrives after t2 was issued
        if bearer(request) in ("t1", "t2"):
            return httpx.Response(401, json={"errors": [{"code": "TOKEN_EXPIRED"}]})
        return httpx.Response(200, json={"roles": [{"key": "admin"}]})

    async def scenario() -> list[dict]:
        api = kinde(handler)
        first = await api.tokens.token()
        latecomer = asyncio.ensure_future(api.list_roles())
        while not sent:
            await asyncio.sleep(0)
        assert await api.tokens.renew(first) == ("t2", True)  # another request renewed t1
        t2_issued.set()
        return await latecomer

    assert asyncio.run(scenario()) == [{"key": "admin"}]
    assert sent == ["t1", "t2", "t3"] and issued == ["t1", "t2", "t3"]


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_renewed_once_and_the_request_repeated(status: int) -> None:
    seen: list[str] = []
    issued = iter(["t1", "t2", "t3"])

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return token_answer(next(issued))
        seen.append(bearer(request))
        if bearer(request) == "t1":
            return httpx.Response(status, json={"errors": [{"code": "TOKEN_EXPIRED"}]})
        return httpx.Response(200, json={"users": [{"id": "kp_1"}]})

    api = kinde(handler)
    assert [u.id for u in asyncio.run(api.find_users("email", ["a@x.io"]))] == ["kp_1"]
    assert seen == ["t1", "t2"]


def test_a_403_that_persists_after_renewal_names_the_endpoints_scope() -> None:
    tokens: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            tokens.append(jwt_token(jti=str(len(tokens))))  # claims without scopes: unknown
            return token_answer(tokens[-1], scope="")
        return httpx.Response(403, json={"errors": [{"code": "FORBIDDEN", "message": "Forbidden"}]})

    api = kinde(handler)
    with pytest.raises(ScopeError) as caught:
        asyncio.run(api.set_password("kp_1", {"hashed_password": "x"}))
    assert caught.value.scope == "update:user_passwords"
    message = str(caught.value)
    assert "Kinde PUT /api/v1/users/kp_1/password" in message and "update:user_passwords" in message
    assert WHERE_TO_GRANT in message and "fresh token" in message
    assert len(tokens) == 2
    assert not any(token in message for token in tokens) and SECRET not in message


def test_a_401_that_persists_after_renewal_names_the_scope_too() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return token_answer("opaque-token-value-0123456789")
        return httpx.Response(401, json={"errors": [{"code": "TOKEN_INVALID"}]})

    with pytest.raises(AuthError, match=r"GET /api/v1/roles was refused \(401 TOKEN_INVALID\).*read:roles"):
        asyncio.run(kinde(handler).list_roles())


# -- the token request: the same limiter, retry policy and error mapping --------------------------


def test_the_token_request_is_paced_and_retried_like_any_call() -> None:
    token_calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal token_calls
        if request.url.path == "/oauth2/token":
            token_calls += 1
            form = parse_qs(request.content.decode())
            assert form["grant_type"] == ["client_credentials"] and form["audience"] == [f"{BASE}/api"]
            if token_calls == 1:
                return httpx.Response(503, json={"error": "temporarily_unavailable"})
            if token_calls == 2:
                return httpx.Response(429, headers={"Retry-After": "2"}, json={"error": "slow_down"})
            return token_answer("t1")
        return httpx.Response(200, json={"roles": []})

    limiter = virtual_limiter()
    api = kinde(handler, limiter=limiter)
    assert asyncio.run(api.list_roles()) == []
    assert token_calls == 3
    assert api.stats.retries == 2 and api.stats.throttled == 1
    assert api.stats.by_status == {503: 1, 429: 1, 200: 2}
    assert limiter.stats.requests == 4  # three token requests and the call: each waited for the limiter


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"error": "invalid_client", "error_description": "Client authentication failed."}),
        (400, {"error": "invalid_request", "error_description": "audience must be https://x/api"}),
        (403, {"error": "unauthorized_client"}),
    ],
)
def test_a_refused_token_request_names_the_settings_and_never_the_secret(status: int, body: dict) -> None:
    sent: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path}")
        return httpx.Response(status, json=body)

    with pytest.raises(AuthError) as caught:
        asyncio.run(kinde(handler).create_user({"provided_id": "user_1"}))
    message = str(caught.value)
    assert message.startswith(f"Kinde refused the token request ({status} {body['error']}")
    assert "KINDE_MANAGEMENT_CLIENT_ID" in message and "KINDE_MANAGEMENT_CLIENT_SECRET" in message
    assert f"{BASE}/api" in message and SECRET not in message
    assert sent == ["POST /oauth2/token"]  # not retried, and the create never went out
    assert not caught.value.ambiguous and not caught.value.retryable


def test_a_token_outage_during_a_write_is_neither_retried_twice_nor_taken_for_a_lost_write() -> None:
    sent: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(503, json={"error": "temporarily_unavailable"})

    with pytest.raises(TransientError) as caught:
        asyncio.run(kinde(handler).create_user({"provided_id": "user_1"}))
    assert sent == ["/oauth2/token"] * 4  # the token request's own attempts, not 4 x 4
    assert not caught.value.ambiguous  # the create was never sent: no reconciliation needed
    assert "Kinde POST /oauth2/token" in str(caught.value)


@pytest.mark.parametrize("answer", [{"token_type": "Bearer"}, {"access_token": 42}, {"access_token": ""}])
def test_a_token_answer_without_a_token_is_a_protocol_error(answer: dict) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps(answer).encode())

    with pytest.raises(ProtocolError, match=r"Kinde POST /oauth2/token answered without an access token"):
        asyncio.run(kinde(handler).tokens.token())


def test_the_bearer_token_is_cached_until_its_renewal_margin() -> None:
    now = [0.0]
    issued: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            issued.append(f"t{len(issued) + 1}")
            return token_answer(issued[-1], expires_in=600)
        return httpx.Response(200, json={"roles": []})

    http = httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(handler))
    credentials = M2MCredentials(client_id="id", client_secret=SecretStr(SECRET), audience=f"{BASE}/api")
    api = KindeClient(http, virtual_limiter(), credentials, clock=lambda: now[0])

    async def scenario() -> list[str]:
        tokens = [await api.tokens.token(), await api.tokens.token()]
        now[0] = 600 - 60 - 0.001
        tokens.append(await api.tokens.token())
        now[0] = 600 - 60  # a tenth of the lifetime (60 s) before expiry: renewed
        tokens.append(await api.tokens.token())
        return tokens

    assert asyncio.run(scenario()) == ["t1", "t1", "t1", "t2"]
