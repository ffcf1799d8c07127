"""The Kinde client's one rule for "gone", against the sandbox's Kinde in process.

A DELETE Kinde confirms is ``True``; its not-found answer (400 or 404, both readings) is ``False``
(already gone); a read by id answers None only on that proof. A route Kinde refuses (404
``ROUTE_NOT_FOUND``) and a malformed-request 400 are protocol errors, never "gone".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from rich.console import Console

from migrator.errors import ProtocolError
from migrator.journal import RunMode
from migrator.kinde.client import KindeClient, M2MCredentials
from migrator.limiter import AdaptiveLimiter
from migrator.render import summary_table
from migrator.reports import Plan, Summary
from migrator.sandbox.kinde_app import KindeSandboxConfig, build_kinde_app

HOST = "http://127.0.0.1"  # ASGITransport never opens a socket
USER = {"profile": {"given_name": "Lee"}, "identities": [{"type": "email", "details": {"email": "lee@example.com"}}]}


def run(config: KindeSandboxConfig, scenario: Callable[[KindeClient], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        transport = httpx.ASGITransport(app=build_kinde_app(config))
        async with httpx.AsyncClient(transport=transport, base_url=HOST) as http:
            credentials = M2MCredentials(config.client_id, SecretStr(config.client_secret), f"{HOST}/api")
            limiter = AdaptiveLimiter(initial_rate=1000.0, max_rate=1000.0)
            return await scenario(KindeClient(http, limiter, credentials, max_attempts=2, backoff_cap=0.001))

    return asyncio.run(go())


@pytest.mark.parametrize("status", [400, 404])
def test_a_user_deleted_is_true_then_already_gone_and_absent(status: int) -> None:
    async def scenario(kinde: KindeClient) -> tuple[Any, ...]:
        user_id = (await kinde.create_user(USER)).id
        found = await kinde.get_user(user_id)
        return (
            found is not None,
            await kinde.delete_user(user_id),
            await kinde.delete_user(user_id),
            (
                await kinde.get_user(user_id),
                await kinde.user_profile(user_id),
            ),
        )

    assert run(KindeSandboxConfig(unknown_user_status=status), scenario) == (True, True, False, (None, None))


@pytest.mark.parametrize("status", [400, 404])
def test_an_organization_and_a_role_deleted_are_true_then_already_gone(status: int) -> None:
    async def scenario(kinde: KindeClient) -> tuple[Any, ...]:
        code = await kinde.create_organization({"name": "Acme", "external_id": "org_1"})
        await kinde.create_role({"name": "Admin", "key": "admin"})
        role_id = next(r["id"] for r in await kinde.list_roles() if r["key"] == "admin")
        return (
            await kinde.organization_user_ids(code),
            await kinde.delete_organization(code),
            await kinde.delete_organization(code),
            await kinde.organization_user_ids(code),
            await kinde.delete_role(role_id),
            await kinde.delete_role(role_id),
        )

    config = KindeSandboxConfig(unknown_organization_status=status, unknown_role_status=status)
    assert run(config, scenario) == ([], True, False, None, True, False)


@pytest.mark.parametrize("route", ["user", "organization", "role"])
def test_a_refused_route_is_a_protocol_error_never_gone(route: str) -> None:
    config = KindeSandboxConfig()

    async def scenario(kinde: KindeClient) -> None:
        user_id = (await kinde.create_user(USER)).id
        code = await kinde.create_organization({"name": "Acme", "external_id": "org_1"})
        await kinde.create_role({"name": "Admin", "key": "admin"})
        role_id = next(r["id"] for r in await kinde.list_roles() if r["key"] == "admin")
        config.refused_route = route  # type: ignore[assignment]
        attempts = {
            "user": [lambda: kinde.get_user(user_id), lambda: kinde.delete_user(user_id)],
            "organization": [lambda: kinde.delete_organization(code)],
            "role": [lambda: kinde.delete_role(role_id)],
        }[route]
        for attempt in attempts:
            with pytest.raises(ProtocolError, match="ROUTE_NOT_FOUND"):
                await attempt()

    run(config, scenario)


def test_a_read_refused_as_malformed_is_a_protocol_error_never_gone() -> None:
    async def scenario(kinde: KindeClient) -> None:
        with pytest.raises(ProtocolError, match="INVALID_REQUEST"):
            await kinde.get_user("")  # Kinde: 400 INVALID_REQUEST, 'id' is required

    run(KindeSandboxConfig(), scenario)


def test_a_catch_ups_summary_shows_deleted_and_already_gone_apart() -> None:
    summary = Summary(run_id=2, mode=RunMode.SYNC, plan=Plan(run_id=2), deletions={"deleted": 2, "already-gone": 1, "listed": 4})
    console = Console(record=True, width=120)
    console.print(summary_table(summary))
    text = " ".join(console.export_text().replace("│", " ").split())
    assert "Deleted from Kinde (gone from Clerk) 2" in text
    assert "Already gone from Kinde (nothing to delete) 1" in text
    assert "Kept in Kinde" not in text and "Deletions failed" not in text


def kinde_answering(*answers: httpx.Response) -> KindeClient:
    """A Kinde whose DELETEs get these answers in turn (its token endpoint grants a token)."""
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600})
        return queue.pop(0)

    http = httpx.AsyncClient(base_url=HOST, transport=httpx.MockTransport(handler))
    credentials = M2MCredentials("id", SecretStr("secret"), f"{HOST}/api")
    limiter = AdaptiveLimiter(initial_rate=1000.0, max_rate=1000.0)
    return KindeClient(http, limiter, credentials, max_attempts=3, backoff_cap=0.001, max_wait=0.001)


NOT_FOUND = httpx.Response(404, json={"errors": {"code": "USER_NOT_FOUND", "message": "No user"}})


@pytest.mark.parametrize(
    ("answers", "deleted"),
    [
        ([NOT_FOUND], False),  # Kinde's first answer: nothing to delete (someone else did)
        ([httpx.Response(502, text="bad gateway"), NOT_FOUND], True),  # our first DELETE landed, its answer lost
        ([httpx.Response(200, json={"code": "OK", "message": "Success"})], True),
    ],
)
def test_a_delete_is_ours_when_kinde_confirms_it_or_a_retry_of_it_finds_the_user_gone(
    answers: list[httpx.Response], deleted: bool
) -> None:
    assert asyncio.run(kinde_answering(*answers).delete_user("kp_1")) is deleted
