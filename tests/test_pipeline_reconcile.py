"""Reconciling creates with Kinde, in process: duplicate answers (400 and 409) and ambiguous writes."""

from __future__ import annotations

import asyncio
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.config import Settings
from migrator.connect import connect
from migrator.events import Event, PhaseStarted
from migrator.journal import Journal
from migrator.reports import Summary
from migrator.runs.migration import Migration
from migrator.sandbox.clerk_app import build_clerk_app
from migrator.sandbox.faults import FaultMiddleware, FaultProfile
from migrator.sandbox.generator import Dataset
from migrator.sandbox.kinde_app import KindeSandboxConfig, build_kinde_app, make_error_body

HOST = "http://127.0.0.1"  # ASGITransport never opens a socket; loopback keeps plain http allowed
CLERK_KEY = "sk_test_reconcile"


@dataclass
class World:
    """A Clerk and a Kinde app in process, a CSV export, and the settings pointing at them."""

    dataset: Dataset
    kinde_config: KindeSandboxConfig
    clerk_app: Any
    kinde_app: Any
    settings: Settings

    @property
    def store(self) -> Any:
        return self.kinde_app.state.store

    def kinde(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One authenticated request to the Kinde app, on a thread of its own: callable from an
        event callback while the migration's event loop is busy."""

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.kinde_app)
            async with httpx.AsyncClient(transport=transport, base_url=HOST) as client:
                token = await client.post(
                    "/oauth2/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": self.kinde_config.client_id,
                        "client_secret": self.kinde_config.client_secret,
                        "audience": f"{HOST}/api",
                    },
                )
                headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
                return await client.request(method, path, headers=headers, **kwargs)

        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, send()).result()

    def state(self) -> dict[str, Any]:
        return self.store.snapshot()


def make_world(tmp_path: Path, users: int, **kinde: Any) -> World:
    dataset = Dataset(users)
    export = tmp_path / "users.csv"
    dataset.write_export_csv(export)
    config = KindeSandboxConfig(**kinde)
    settings = Settings(
        clerk_api_url=f"{HOST}/v1",
        clerk_secret_key=CLERK_KEY,
        clerk_export=export,
        kinde_domain=HOST,
        kinde_management_client_id=config.client_id,
        kinde_management_client_secret=config.client_secret,
        state_dir=tmp_path / "state",
        kinde_max_rps=2000,
        kinde_initial_rps=500,
    )
    clerk_app = build_clerk_app(dataset, secret_key=CLERK_KEY, requests_per_10s=None)
    return World(dataset, config, clerk_app, build_kinde_app(config), settings)


def migrate(world: World, on_event=None, kinde_app: Any = None) -> tuple[Summary, Journal]:
    """One real run (``migrator run --yes``) in process; the journal stays open for inspection."""
    journal = Journal(world.settings.state_dir)

    def emit(event: Event) -> None:
        if on_event is not None:
            on_event(event)

    async def main() -> Summary:
        async with connect(
            world.settings,
            clerk_transport=httpx.ASGITransport(app=world.clerk_app),
            kinde_transport=httpx.ASGITransport(app=kinde_app or world.kinde_app),
        ) as (clerk, kinde):
            return await Migration(world.settings, journal, clerk, kinde, emit).start(
                dry_run=False, confirm=lambda plan: True
            )

    return asyncio.run(main()), journal


def bcrypt_user(dataset: Dataset) -> int:
    """An ordinary eligible user with an email and a bcrypt password (no problem user)."""
    return next(
        i for i in range(40, dataset.n) if dataset.expected(i)["hasher"] == "bcrypt" and dataset.expected(i)["email"]
    )


def users_with_email(state: dict[str, Any], email: str) -> list[dict[str, Any]]:
    return [
        u for u in state["users"] if any(i["type"] == "email" and i["value"].lower() == email for i in u["identities"])
    ]


def create_statuses(state: dict[str, Any]) -> Counter[str]:
    return Counter(state["requests"]["by_route"]["POST /api/v1/user"]["by_status"])


def appears_after_lookup(world: World, body: dict[str, Any]) -> tuple[list[str], Any]:
    """An event hook that creates ``body`` in Kinde when the load starts (after the lookup)."""
    created: list[str] = []

    def on_event(event: Event) -> None:
        if isinstance(event, PhaseStarted) and event.phase == "migrate":
            response = world.kinde("POST", "/api/v1/user", json=body)
            assert response.status_code == 200, response.text
            created.append(response.json()["id"])

    return created, on_event


@pytest.mark.parametrize("duplicate_status", [400, 409])
def test_a_collision_with_our_own_user_adopts_it(tmp_path: Path, duplicate_status: int) -> None:
    world = make_world(tmp_path, 60, duplicate_status=duplicate_status)
    i = bcrypt_user(world.dataset)
    clerk_id, email = world.dataset.user_id(i), world.dataset.expected(i)["email"]
    created, on_event = appears_after_lookup(
        world, {"provided_id": clerk_id, "identities": [{"type": "email", "details": {"email": email}}]}
    )

    summary, journal = migrate(world, on_event)

    state = world.state()
    assert create_statuses(state)[str(duplicate_status)] == 1  # the collision really happened
    (kinde_user,) = users_with_email(state, email.lower())
    assert kinde_user["id"] == created[0]
    assert state["creations_by_provided_id"][clerk_id] == 1  # only the one inserted above
    assert kinde_user["password_method"] == "bcrypt"
    row = journal.users.get(summary.run_id, clerk_id)
    assert (row.state, row.kinde_id, row.password) == ("done", created[0], "set")
    plaintext = world.dataset.plaintext(clerk_id)
    assert world.kinde("POST", "/_sandbox/sign-in", json={"email": email, "password": plaintext}).status_code == 200
    assert summary.failed == 0 and summary.exit_code == 0
    journal.close()


@pytest.mark.parametrize("duplicate_status", [400, 409])
@pytest.mark.parametrize("owner", ["user_someone_else", None], ids=["other-provided-id", "no-provided-id"])
def test_a_collision_with_someone_elses_user_fails_that_user_only(
    tmp_path: Path, duplicate_status: int, owner: str | None
) -> None:
    world = make_world(tmp_path, 60, duplicate_status=duplicate_status)
    i = bcrypt_user(world.dataset)
    clerk_id, email = world.dataset.user_id(i), world.dataset.expected(i)["email"]
    body: dict[str, Any] = {"identities": [{"type": "email", "details": {"email": email}}]}
    if owner:
        body["provided_id"] = owner
    created, on_event = appears_after_lookup(world, body)

    summary, journal = migrate(world, on_event)

    state = world.state()
    assert create_statuses(state)[str(duplicate_status)] == 1
    (kinde_user,) = users_with_email(state, email.lower())
    assert kinde_user["id"] == created[0]
    assert kinde_user["password_method"] is None  # someone else's user is left untouched
    assert clerk_id not in state["creations_by_provided_id"]
    row = journal.users.get(summary.run_id, clerk_id)
    assert row.state == "failed"
    assert created[0] in row.error_message
    assert summary.failed == 1 and summary.exit_code == 1
    assert any(created[0] in message for _code, message, _n in summary.failures)
    eligible = sum(world.dataset.expected(j)["eligible"] for j in range(world.dataset.n))
    assert summary.created == eligible - 1  # the run went on for everyone else
    assert len(state["users"]) == eligible
    journal.close()


class FailCreatesOf:
    """In front of Kinde: answers 503 to every create carrying ``marker``, before Kinde sees it."""

    def __init__(self, app: Any, marker: str) -> None:
        self.app, self.marker, self.failed = app, marker.encode(), 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) != ("POST", "/api/v1/user"):
            return await self.app(scope, receive, send)
        messages = [await receive()]
        while messages[-1].get("more_body"):
            messages.append(await receive())
        if self.marker not in b"".join(m.get("body", b"") for m in messages):
            pending = iter(messages)

            async def replay() -> Any:
                return next(pending)

            return await self.app(scope, replay, send)
        self.failed += 1
        body = b'{"errors": [{"code": "SERVICE_UNAVAILABLE", "message": "Try again."}]}'
        await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def test_an_unclear_create_never_adopts_someone_elses_user(tmp_path: Path) -> None:
    """A 503 on our create, and a foreign user holding the email: fail the user, touch nothing."""
    world = make_world(tmp_path, 60)
    world.settings.max_attempts = 2
    i = bcrypt_user(world.dataset)
    clerk_id, email = world.dataset.user_id(i), world.dataset.expected(i)["email"]
    created, on_event = appears_after_lookup(
        world, {"provided_id": "user_someone_else", "identities": [{"type": "email", "details": {"email": email}}]}
    )
    failing = FailCreatesOf(world.kinde_app, email)

    summary, journal = migrate(world, on_event, kinde_app=failing)

    state = world.state()
    assert failing.failed >= 1
    (kinde_user,) = users_with_email(state, email.lower())
    assert kinde_user["id"] == created[0] and kinde_user["password_method"] is None
    row = journal.users.get(summary.run_id, clerk_id)
    assert row.state == "failed" and created[0] in row.error_message
    assert summary.failed == 1 and summary.exit_code == 1
    journal.close()


def test_ambiguous_writes_never_create_a_user_twice(tmp_path: Path) -> None:
    world = make_world(tmp_path, 200)
    faulty = FaultMiddleware(
        world.kinde_app,
        FaultProfile(ambiguous_write_rate=0.2),
        seed=11,
        error_body=make_error_body(world.kinde_config),
        retry_header="RateLimit-Reset",
        # Only the Management API's writes: the token request is not what this test is about.
        exempt_prefixes=("/_sandbox", "/oauth2"),
    )

    summary, journal = migrate(world, kinde_app=faulty)
    journal.close()

    state = world.state()
    eligible = [world.dataset.user_id(j) for j in range(world.dataset.n) if world.dataset.expected(j)["eligible"]]
    assert faulty.stats["ambiguous_write"] >= 20
    assert state["duplicate_creations"] == []
    assert Counter(u["provided_id"] for u in state["users"]) == Counter(eligible)
    # A create whose answer was lost is looked up, never sent again.
    assert state["requests"]["by_route"]["POST /api/v1/user"]["total"] == len(eligible)
    assert summary.failed == 0 and summary.exit_code == 0
    assert sum(summary.passwords_set.values()) == sum(summary.plan.password_imports.values())
