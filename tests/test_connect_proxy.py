"""A run builds its own transports (for the request log and the pools), so httpx does not read the proxy
settings from the environment for it: ``connect.environment_proxy`` does, and the pools go through it."""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx
import pytest

from migrator.connect import environment_proxy, pooled_transport

PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "all_proxy",
    "no_proxy",
)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_environment_names_the_proxy_per_scheme_and_no_proxy_is_honoured(clean_environment) -> None:
    assert environment_proxy("https://acme.kinde.com") is None
    clean_environment.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    clean_environment.setenv("HTTP_PROXY", "http://plain.corp:8080")
    assert environment_proxy("https://acme.kinde.com") == "http://proxy.corp:3128"
    assert environment_proxy("http://127.0.0.1:9000") == "http://plain.corp:8080"
    clean_environment.setenv("NO_PROXY", "acme.kinde.com,127.0.0.1")
    assert environment_proxy("https://acme.kinde.com") is None
    assert environment_proxy("http://127.0.0.1:9000") is None
    assert environment_proxy("https://api.clerk.com/v1") == "http://proxy.corp:3128"


def test_all_proxy_stands_for_any_scheme(clean_environment) -> None:
    clean_environment.setenv("ALL_PROXY", "http://every.corp:1080")
    assert environment_proxy("https://api.clerk.com/v1") == "http://every.corp:1080"


def test_a_request_on_the_pools_goes_through_the_proxy() -> None:
    """A listener plays the proxy: an http:// request reaches it in absolute form, and its answer is the answer."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def proxy() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            seen.append(data.split(b"\r\n", 1)[0])
            conn.sendall(
                b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{"via": 1}\n'
            )

    thread = threading.Thread(target=proxy, daemon=True)
    thread.start()
    address = f"http://127.0.0.1:{listener.getsockname()[1]}"
    transport = pooled_transport(httpx.Limits(max_connections=8), proxy=address)

    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.get("http://api.example.test/v1/users?limit=1")

    try:
        answer = asyncio.run(fetch())
    finally:
        thread.join(timeout=10)
        listener.close()
    assert seen == [b"GET http://api.example.test/v1/users?limit=1 HTTP/1.1"]
    assert answer.json() == {"via": 1}
