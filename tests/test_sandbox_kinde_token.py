"""The Kinde emulator's tokens: JWTs shaped as Kinde documents them, signed with the sandbox's own key,
and every switch for what real Kinde leaves open (which claims carry the scopes, the answer's
``scope`` field, 401 or 403 for a bad token, a token that expires mid-run)."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import jwt
import pytest

from migrator.sandbox.kinde_app import KindeSandboxConfig, build_kinde_app
from tests import test_sandbox_kinde as base
from tests.test_sandbox_kinde import AUDIENCE, BASE_URL, FakeClock, MakeKinde, assert_envelope

anyio_backend = base.anyio_backend  # the fixtures of the emulator's main tests
make_kinde = base.make_kinde

pytestmark = pytest.mark.anyio
SCOPES = frozenset({"read:users", "create:users"})


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.mark.parametrize(
    ("scope_claims", "expected"),
    [
        ("both", {"scope": "create:users read:users", "scp": ["create:users", "read:users"]}),
        ("scope", {"scope": "create:users read:users"}),
        ("scp", {"scp": ["create:users", "read:users"]}),
        ("none", {}),
    ],
)
async def test_tokens_are_jwts_with_kindes_claims(make_kinde: MakeKinde, scope_claims: str, expected: dict) -> None:
    kinde = await make_kinde(scopes=SCOPES, scope_claims=scope_claims, token_lifetime=600)
    claims = claims_of((await kinde.token()).json()["access_token"])
    assert set(claims) == {"aud", "azp", "exp", "gty", "iat", "iss", "jti"} | set(expected)
    assert {k: claims[k] for k in expected} == expected
    assert claims["aud"] == [AUDIENCE] and claims["iss"] == BASE_URL
    assert claims["azp"] == kinde.config.client_id and claims["gty"] == ["client_credentials"]
    assert claims["exp"] - claims["iat"] == 600


@pytest.mark.parametrize(
    ("answer_scope", "field"), [("absent", None), ("present", "create:users read:users"), ("empty", "")]
)
async def test_the_answers_scope_field_is_a_switch(make_kinde: MakeKinde, answer_scope: str, field: str | None) -> None:
    kinde = await make_kinde(scopes=SCOPES, answer_scope=answer_scope)
    body = (await kinde.token()).json()
    assert body.get("scope") == field and ("scope" in body) == (field is not None)


async def test_requested_scopes_narrow_the_claims(make_kinde: MakeKinde) -> None:
    kinde = await make_kinde(scopes=SCOPES)
    claims = claims_of((await kinde.token(scope="read:users")).json()["access_token"])
    assert claims["scope"] == "read:users" and claims["scp"] == ["read:users"]


async def test_a_token_signed_elsewhere_or_tampered_with_is_refused(make_kinde: MakeKinde) -> None:
    kinde = await make_kinde(scopes=SCOPES)
    good = kinde.client.headers["authorization"].removeprefix("Bearer ")
    assert (await kinde.client.get("/api/v1/users")).status_code == 200
    forged = jwt.encode(claims_of(good), "not-the-sandbox-key-0123456789abcdef", algorithm="HS256")
    header, _payload, signature = good.split(".")
    widened = {**claims_of(good), "scope": "delete:users"}
    tampered = ".".join(
        [header, base64.urlsafe_b64encode(json.dumps(widened).encode()).decode().rstrip("="), signature]
    )
    for token in (forged, tampered):
        # Even a token the store knew would be refused: the signature is checked, not only the record.
        kinde.store.tokens[token] = dataclasses.replace(kinde.store.tokens[good], signature_checked=False)
        response = await kinde.client.get("/api/v1/users", headers={"authorization": f"Bearer {token}"})
        assert_envelope(response, 401, "TOKEN_INVALID")


async def test_another_sandboxs_token_is_refused(make_kinde: MakeKinde) -> None:
    one, other = await make_kinde(), await make_kinde()
    response = await one.client.get("/api/v1/users", headers={"authorization": other.client.headers["authorization"]})
    assert_envelope(response, 401, "TOKEN_INVALID")


async def test_opaque_tokens_remain_available(make_kinde: MakeKinde) -> None:
    kinde = await make_kinde(token_format="opaque")
    token = (await kinde.token()).json()["access_token"]
    with pytest.raises(jwt.DecodeError):
        claims_of(token)
    assert (await kinde.client.get("/api/v1/users")).status_code == 200


@pytest.mark.parametrize(("bad_token_status", "missing_scope_status"), [(401, 403), (403, 403), (401, 401)])
async def test_refusal_statuses_are_switches(
    make_kinde: MakeKinde, bad_token_status: int, missing_scope_status: int
) -> None:
    clock = FakeClock()
    kinde = await make_kinde(
        clock=clock,
        token_lifetime=60,
        scopes=frozenset({"read:users"}),
        bad_token_status=bad_token_status,
        missing_scope_status=missing_scope_status,
    )
    assert "create:users" in assert_envelope(await kinde.client.post("/api/v1/user", json={}), missing_scope_status)
    clock.advance(60)
    assert_envelope(await kinde.client.get("/api/v1/users"), bad_token_status, "TOKEN_EXPIRED")
    no_token = await kinde.client.get("/api/v1/users", headers={"authorization": "Bearer"})
    assert_envelope(no_token, bad_token_status, "TOKEN_REQUIRED")


async def test_a_token_can_expire_after_a_number_of_calls(make_kinde: MakeKinde) -> None:
    kinde = await make_kinde(token_max_uses=3)
    for _ in range(2):  # the fixture's authorize() spent none: three calls pass
        assert (await kinde.client.get("/api/v1/users")).status_code == 200
    assert (await kinde.client.get("/api/v1/roles")).status_code == 200
    assert_envelope(await kinde.client.get("/api/v1/users"), 401, "TOKEN_EXPIRED")
    assert_envelope(await kinde.client.get("/api/v1/users"), 401, "TOKEN_EXPIRED")
    await kinde.authorize()
    assert (await kinde.client.get("/api/v1/users")).status_code == 200
    state = await kinde.state()
    assert state["tokens_issued"] == 2 and state["tokens_refused_as_expired"] == 1


def test_token_max_uses_must_be_positive() -> None:
    with pytest.raises(ValueError, match="token_max_uses"):
        build_kinde_app(KindeSandboxConfig(token_max_uses=0))
