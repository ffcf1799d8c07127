"""The sandbox's pacing switches: reset header forms, a gateway's stray 429, a shared quota."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from migrator.http import parse_retry_after
from migrator.sandbox.faults import FaultMiddleware, FaultProfile, reset_headers
from migrator.sandbox.kinde_app import KindeSandboxConfig, SharedQuota, TokenBucket, build_kinde_app, make_error_body

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("seconds", "3"),
        ("epoch", str(int(NOW) + 3)),
        ("http-date", email.utils.formatdate(NOW + 3, usegmt=True)),
    ],
)
def test_reset_header_forms_round_trip_through_the_migrators_parser(form: str, expected: str) -> None:
    pairs = reset_headers(("Retry-After",), 2.2, form, now=lambda: NOW)  # rounded up to 3 s
    assert pairs == [(b"retry-after", expected.encode())]
    headers = httpx.Headers([(k.decode(), v.decode()) for k, v in pairs])
    assert parse_retry_after(headers, now=lambda: NOW) == 3.0


def test_an_unknown_reset_form_is_refused() -> None:
    with pytest.raises(ValueError, match="reset header form"):
        reset_headers(("Retry-After",), 1, "fortnights")  # type: ignore[arg-type]


def test_another_client_takes_its_share_during_its_window_only() -> None:
    clock = Clock()
    bucket = TokenBucket(10.0, clock, SharedQuota(share=0.5, start=5.0, duration=10.0))

    def taken_in(seconds: float) -> int:
        """Take as fast as possible (every 10 ms) for ``seconds``; how many were granted."""
        granted = 0
        end = clock.now + seconds
        while clock.now < end - 1e-9:
            granted += bucket.take() is None
            clock.now += 0.01
        return granted

    assert taken_in(5.0) == 10 + 50 - 1  # the first take starts the clock: burst, then 10/s
    assert 48 <= taken_in(10.0) <= 51  # half of 10/s is left for us
    assert 99 <= taken_in(10.0) <= 101  # the other client stopped
    assert bucket.available_rate(clock.now) == 10.0


def test_the_wait_names_the_rate_left_while_shared() -> None:
    clock = Clock()
    bucket = TokenBucket(1.0, clock, SharedQuota(share=0.75, start=0.0, duration=100.0))
    assert bucket.take() is None
    assert bucket.take() == pytest.approx(4.0)  # one token at the 0.25/s left


def test_shared_quota_is_validated() -> None:
    with pytest.raises(ValueError, match="shared_quota"):
        SharedQuota(share=1.5, start=0, duration=1)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_gateways_stray_429_names_its_reset_both_ways(anyio_backend: str) -> None:
    config = KindeSandboxConfig()
    middleware = FaultMiddleware(
        build_kinde_app(config),
        FaultProfile(rate_limit_rate=1.0),
        error_body=make_error_body(config),
        retry_header=("Retry-After", "RateLimit-Reset"),
        reset_form="epoch",
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(middleware), base_url="http://kinde") as client:
        response = await client.get("/api/v1/users")
    assert response.status_code == 429
    assert response.json()["errors"][0]["code"] == "TOO_MANY_REQUESTS"
    assert float(response.headers["Retry-After"]) > NOW - 10**8  # epoch seconds, both of them
    assert response.headers["Retry-After"] == response.headers["RateLimit-Reset"]
    assert 0 < parse_retry_after(response.headers) <= 2.0


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_kindes_own_429_in_the_http_date_form(anyio_backend: str) -> None:
    config = KindeSandboxConfig(
        rate_limit_rps=0.5, rate_limit_headers=("Retry-After",), rate_limit_reset_form="http-date", clock=Clock()
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(build_kinde_app(config)), base_url="http://k") as client:
        await client.get("/api/v1/users")  # takes the one token (401: no token, but counted)
        response = await client.get("/api/v1/users")
    assert response.status_code == 429
    assert email.utils.parsedate_to_datetime(response.headers["Retry-After"]) is not None
    assert 0 < parse_retry_after(response.headers) <= 3.0
