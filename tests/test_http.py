"""The HTTP boundary: status and transport errors map to migrator.errors; retries follow policy.

These use respx to play servers that misbehave in ways the sandbox makes awkward (HTTP-date
Retry-After, a 401 for a token that just expired, a cursor that is ignored).
"""

from __future__ import annotations

import asyncio
import email.utils
import gc
import threading
import time
import weakref

import httpx
import pytest
import respx
from pydantic import SecretStr

from migrator.clerk.client import ClerkClient
from migrator.errors import (
    AlreadyExists,
    ApiError,
    AuthError,
    ProtocolError,
    ScopeError,
    TransientError,
)
from migrator.http import ApiClient, error_details, parse_retry_after
from migrator.kinde.client import KindeClient, M2MCredentials, lookup_batches
from migrator.kinde.token import TokenManager
from migrator.limiter import AdaptiveLimiter

BASE = "https://api.example.test"


class Sleeps:
    """The injected sleep: records each wait and moves its own clock on, never waits."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.now += seconds


def fast_limiter(sleep: Sleeps | None = None, **kwargs) -> AdaptiveLimiter:
    sleep = sleep or Sleeps()
    return AdaptiveLimiter(initial_rate=1000, max_rate=1000, sleep=sleep, clock=sleep.clock, **kwargs)


def client(cls=ApiClient, *, limiter: AdaptiveLimiter | None = None, **kwargs) -> tuple[ApiClient, httpx.AsyncClient]:
    http = httpx.AsyncClient(base_url=BASE)
    kwargs.setdefault("sleep", Sleeps())
    return cls(http, limiter or fast_limiter(), backoff_cap=0.001, **kwargs), http


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch):
    """Every wait goes through an injected sleep: a real one would fail the test (only on the test's own
    thread: a sandbox another test left serving in this worker sleeps on its own thread, and may)."""
    real = asyncio.sleep
    test_thread = threading.current_thread()

    async def forbidden(seconds: float, *args, **kwargs):
        if seconds > 0 and threading.current_thread() is test_thread:
            raise AssertionError(f"a real sleep of {seconds} s")
        return await real(seconds, *args, **kwargs)

    monkeypatch.setattr("asyncio.sleep", forbidden)


NOW = 1_800_000_000.0  # a fixed "now" (2027) for the date and epoch forms


def test_retry_after_in_seconds_date_and_ratelimit_reset() -> None:
    assert parse_retry_after(httpx.Headers({"Retry-After": "7"})) == 7.0
    assert parse_retry_after(httpx.Headers({"RateLimit-Reset": "2.5"})) == 2.5
    future = email.utils.formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after(httpx.Headers({"Retry-After": future}), now=lambda: NOW) == 30.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert parse_retry_after(httpx.Headers({})) is None


def test_reset_as_an_epoch_timestamp_is_read_as_one() -> None:
    at = httpx.Headers({"RateLimit-Reset": str(int(NOW + 42))})
    assert parse_retry_after(at, now=lambda: NOW) == 42.0
    assert parse_retry_after(httpx.Headers({"X-RateLimit-Reset": str(NOW + 5)}), now=lambda: NOW) == 5.0
    assert parse_retry_after(httpx.Headers({"RateLimit-Reset": str(int(NOW - 10))}), now=lambda: NOW) == 0.0


def test_a_reset_in_the_past_or_nonsense_never_means_a_negative_wait() -> None:
    past = email.utils.formatdate(NOW - 30, usegmt=True)
    assert parse_retry_after(httpx.Headers({"Retry-After": past}), now=lambda: NOW) == 0.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "-5"})) is None
    assert parse_retry_after(httpx.Headers({"Retry-After": "nan"})) is None
    # An unusable first header does not hide a usable second one.
    assert parse_retry_after(httpx.Headers({"Retry-After": "later", "RateLimit-Reset": "3"})) == 3.0


@respx.mock
def test_a_server_hint_longer_than_max_wait_is_cut_to_it() -> None:
    respx.get(f"{BASE}/thing").mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": "86400"}), httpx.Response(200, json={})]
    )
    sleeps = Sleeps()
    api, _ = client(max_wait=120.0, sleep=sleeps)
    run(api.call("GET", "/thing"))
    assert sleeps.calls == [120.0]


@respx.mock
def test_a_stray_429_holds_only_its_own_retry_for_the_server_reset() -> None:
    route = respx.get(f"{BASE}/thing").mock(
        side_effect=[httpx.Response(429, headers={"RateLimit-Reset": "2"}), httpx.Response(200, json={})]
    )
    sleeps = Sleeps()
    api, _ = client(sleep=sleeps, limiter=fast_limiter(jitter=0.0))
    run(api.call("GET", "/thing"))
    assert route.call_count == 2
    assert sleeps.calls == [2.0]  # the retry waited the reset ...
    assert not api.limiter.backing_off  # ... and nobody else has to
    assert api.limiter.stats.stray == 1


@respx.mock
def test_a_congestion_holds_every_request_in_the_limiter_not_in_the_retry() -> None:
    route = respx.get(f"{BASE}/thing").mock(
        side_effect=[httpx.Response(429, headers={"RateLimit-Reset": "3"})] * 3 + [httpx.Response(200, json={})]
    )
    retry_sleeps, limiter_sleeps = Sleeps(), Sleeps()
    limiter = fast_limiter(limiter_sleeps, jitter=0.0)
    api, _ = client(sleep=retry_sleeps, limiter=limiter)
    run(api.call("GET", "/thing"))
    assert route.call_count == 4
    assert limiter.stats.congestions == 1
    assert retry_sleeps.calls[-1] == 0.0  # after the third 429 the retry itself does not wait ...
    assert sum(limiter_sleeps.calls) >= 2.9  # ... the limiter held it (and everyone) for the reset


def test_error_details_reads_both_envelopes_and_oauth() -> None:
    assert error_details({"errors": [{"code": "X", "message": "m"}]}) == ("X", "m")
    assert error_details({"errors": {"code": "Y", "message": "n"}}) == ("Y", "n")
    clerk = {"errors": [{"code": "c", "message": "short", "long_message": "long"}]}
    assert error_details(clerk) == ("c", "long")
    assert error_details({"error": "invalid_client", "error_description": "bad"}) == ("invalid_client", "bad")
    assert error_details("nope") == (None, None)


@respx.mock
def test_5xx_then_success_is_retried() -> None:
    route = respx.get(f"{BASE}/thing").mock(
        side_effect=[httpx.Response(503, json={}), httpx.Response(502), httpx.Response(200, json={"ok": 1})]
    )
    api, _http = client()
    assert run(api.call("GET", "/thing")) == {"ok": 1}
    assert route.call_count == 3
    assert api.stats.retries == 2


@respx.mock
def test_429_is_retried() -> None:
    route = respx.get(f"{BASE}/thing").mock(
        side_effect=[httpx.Response(429, headers={"RateLimit-Reset": "1"}), httpx.Response(200, json={})]
    )
    api, _ = client()
    run(api.call("GET", "/thing"))
    assert route.call_count == 2
    assert api.stats.throttled == 1
    assert api.limiter.stats.throttled == 1


@respx.mock
@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_other_4xx_are_not_retried(status: int) -> None:
    route = respx.get(f"{BASE}/thing").mock(return_value=httpx.Response(status, json={"errors": [{"code": "E"}]}))
    api, _ = client()
    with pytest.raises(ApiError) as caught:
        run(api.call("GET", "/thing"))
    assert route.call_count == 1
    assert caught.value.status == status
    assert not caught.value.retryable


@respx.mock
def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    route = respx.get(f"{BASE}/thing").mock(return_value=httpx.Response(500, json={}))
    api, _ = client(max_attempts=3)
    with pytest.raises(TransientError, match="failed on the server"):
        run(api.call("GET", "/thing"))
    assert route.call_count == 3


@respx.mock
def test_a_write_that_is_not_idempotent_is_not_resent_after_an_ambiguous_failure() -> None:
    route = respx.post(f"{BASE}/create").mock(side_effect=httpx.ReadTimeout("slow"))
    api, _ = client()
    with pytest.raises(TransientError) as caught:
        run(api.call("POST", "/create", idempotent=False))
    assert route.call_count == 1
    assert caught.value.ambiguous


@respx.mock
def test_a_write_is_resent_when_it_provably_never_arrived() -> None:
    route = respx.post(f"{BASE}/create").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(429), httpx.Response(200, json={"id": "x"})]
    )
    api, _ = client()
    assert run(api.call("POST", "/create", idempotent=False)) == {"id": "x"}
    assert route.call_count == 3


@respx.mock
def test_non_json_and_truncated_bodies_are_protocol_errors() -> None:
    respx.get(f"{BASE}/html").mock(return_value=httpx.Response(200, text="<html>oops</html>"))
    respx.get(f"{BASE}/cut").mock(return_value=httpx.Response(200, text='{"users": [{"id": "a"'))
    respx.get(f"{BASE}/shape").mock(return_value=httpx.Response(200, json=[1, 2]))
    api, _ = client(max_attempts=2)
    with pytest.raises(ProtocolError, match="not JSON") as html:
        run(api.call("GET", "/html"))
    assert "oops" not in str(html.value)
    with pytest.raises(ProtocolError, match="truncated"):
        run(api.call("GET", "/cut"))
    with pytest.raises(ProtocolError, match="unexpected shape"):
        run(api.call("GET", "/shape"))


@respx.mock
def test_messages_never_carry_the_query_string() -> None:
    respx.get(f"{BASE}/users").mock(return_value=httpx.Response(400, json={"errors": [{"code": "BAD"}]}))
    api, _ = client()
    with pytest.raises(ApiError) as caught:
        run(api.call("GET", "/users", params={"email": "someone@example.com"}))
    assert "someone@example.com" not in str(caught.value)
    assert "GET /users" in str(caught.value)


@respx.mock
def test_clerk_401_names_the_setting_and_trace_id() -> None:
    respx.get(f"{BASE}/users/count").mock(
        return_value=httpx.Response(
            401,
            json={
                "errors": [{"code": "clerk_key_invalid", "message": "m", "long_message": "lm"}],
                "clerk_trace_id": "t1",
            },
        )
    )
    api, _ = client(ClerkClient)
    with pytest.raises(AuthError, match="CLERK_SECRET_KEY") as caught:
        run(api.count_users())
    assert "t1" in str(caught.value)


@respx.mock
def test_clerk_cursor_ignored_by_the_server_falls_back_to_offsets() -> None:
    page1 = [{"id": f"user_{i}"} for i in range(500)]
    page2 = [{"id": f"user_{i}"} for i in range(500, 700)]

    def users(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if "starting_after" in params:
            return httpx.Response(200, json=page1)  # an API that ignores the cursor
        return httpx.Response(200, json=page2 if params.get("offset") == "500" else page1)

    respx.get(f"{BASE}/users").mock(side_effect=users)
    api, _ = client(ClerkClient)

    async def collect() -> list[str]:
        return [u["id"] async for page in api.iter_user_pages() for u in page]

    ids = run(collect())
    assert ids == [f"user_{i}" for i in range(700)]


@respx.mock
def test_clerk_ignoring_offset_on_a_filtered_list_is_a_protocol_error_not_an_endless_loop() -> None:
    full = [{"id": f"user_{i}"} for i in range(500)]
    route = respx.get(f"{BASE}/users").mock(return_value=httpx.Response(200, json=full))  # every offset: page one
    api, _ = client(ClerkClient)
    with pytest.raises(ProtocolError, match="ignored offset"):
        run(api.users_holding("email_address", ["shared@example.com"]))
    assert route.call_count == 2


@respx.mock
def test_clerk_ignoring_offset_on_organizations_is_a_protocol_error_not_an_endless_loop() -> None:
    full = {"data": [{"id": f"org_{i}"} for i in range(500)]}  # no total_count: only the pages say when it ends
    route = respx.get(f"{BASE}/organizations").mock(return_value=httpx.Response(200, json=full))
    api, _ = client(ClerkClient)

    async def collect() -> list[str]:
        return [org["id"] async for org in api.iter_organizations()]

    with pytest.raises(ProtocolError, match="ignored offset"):
        run(collect())
    assert route.call_count == 2


def kinde(token_responses, *, clock=time.monotonic) -> tuple[KindeClient, TokenManager]:
    http = httpx.AsyncClient(base_url=BASE)
    respx.post(f"{BASE}/oauth2/token").mock(side_effect=token_responses)
    credentials = M2MCredentials(client_id="id", client_secret=SecretStr("s3cret"), audience=f"{BASE}/api")
    api = KindeClient(http, fast_limiter(), credentials, clock=clock, backoff_cap=0.001, sleep=Sleeps())
    return api, api.tokens


def token(value: str, expires_in: int = 3600) -> httpx.Response:
    return httpx.Response(200, json={"access_token": value, "token_type": "Bearer", "expires_in": expires_in})


@respx.mock
def test_token_is_cached_and_renewed_before_expiry() -> None:
    now = [0.0]
    api, _tokens = kinde([token("t1", 600), token("t2", 600)], clock=lambda: now[0])
    seen = []
    respx.get(f"{BASE}/api/v1/users").mock(
        side_effect=lambda r: seen.append(r.headers["Authorization"]) or httpx.Response(200, json={"users": []})
    )
    run(api.find_users("email", ["a@example.com"]))
    run(api.find_users("email", ["a@example.com"]))
    now[0] = 600 - 59  # inside the renewal margin (60 s, or a tenth of a short lifetime)
    run(api.find_users("email", ["a@example.com"]))
    assert seen == ["Bearer t1", "Bearer t1", "Bearer t2"]


@respx.mock
def test_a_401_renews_the_token_once_then_stops_with_a_clear_error() -> None:
    api, _ = kinde([token("old"), token("new"), token("newer")])
    route = respx.get(f"{BASE}/api/v1/users").mock(
        side_effect=[httpx.Response(401, json={}), httpx.Response(200, json={"users": [{"id": "kp_1"}]})]
    )
    assert [u.id for u in run(api.find_users("email", ["a@example.com"]))] == ["kp_1"]
    assert route.calls[-1].request.headers["Authorization"] == "Bearer new"
    route.mock(return_value=httpx.Response(401, json={}))
    with pytest.raises(AuthError, match="even with a fresh token"):
        run(api.find_users("email", ["a@example.com"]))


@respx.mock
def test_403_names_the_missing_scope() -> None:
    api, tokens = kinde([token("t"), token("t2")])
    route = respx.post(f"{BASE}/api/v1/user").mock(
        return_value=httpx.Response(403, json={"errors": [{"code": "FORBIDDEN"}]})
    )
    with pytest.raises(ScopeError, match="create:users") as caught:
        run(api.create_user({"provided_id": "u"}))
    assert caught.value.scope == "create:users"
    assert tokens.fetched == 2 and route.calls.call_count == 2  # believed only after a fresh token


@respx.mock
@pytest.mark.parametrize("status", [400, 409])
def test_create_collision_is_already_exists_whatever_the_status(status: int) -> None:
    api, _ = kinde([token("t")])
    respx.post(f"{BASE}/api/v1/user").mock(
        return_value=httpx.Response(status, json={"errors": [{"code": "ANYTHING", "message": "in use"}]})
    )
    with pytest.raises(AlreadyExists):
        run(api.create_user({"provided_id": "u"}))


@respx.mock
@pytest.mark.parametrize(
    ("status", "body"),
    [(401, {"error": "invalid_client"}), (400, {"error": "invalid_request", "error_description": "audience"})],
)
def test_rejected_token_request_names_the_settings(status: int, body: dict) -> None:
    api, _ = kinde([httpx.Response(status, json=body)])
    with pytest.raises(AuthError) as caught:
        run(api.find_users("email", ["a@example.com"]))
    message = str(caught.value)
    assert "KINDE_MANAGEMENT_CLIENT_ID" in message and "KINDE_MANAGEMENT_CLIENT_SECRET" in message
    assert "s3cret" not in message


@respx.mock
def test_find_users_follows_next_token() -> None:
    api, _ = kinde([token("t")])
    respx.get(f"{BASE}/api/v1/users").mock(
        side_effect=[
            httpx.Response(200, json={"users": [{"id": "kp_1", "email": "a@x.io"}], "next_token": "n1"}),
            httpx.Response(200, json={"users": [{"id": "kp_2", "email": "b@x.io"}], "next_token": ""}),
        ]
    )
    found = run(api.find_users("email", ["a@x.io", "b@x.io"]))
    assert [u.id for u in found] == ["kp_1", "kp_2"]


def test_lookup_batches_respect_both_limits_and_keep_order() -> None:
    values = [f"user{i}@example.com" for i in range(250)]
    batches = lookup_batches(values, max_chars=400, max_items=100)
    assert [v for batch in batches for v in batch] == values
    assert all(len(",".join(batch)) <= 400 for batch in batches)
    assert all(len(batch) <= 100 for batch in batches)
    assert lookup_batches([]) == []
    assert lookup_batches(["x" * 5000]) == [["x" * 5000]]  # one oversized value still goes alone


def test_a_read_response_is_freed_when_the_call_returns_not_at_the_next_garbage_collection() -> None:
    """httpx binds a response's stream back to it (a cycle): a page of users would wait for the cyclic GC."""
    answered: list[weakref.ref[httpx.Response]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        response = httpx.Response(200, json=[{"id": f"user_{i}"} for i in range(500)])
        answered.append(weakref.ref(response))
        return response

    api = ApiClient(httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(handler)), fast_limiter())
    gc.disable()
    try:
        body = asyncio.run(api.call("GET", "/users", expect=list))
        assert len(body) == 500
        assert answered and answered[0]() is None  # freed by its last reference, no collection ran
    finally:
        gc.enable()
