"""The sandbox's dashboard import: each reading of what Kinde's import docs leave open (a first sign-in
that costs a one-time code, the NDJSON's verified flags, the removed top-level email, social identities),
and the migrator's own file rows signing in under the strict readings."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import bcrypt
import httpx
import pytest

from migrator import passwords
from migrator.demo import parse_kinde_reading
from migrator.kinde.import_files import CSV_COLUMNS, csv_rows, ndjson_record
from migrator.models import Identity, PasswordImport, SocialIdentity, UserPlan
from migrator.sandbox.kinde_app import KindeSandboxConfig, build_kinde_app

PLAINTEXT = "correct horse battery staple"
DIGEST = bcrypt.hashpw(PLAINTEXT.encode(), bcrypt.gensalt(4)).decode()
ONE_TIME_CODE = "ONE_TIME_CODE_REQUIRED"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sandbox() -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    async def make(**config: Any) -> httpx.AsyncClient:
        app = build_kinde_app(KindeSandboxConfig(**config))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def upload(client: httpx.AsyncClient, fmt: str, body: str) -> dict[str, Any]:
    response = await client.post("/_sandbox/import", params={"format": fmt}, content=body.encode())
    assert response.status_code == 200, response.text
    return response.json()


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PLAINTEXT) -> tuple[int, str | None]:
    response = await client.post("/_sandbox/sign-in", json={"email": email, "password": password})
    body = response.json()
    errors = body.get("errors") if isinstance(body, dict) else None
    code = errors[0]["code"] if isinstance(errors, list) else (body.get("code") if isinstance(body, dict) else None)
    return response.status_code, code if response.status_code != 200 else None


def csv_text(rows: list[Mapping[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def row(email: str, *, email_verified: str = "TRUE", password_verified: str = "") -> dict[str, str]:
    return {
        "id": f"user_{email.split('@')[0]}", "email": email, "email_verified": email_verified,
        "hashed_password": DIGEST, "hashing_method": "bcrypt", "password_verified": password_verified,
    }  # fmt: skip


def ndjson_line(email: str, **identity: Any) -> str:
    password = {"hashed_password": DIGEST, "hashing_algorithm": "bcrypt"}
    record = {"id": f"user_{email.split('@')[0]}", "identities": [{"type": "email", "identity": email, **identity}]}
    return json.dumps(record | {"password": password}) + "\n"


# -- the CSV's first sign-in ------------------------------------------------------------------------


async def test_strict_reading_a_csv_password_without_password_verified_costs_a_one_time_code(sandbox: Any) -> None:
    client = await sandbox()  # import_password_verified="column", the default
    rows = [
        row("marked@x.co", password_verified="TRUE"),
        row("unmarked@x.co"),
        row("lower@x.co", password_verified="true"),
    ]
    assert (await upload(client, "kinde-csv", csv_text(rows)))["imported"] == 3
    assert await sign_in(client, "marked@x.co") == (200, None)
    assert await sign_in(client, "lower@x.co") == (200, None)
    assert await sign_in(client, "unmarked@x.co") == (403, ONE_TIME_CODE)
    assert (await sign_in(client, "unmarked@x.co", "wrong"))[0] == 401  # a wrong password is still just wrong
    state = (await client.get("/_sandbox/state")).json()
    assert {u["identities"][0]["value"]: u["one_time_code"] for u in state["users"]} == {
        "marked@x.co": False, "unmarked@x.co": True, "lower@x.co": False,
    }  # fmt: skip


async def test_email_verified_reading_lets_that_flag_decide(sandbox: Any) -> None:
    client = await sandbox(import_password_verified="email-verified")
    rows = [row("verified@x.co"), row("unverified@x.co", email_verified="FALSE", password_verified="TRUE")]
    await upload(client, "kinde-csv", csv_text(rows))
    assert await sign_in(client, "verified@x.co") == (200, None)
    assert await sign_in(client, "unverified@x.co") == (403, ONE_TIME_CODE)


# -- the NDJSON's verified flags and schema -------------------------------------------------------------


async def test_identity_reading_an_ndjson_password_needs_a_verified_email_identity(sandbox: Any) -> None:
    client = await sandbox()  # import_ndjson_verified="identity", the default
    body = (
        ndjson_line("flagged@x.co", is_verified=True)
        + ndjson_line("unflagged@x.co")
        + ndjson_line("unverified@x.co", is_verified=False)
    )
    assert (await upload(client, "kinde-ndjson", body))["imported"] == 3
    assert await sign_in(client, "flagged@x.co") == (200, None)
    assert await sign_in(client, "unflagged@x.co") == (403, ONE_TIME_CODE)
    assert await sign_in(client, "unverified@x.co") == (403, ONE_TIME_CODE)


async def test_always_reading_an_ndjson_password_signs_in_whatever_the_flags(sandbox: Any) -> None:
    client = await sandbox(import_ndjson_verified="always")
    await upload(
        client, "kinde-ndjson", ndjson_line("unflagged@x.co") + ndjson_line("unverified@x.co", is_verified=False)
    )
    assert await sign_in(client, "unflagged@x.co") == (200, None)
    assert await sign_in(client, "unverified@x.co") == (200, None)


def legacy_line() -> str:
    """A record of the removed schema: the email only at the top level."""
    record = {"id": "user_old", "email": "old@x.co", "email_verified": True, "identities": []}
    return json.dumps(record | {"password": {"hashed_password": DIGEST, "hashing_algorithm": "bcrypt"}}) + "\n"


async def test_current_schema_ignores_the_removed_top_level_email(sandbox: Any) -> None:
    report = await upload(await sandbox(), "kinde-ndjson", legacy_line())
    assert report["imported"] == 0 and report["errors"][0]["reason"] == "no email, phone or username"


async def test_legacy_reading_still_reads_the_top_level_email(sandbox: Any) -> None:
    client = await sandbox(import_ndjson_schema="legacy")
    assert (await upload(client, "kinde-ndjson", legacy_line()))["imported"] == 1
    assert await sign_in(client, "old@x.co") == (200, None)


# -- social identities ---------------------------------------------------------------------------


async def test_oauth2_identities_land_on_the_providers_connection_or_are_listed(sandbox: Any) -> None:
    client = await sandbox(import_connections=(("google", "conn_google"),))
    identities = [
        {"type": "email", "identity": "ann@x.co", "is_verified": True},
        {"type": "oauth2:google", "identity": "ann@gmail.com", "provider": "google", "is_verified": True},
        {"type": "oauth2:github", "identity": "4567", "provider": "github", "is_verified": True},
    ]
    report = await upload(client, "kinde-ndjson", json.dumps({"id": "user_ann", "identities": identities}) + "\n")
    assert report["imported"] == 1
    assert report["unassigned"] == [{"id": "user_ann", "what": "connection", "key": "oauth2:github"}]
    (user,) = (await client.get("/_sandbox/state")).json()["users"]
    social = [i for i in user["identities"] if i["type"] == "social"]
    assert social == [{"type": "social", "value": "ann@gmail.com", "is_verified": True, "connection_id": "conn_google"}]


# -- the migrator's own rows, strict readings -------------------------------------------------------------


def bcrypt_password() -> PasswordImport:
    translated = passwords.translate("bcrypt", DIGEST)
    assert isinstance(translated, PasswordImport)
    return translated


@pytest.mark.parametrize("verified", [True, False])
async def test_the_migrators_csv_rows_sign_in_without_a_one_time_code(sandbox: Any, verified: bool) -> None:
    client = await sandbox()  # the strict readings: password_verified column, verified identity
    plan = UserPlan("user_1", (Identity("email", "ann@x.co", verified),))
    await upload(client, "kinde-csv", csv_text(csv_rows(plan, bcrypt_password(), [])))
    assert await sign_in(client, "ann@x.co") == (200, None)


async def test_the_migrators_ndjson_records_sign_in_and_link_their_social_identities(sandbox: Any) -> None:
    client = await sandbox(import_connections=(("google", "conn_google"),))
    social = (SocialIdentity("oauth_google", "conn_google", "ann@gmail.com"),)
    plan = UserPlan("user_1", (Identity("email", "ann@x.co", True),), social=social)
    report = await upload(client, "kinde-ndjson", json.dumps(ndjson_record(plan, bcrypt_password(), [])) + "\n")
    assert report["unassigned"] == [] and report["errors"] == []
    assert await sign_in(client, "ann@x.co") == (200, None)
    (user,) = (await client.get("/_sandbox/state")).json()["users"]
    assert {(i["type"], i["value"], i.get("connection_id")) for i in user["identities"]} == {
        ("email", "ann@x.co", None), ("social", "ann@gmail.com", "conn_google"),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("import_password_verified=email-verified", ("import_password_verified", "email-verified")),
        ("import_ndjson_verified=always", ("import_ndjson_verified", "always")),
        ("import_ndjson_schema=legacy", ("import_ndjson_schema", "legacy")),
    ],
)
async def test_each_reading_is_a_sandbox_serve_switch(text: str, expected: tuple[str, str]) -> None:
    assert parse_kinde_reading(text) == expected
