"""FaultMiddleware's garbage (non-JSON 200) and truncated (JSON cut short) answers."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from migrator.sandbox.faults import FaultMiddleware, FaultProfile
from migrator.sandbox.server import Sandbox, SandboxOptions, serving


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Store:
    """A tiny app that records what its handler saw, to tell 'never ran' from 'ran and committed'."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.handled = 0

        async def items(request: Request) -> JSONResponse:
            self.handled += 1
            if request.method == "POST":
                self.items.append(await request.json())
                return JSONResponse({"count": len(self.items), "items": self.items}, status_code=201)
            return JSONResponse({"count": len(self.items), "items": self.items})

        self.app = Starlette(routes=[Route("/items", items, methods=["GET", "POST"])])


def faulty(store: Store, profile: FaultProfile, seed: int = 0) -> FaultMiddleware:
    return FaultMiddleware(store.app, profile, seed=seed, error_body=lambda status: b"{}")


def in_process(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")


served = serving  # the app on loopback, uvicorn in a daemon thread


def is_json(content: bytes) -> bool:
    try:
        json.loads(content)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("fields", [{"garbage_rate": 1.5}, {"truncated_rate": -0.1}, {"garbage_rate": float("nan")}])
def test_profile_refuses_nonsense(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FaultProfile(**fields)


@pytest.mark.anyio
async def test_garbage_is_a_200_that_is_not_json_and_never_reaches_the_handler() -> None:
    store = Store()
    middleware = faulty(store, FaultProfile(garbage_rate=1.0))
    async with in_process(middleware) as client:
        posted = await client.post("/items", json={"n": 1})
        fetched = await client.get("/items")
    for response in (posted, fetched):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.content and not is_json(response.content)
    assert store.handled == 0 and store.items == []
    assert middleware.stats["garbage"] == 2 and middleware.stats["passed"] == 0


@pytest.mark.anyio
async def test_truncated_keeps_the_status_commits_the_write_and_cuts_the_json() -> None:
    store = Store()
    middleware = faulty(store, FaultProfile(truncated_rate=1.0))
    async with in_process(middleware) as client:
        response = await client.post("/items", json={"n": "x" * 50})
    full = json.dumps({"count": 1, "items": [{"n": "x" * 50}]}, separators=(",", ":")).encode()
    assert store.items == [{"n": "x" * 50}]  # the handler ran: the write happened
    assert response.status_code == 201
    assert response.content == full[: len(full) // 2]
    assert int(response.headers["content-length"]) == len(response.content)
    assert not is_json(response.content)
    assert middleware.stats["truncated"] == 1


@pytest.mark.anyio
async def test_rates_between_zero_and_one_are_seeded() -> None:
    async def outcomes(seed: int) -> list[str]:
        async with in_process(faulty(Store(), FaultProfile(garbage_rate=0.3, truncated_rate=0.3), seed)) as client:
            responses = [await client.get("/items") for _ in range(60)]
        return ["json" if is_json(r.content) else r.headers["content-type"].split(";")[0] for r in responses]

    first, again, other = await outcomes(5), await outcomes(5), await outcomes(6)
    assert first == again and first != other
    assert {"json", "text/html", "application/json"} == set(first)  # clean, garbage and truncated


def test_over_uvicorn_the_messages_are_complete() -> None:
    """A real socket delivers whole messages: the client gets bad JSON, never a transport error."""
    for profile in (FaultProfile(garbage_rate=1.0), FaultProfile(truncated_rate=1.0)):
        with served(faulty(Store(), profile)) as url, httpx.Client(base_url=url) as client:
            response = client.get("/items")
            again = client.get("/items")  # the connection stays usable
        assert response.status_code == again.status_code == 200
        assert int(response.headers["content-length"]) == len(response.content) > 0
        assert not is_json(response.content)


def test_sandbox_options_turn_them_on_per_api() -> None:
    options = SandboxOptions(users=5, kinde_faults=FaultProfile(garbage_rate=1.0))
    with Sandbox(options) as sandbox:
        kinde = httpx.get(f"{sandbox.kinde_url}/api/v1/users", timeout=10)
        clerk = httpx.get(f"{sandbox.clerk_url}/users/count", headers={"Authorization": f"Bearer {sandbox.secret_key}"})
        state = httpx.get(f"{sandbox.kinde_url}/_sandbox/state", timeout=10)
    assert kinde.status_code == 200 and not is_json(kinde.content)
    assert clerk.json()["total_count"] == 5  # Clerk stays clean
    assert state.json()["users"] == []  # the sandbox's own endpoints are exempt
