"""The workflow's HTTP calls against the vendors' specs: every request it sends to Clerk and to Kinde's
Management API (and the answers the sandbox gives it) as the workflow actually sends them, recorded at
the sandbox's door while Kinde's sign-in runs the workflow under Node."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from migrator.lazy.workflow_files import write_workflow
from migrator.sandbox.clerk_app import build_clerk_app
from migrator.sandbox.generator import Dataset
from migrator.sandbox.kinde_app import KindeSandboxConfig, build_kinde_app
from migrator.sandbox.server import serving
from tests.contract import Contract
from tests.workflow_node import ensure_workflow_modules, lazy_candidate

SECRET = "sk_test_contract_secret"


@dataclass
class Exchange:
    request: httpx.Request
    response: httpx.Response


class Recorder:
    """ASGI wrapper keeping each request and its response whole."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        headers = [(k.decode(), v.decode()) for k, v in scope["headers"]]
        query = scope["query_string"].decode()
        url = f"http://{dict(headers).get('host', 'sandbox')}{scope['path']}{'?' + query if query else ''}"
        request = httpx.Request(scope["method"], url, headers=headers, content=body)
        status, response_headers, chunks = 500, [], []

        async def keep(message: Message) -> None:
            nonlocal status, response_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = [(k.decode(), v.decode()) for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, replay, keep)
        response = httpx.Response(status, headers=response_headers, content=b"".join(chunks), request=request)
        self.exchanges.append(Exchange(request, response))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Recorder, Recorder, dict[str, Any]]]:
    ensure_workflow_modules()
    folder = tmp_path_factory.mktemp("contract") / "workflow"
    write_workflow(folder, clerk_api_url="https://api.clerk.com/v1")
    dataset = Dataset(200, seed=3)
    clerk = Recorder(build_clerk_app(dataset, secret_key=SECRET, requests_per_10s=None))
    config = KindeSandboxConfig(workflow=Path(folder))
    kinde = Recorder(build_kinde_app(config))
    i = next(i for i in range(200) if lazy_candidate(dataset, i))
    user = dataset.user(i)
    email = user["email_addresses"][0]["email_address"]
    with serving(clerk) as clerk_url, serving(kinde) as kinde_url:
        config.workflow_env.update(CLERK_API_URL=f"{clerk_url}/v1", CLERK_SECRET_KEY=SECRET)
        sign_in = f"{kinde_url}/_sandbox/sign-in"
        wrong = httpx.post(sign_in, json={"email": email, "password": "not-it-1"}, timeout=60)
        right = httpx.post(sign_in, json={"email": email, "password": dataset.clerk_password(user["id"])}, timeout=60)
        yield clerk, kinde, {"wrong": wrong.status_code, "right": right.status_code}


def _checked(exchanges: list[Exchange], contract: Contract, prefix: str) -> list[str]:
    seen = []
    for exchange in exchanges:
        path = exchange.request.url.path
        if not path.startswith(prefix):
            continue
        seen.append(f"{exchange.request.method} {path.split('/')[-1]} {exchange.response.status_code}")
        if exchange.response.is_success:
            contract.check(exchange.response)
        else:
            contract.validate_request(exchange.request)
    return seen


@pytest.mark.contract
def test_the_workflows_clerk_calls_match_clerks_spec(
    recorded: tuple[Recorder, Recorder, dict[str, Any]], clerk_spec: Contract
) -> None:
    clerk, _kinde, outcome = recorded
    assert outcome == {"wrong": 401, "right": 200}
    seen = _checked(clerk.exchanges, clerk_spec, "/v1/")
    assert seen == ["GET users 200", "POST verify_password 422", "GET users 200", "POST verify_password 200"]


@pytest.mark.contract
def test_the_workflows_kinde_calls_match_kindes_spec(
    recorded: tuple[Recorder, Recorder, dict[str, Any]], kinde_spec: Contract
) -> None:
    _clerk, kinde, _outcome = recorded
    seen = _checked(kinde.exchanges, kinde_spec, "/api/")
    assert seen == ["POST user 200", "PUT password 200"]
