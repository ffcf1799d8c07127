"""FaultMiddleware: every fault, seeded, seen by an in-process client and by one talking to uvicorn."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from migrator.sandbox.faults import PROFILES, ConnectionDropped, FaultMiddleware, FaultProfile
from migrator.sandbox.kinde_app import KindeSandboxConfig, build_kinde_app, make_error_body
from migrator.sandbox.server import serving


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Ledger:
    """A tiny app whose every handled request is visible, to tell 'never ran' from 'ran'."""

    def __init__(self) -> None:
        self.handled: list[str] = []
        self.items: list[Any] = []

        async def items(request: Request) -> JSONResponse:
            self.handled.append(request.method)
            if request.method == "POST":
                self.items.append(await request.json())
                return JSONResponse({"count": len(self.items)}, status_code=201)
            return JSONResponse({"count": len(self.items)})

        async def sandbox(request: Request) -> JSONResponse:
            self.handled.append("sandbox")
            return JSONResponse({"ok": True})

        self.app = Starlette(
            routes=[Route("/items", items, methods=["GET", "POST"]), Route("/_sandbox/state", sandbox)]
        )


def error_body(status: int) -> bytes:
    return json.dumps({"fault": status}).encode()


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def faulty(ledger: Ledger, profile: FaultProfile, **options: Any) -> FaultMiddleware:
    options.setdefault("sleep", FakeSleep())
    return FaultMiddleware(ledger.app, profile, error_body=error_body, **options)


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@contextmanager
def in_process(app: Any) -> Iterator[httpx.AsyncClient]:
    yield httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")


uvicorn_server = serving  # the app on loopback, uvicorn in a daemon thread


@pytest.fixture
def uvicorn_errors() -> Iterator[list[logging.LogRecord]]:
    """What uvicorn logs as errors (tracebacks of app exceptions) while a test runs."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.ERROR)
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


# ---------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------


def test_named_profiles() -> None:
    assert set(PROFILES) >= {"none", "light", "chaos"}
    assert PROFILES["none"] == FaultProfile()
    light, chaos = PROFILES["light"], PROFILES["chaos"]
    assert 0 < light.error_rate < chaos.error_rate
    assert 0 < light.rate_limit_rate < chaos.rate_limit_rate
    assert light.reset_rate == light.ambiguous_write_rate == 0
    assert chaos.reset_rate > 0 and chaos.ambiguous_write_rate > 0
    assert chaos.latency[1] > light.latency[1] > 0


@pytest.mark.parametrize(
    "fields",
    [{"error_rate": 1.5}, {"reset_rate": -0.1}, {"ambiguous_write_rate": float("nan")}, {"latency": (0.2, 0.1)}],
)
def test_profile_refuses_nonsense(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FaultProfile(**fields)


# ---------------------------------------------------------------------------------------------
# In-process (httpx.ASGITransport)
# ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_server_errors(ledger: Ledger) -> None:
    middleware = faulty(ledger, FaultProfile(error_rate=1.0), seed=3)
    with in_process(middleware) as client:
        responses = [await client.post("/items", json={"n": i}) for i in range(60)]
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {500, 502, 503}
    assert all(r.json() == {"fault": r.status_code} for r in responses)
    assert ledger.handled == []
    assert middleware.stats["error_500"] + middleware.stats["error_502"] + middleware.stats["error_503"] == 60
    assert middleware.stats["passed"] == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("retry_header", "expected"),
    [("Retry-After", {"retry-after": "1"}), ("RateLimit-Reset", {"ratelimit-reset": "1"}), ("", {})],
)
async def test_rate_limited(ledger: Ledger, retry_header: str, expected: dict[str, str]) -> None:
    middleware = faulty(ledger, FaultProfile(rate_limit_rate=1.0), retry_header=retry_header)
    with in_process(middleware) as client:
        response = await client.get("/items")
    assert response.status_code == 429
    assert response.json() == {"fault": 429}
    assert {k: v for k, v in response.headers.items() if k in ("retry-after", "ratelimit-reset")} == expected
    assert ledger.handled == [] and middleware.stats["rate_limited"] == 1


@pytest.mark.anyio
async def test_latency_is_added_through_the_injected_sleep(ledger: Ledger) -> None:
    sleep = FakeSleep()
    middleware = faulty(ledger, FaultProfile(latency=(0.05, 0.2)), sleep=sleep)
    with in_process(middleware) as client:
        for _ in range(20):
            assert (await client.get("/items")).status_code == 200
    assert len(sleep.calls) == 20
    assert all(0.05 <= delay <= 0.2 for delay in sleep.calls)
    assert len(set(sleep.calls)) > 1  # uniform over the range, not a constant
    assert middleware.stats["latency_seconds"] == pytest.approx(sum(sleep.calls))
    assert middleware.stats["delayed"] == 20 and len(ledger.handled) == 20


@pytest.mark.anyio
async def test_no_latency_no_sleep(ledger: Ledger) -> None:
    sleep = FakeSleep()
    with in_process(faulty(ledger, PROFILES["none"], sleep=sleep)) as client:
        assert (await client.get("/items")).status_code == 200
    assert sleep.calls == []


@pytest.mark.anyio
async def test_reset_before_the_handler(ledger: Ledger) -> None:
    middleware = faulty(ledger, FaultProfile(reset_rate=1.0))
    with in_process(middleware) as client:
        with pytest.raises(httpx.TransportError):
            await client.post("/items", json={"n": 1})
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/items")
    assert ledger.handled == [] and ledger.items == []
    assert middleware.stats["reset"] == 2


@pytest.mark.anyio
async def test_ambiguous_write_commits_then_drops(ledger: Ledger) -> None:
    middleware = faulty(ledger, FaultProfile(ambiguous_write_rate=1.0))
    with in_process(middleware) as client:
        with pytest.raises(httpx.TransportError) as raised:
            await client.post("/items", json={"n": 1})
        assert isinstance(raised.value, ConnectionDropped)
        reading = await client.get("/items")  # reads are never ambiguous
    assert ledger.items == [{"n": 1}]
    assert reading.status_code == 200 and reading.json() == {"count": 1}
    assert middleware.stats["ambiguous_write"] == 1 and middleware.stats["passed"] == 1


@pytest.mark.anyio
async def test_sandbox_paths_are_exempt(ledger: Ledger) -> None:
    middleware = faulty(ledger, FaultProfile(error_rate=1.0, reset_rate=1.0, latency=(1.0, 1.0)))
    with in_process(middleware) as client:
        assert (await client.get("/_sandbox/state")).json() == {"ok": True}
    assert ledger.handled == ["sandbox"]
    assert middleware.stats["exempt"] == 1 and middleware.stats["requests"] == 0


@pytest.mark.anyio
async def test_stats_are_served(ledger: Ledger) -> None:
    middleware = faulty(ledger, FaultProfile(rate_limit_rate=1.0), seed=42)
    with in_process(middleware) as client:
        await client.get("/items")
        served = (await client.get("/_sandbox/faults")).json()
    assert served["seed"] == 42
    assert served["profile"]["rate_limit_rate"] == 1.0
    assert served["stats"] == middleware.stats
    assert served["stats"]["rate_limited"] == 1


async def outcomes(middleware: FaultMiddleware, count: int) -> list[str]:
    results: list[str] = []
    with in_process(middleware) as client:
        for i in range(count):
            try:
                results.append(str((await client.post("/items", json={"n": i})).status_code))
            except httpx.TransportError:
                results.append("dropped")
    return results


@pytest.mark.anyio
async def test_the_seed_decides_the_faults() -> None:
    profile = FaultProfile(error_rate=0.2, rate_limit_rate=0.2, reset_rate=0.1, ambiguous_write_rate=0.1)
    first = await outcomes(faulty(Ledger(), profile, seed=7), 80)
    again = await outcomes(faulty(Ledger(), profile, seed=7), 80)
    other = await outcomes(faulty(Ledger(), profile, seed=8), 80)
    assert first == again
    assert first != other
    assert {"201", "429", "dropped"} <= set(first)


# ---------------------------------------------------------------------------------------------
# Over a real socket (uvicorn)
# ---------------------------------------------------------------------------------------------


def test_faults_over_uvicorn(ledger: Ledger, uvicorn_errors: list[logging.LogRecord]) -> None:
    resets = faulty(ledger, FaultProfile(reset_rate=1.0))
    ambiguous = faulty(ledger, FaultProfile(ambiguous_write_rate=1.0))
    errors = faulty(ledger, FaultProfile(error_rate=1.0, rate_limit_rate=1.0))
    with uvicorn_server(resets) as url, httpx.Client(base_url=url) as client:
        for body in ({"n": 1}, {"n": "x" * 300_000}):  # a body bigger than the socket buffers too
            with pytest.raises(httpx.RemoteProtocolError):  # a clean close, never a kernel RST
                client.post("/items", json=body)
        assert ledger.handled == []
    with uvicorn_server(ambiguous) as url, httpx.Client(base_url=url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/items", json={"n": 2})
        assert ledger.items == [{"n": 2}]
        assert client.get("/items").json() == {"count": 1}  # the same client carries on
    with uvicorn_server(errors) as url, httpx.Client(base_url=url) as client:
        response = client.get("/items")
        assert response.status_code in (500, 502, 503) and response.json() == {"fault": response.status_code}
    assert [r.getMessage() for r in uvicorn_errors] == []  # intended drops are not logged as crashes


def test_kinde_over_uvicorn_reset_and_ambiguous_write() -> None:
    """End to end on real sockets: a reset create changed nothing, a dropped create happened."""
    config = KindeSandboxConfig()
    kinde = build_kinde_app(config)
    with uvicorn_server(kinde) as url, httpx.Client(base_url=url) as client:
        token = client.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": config.client_id,
                "client_secret": config.client_secret,
                "audience": f"{url}/api",  # the audience follows whatever port the server got
            },
        )
    assert token.status_code == 200, token.text
    headers = {"authorization": f"Bearer {token.json()['access_token']}"}

    def create_through(profile: FaultProfile, email: str) -> list[str]:
        middleware = FaultMiddleware(kinde, profile, error_body=make_error_body(config), retry_header="RateLimit-Reset")
        with uvicorn_server(middleware) as url, httpx.Client(base_url=url, headers=headers) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                client.post("/api/v1/user", json={"identities": [{"type": "email", "details": {"email": email}}]})
            state = client.get("/_sandbox/state").json()  # exempt from faults
        return [user["identities"][0]["value"] for user in state["users"]]

    assert create_through(FaultProfile(reset_rate=1.0), "reset@example.com") == []
    assert create_through(FaultProfile(ambiguous_write_rate=1.0), "ambiguous@example.com") == ["ambiguous@example.com"]
