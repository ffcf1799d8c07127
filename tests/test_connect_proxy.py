"""Every command builds its own transports (to wrap them in the request log), so httpx does not read the proxy
settings from the environment for them: ``connect.environment_proxy`` does, and ``connect.api_transport`` goes
through the proxy it names."""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx
import pytest

from migrator.connect import api_transport, environment_proxy

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


def test_a_request_on_a_commands_transport_goes_through_the_proxy(clean_environment) -> None:
    """A listener plays the proxy the environment names: an http:// request reaches it in absolute form, and its
    answer is the answer."""
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
    clean_environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{listener.getsockname()[1]}")
    transport = api_transport("http://api.example.test", httpx.Limits(max_connections=8))

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
