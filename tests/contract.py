"""Validate HTTP exchanges against the vendors' OpenAPI specs (openapi-core).

The specs are never committed: they are read from ``$MIGRATOR_SPECS_DIR`` (default
``../shared/specs`` beside the checkout). Use the ``clerk_spec`` / ``kinde_spec`` fixtures from
``conftest.py``; they skip with a message saying where to put the files when they are missing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from migrator.config import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CLERK_SPEC = "clerk-backend-api.yml"
KINDE_SPEC = "kinde-management-api.yaml"
# The servers the specs declare; sandbox URLs are rewritten to these before matching.
CLERK_SERVER = "https://api.clerk.com"
KINDE_SERVER = "https://sandbox.kinde.com"


def specs_dir() -> Path:
    return Path(os.environ.get("MIGRATOR_SPECS_DIR", PROJECT_ROOT.parent / "shared" / "specs"))


@cache
def load_spec(name: str) -> OpenAPI:
    return OpenAPI.from_file_path(str(specs_dir() / name))


@dataclass
class _Request:
    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters = field(default_factory=RequestParameters)


@dataclass
class _Response:
    status_code: int
    data: bytes
    content_type: str
    headers: Headers


def _as_openapi(request: httpx.Request, server: str, path_prefix: str = "") -> _Request:
    url = urlsplit(str(request.url))
    path = url.path
    if path_prefix and path.startswith(path_prefix):
        path = path[len(path_prefix) :]
    query = parse_qs(url.query, keep_blank_values=True)
    content = request.content or None
    return _Request(
        host_url=server,
        path=path,
        method=request.method.lower(),
        body=content,
        content_type=request.headers.get("content-type", ""),
        parameters=RequestParameters(
            query=ImmutableMultiDict([(k, v) for k, vs in query.items() for v in vs]),
            header=Headers(list(request.headers.items())),
        ),
    )


def _response(response: httpx.Response) -> _Response:
    content_type = response.headers.get("content-type", "")
    return _Response(
        status_code=response.status_code,
        data=response.content,
        content_type=content_type.split(";")[0].strip(),
        headers=Headers(list(response.headers.items())),
    )


class Contract:
    """One vendor's spec: validates requests and responses, collecting readable failures."""

    def __init__(self, spec_name: str, server: str) -> None:
        self.spec = load_spec(spec_name)
        self.server = server

    def validate_request(self, request: httpx.Request) -> None:
        self.spec.validate_request(_as_openapi(request, self.server))

    def validate_response(self, response: httpx.Response) -> None:
        self.spec.validate_response(_as_openapi(response.request, self.server), _response(response))

    def check(self, response: httpx.Response, *, request: bool = True) -> None:
        """Validate both halves; raise AssertionError naming the exchange on failure."""
        try:
            if request:
                self.validate_request(response.request)
            self.validate_response(response)
        except Exception as exc:  # openapi-core raises a family of validation errors
            detail = getattr(exc, "__cause__", None) or exc
            body = response.content[:500].decode("utf-8", "replace")
            raise AssertionError(
                f"{response.request.method} {response.request.url} -> {response.status_code}: "
                f"{type(exc).__name__}: {exc} ({detail}); body={body}"
            ) from exc


def json_body(response: httpx.Response) -> object:
    return json.loads(response.content)


def operation(exchange: httpx.Response, templates: Sequence[tuple[re.Pattern[str], str]]) -> str:
    """``METHOD /path`` of an exchange, its path named by the spec's template (the first pattern that matches)."""
    path = exchange.request.url.path
    for pattern, template in templates:
        if pattern.match(path):
            return f"{exchange.request.method} {template}"
    return f"{exchange.request.method} {path}"


def in_process_settings(
    state_dir: Path, export: Path, clerk_key: str, kinde_client_id: str, kinde_secret: str, **more: Any
) -> Settings:
    """Settings for a run against sandbox apps on in-process (ASGI) transports, as the contract tests drive them."""
    return Settings(
        clerk_api_url="http://localhost/v1", clerk_secret_key=clerk_key, clerk_export=export,
        kinde_domain="http://localhost", kinde_management_client_id=kinde_client_id,
        kinde_management_client_secret=kinde_secret, kinde_max_rps=5000, kinde_initial_rps=1000,
        state_dir=state_dir, **more,
    )  # fmt: skip
