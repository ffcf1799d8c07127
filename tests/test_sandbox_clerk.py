"""The Clerk emulator: contract (every response against Clerk's spec), paging, filters, auth, rate
limit, the sandbox-only routes, and the round trip between the API and the CSV export."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from openapi_schema_validator import OAS30Validator

from migrator.sandbox import generator
from migrator.sandbox.clerk_app import _Selection, build_clerk_app
from migrator.sandbox.generator import Dataset
from tests.contract import Contract

SECRET = "sk_test_sandbox_secret"


class FakeClock:
    """A monotonic clock the test moves by hand, so rate-limit windows need no sleeping."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class SyncClient:
    """A synchronous face on ``httpx.AsyncClient`` + ``ASGITransport``: the app runs in-process."""

    def __init__(self, app: Any, *, key: str | None = SECRET) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._loop = asyncio.new_event_loop()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
        )

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._client.get(url, **kwargs))

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._client.request(method, url, **kwargs))

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(240, seed=7)


@pytest.fixture(scope="module")
def client(dataset: Dataset) -> Iterator[SyncClient]:
    sync = SyncClient(build_clerk_app(dataset, secret_key=SECRET, requests_per_10s=None))
    yield sync
    sync.close()


@pytest.fixture(scope="module")
def big() -> Iterator[tuple[SyncClient, Dataset]]:
    """A million users: only reachable because pages are computed from indexes."""
    dataset = Dataset(1_000_000, seed=5)
    sync = SyncClient(build_clerk_app(dataset, secret_key=SECRET, requests_per_10s=None))
    yield sync, dataset
    sync.close()


@pytest.fixture(scope="session")
def clerk_errors(clerk_spec: Contract) -> OAS30Validator:
    """The spec's ClerkErrors schema, for statuses the spec does not declare on an operation."""
    components = (clerk_spec.spec.spec / "components").read_value()
    return OAS30Validator({"$ref": "#/components/schemas/ClerkErrors", "components": components})


def check_envelope(validator: OAS30Validator, response: httpx.Response, status: int, code: str) -> dict:
    """For responses the spec has no entry for (429 anywhere, 404 off-spec paths, 401 on
    /users/count and /organizations): the body must still be a valid ClerkErrors envelope."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    validator.validate(body)
    assert body["errors"][0]["code"] == code
    assert body["clerk_trace_id"]
    assert "Traceback" not in response.text
    return body


def walk(client: SyncClient, path: str, params: dict[str, Any], *, cursor: bool = False) -> list[dict]:
    """Every item of a listing, page by page (offset, or starting_after when ``cursor``)."""
    items: list[dict] = []
    limit = params.get("limit", 10)
    while True:
        query = dict(params)
        if cursor and items:
            query["starting_after"] = items[-1]["id"]
        elif not cursor:
            query["offset"] = len(items)
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        page = page if isinstance(page, list) else page["data"]
        items.extend(page)
        if len(page) < limit:
            return items


# ----------------------------------------------------------------------------- contract


@pytest.mark.contract
def test_every_user_validates_against_the_user_schema(client: SyncClient, clerk_spec: Contract) -> None:
    for offset in range(0, 240, 120):
        response = client.get("/v1/users", params={"limit": 120, "offset": offset, "order_by": "+created_at"})
        assert response.status_code == 200
        clerk_spec.check(response)


@pytest.mark.contract
@pytest.mark.parametrize(
    "path, params",
    [
        ("/v1/users", {}),
        ("/v1/users", {"email_address": [generator.SHARED_EMAIL, "nobody@example.com"], "limit": 5}),
        ("/v1/users", {"created_at_after": 1_672_531_200_000, "order_by": "-created_at", "limit": 3}),
        ("/v1/users/count", {}),
        ("/v1/users/count", {"user_id": ["-user_2nothing"], "created_at_before": 1_672_540_000_000}),
        ("/v1/organizations", {"limit": 500}),
        ("/v1/organizations", {"include_members_count": "true", "order_by": "name", "limit": 2}),
        ("/v1/organization_memberships", {"limit": 200}),
        ("/v1/organization_roles", {"limit": 10, "offset": 1}),
    ],
)
def test_success_responses_match_the_spec(
    client: SyncClient, clerk_spec: Contract, path: str, params: dict[str, Any]
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    clerk_spec.check(response)


@pytest.mark.contract
@pytest.mark.parametrize(
    "params, code",
    [
        ({"limit": "abc"}, "form_param_format_invalid"),
        ({"limit": 501}, "form_param_value_invalid"),
        ({"limit": 0}, "form_param_value_invalid"),
        ({"offset": -1}, "form_param_value_invalid"),
        ({"created_at_after": "yesterday"}, "form_param_format_invalid"),
    ],
)
def test_bad_parameter_types_are_422_in_the_envelope(
    client: SyncClient, clerk_spec: Contract, params: dict[str, Any], code: str
) -> None:
    response = client.get("/v1/users", params=params)
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == code
    clerk_spec.check(response, request=False)  # the request itself breaks the spec's parameter schema


@pytest.mark.contract
@pytest.mark.parametrize(
    "params",
    [
        {"order_by": "favourite_colour"},
        {"order_by": "username", "starting_after": "user_2x"},
        {"starting_after": "user_2x", "offset": 5},
        {"starting_after": "user_2doesnotexist000000000000"},
        {"query": "alex"},  # a real Clerk filter the sandbox does not emulate: loud, not ignored
    ],
)
def test_rule_violations_are_422_and_the_request_itself_is_valid(
    client: SyncClient, clerk_spec: Contract, params: dict[str, Any]
) -> None:
    response = client.get("/v1/users", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["code"] == "form_param_value_invalid"
    clerk_spec.check(response)


@pytest.mark.contract
def test_wrong_key_is_401_clerk_key_invalid(dataset: Dataset, clerk_spec: Contract, clerk_errors) -> None:
    wrong = SyncClient(build_clerk_app(dataset, secret_key=SECRET), key="sk_test_wrong")
    try:
        response = wrong.get("/v1/users")
        assert response.json()["errors"][0]["code"] == "clerk_key_invalid"
        clerk_spec.check(response)
        # The spec lists no 401 for these two operations, but Clerk authenticates every request.
        check_envelope(clerk_errors, wrong.get("/v1/users/count"), 401, "clerk_key_invalid")
        check_envelope(clerk_errors, wrong.get("/v1/organizations"), 401, "clerk_key_invalid")
        response = wrong.get("/v1/organization_memberships")
        assert response.status_code == 401
        clerk_spec.check(response)
    finally:
        wrong.close()


@pytest.mark.contract
@pytest.mark.parametrize("header", [None, "Basic c2s6", "Bearer", "Bearer  two spaces", "sk_test_sandbox_secret"])
def test_missing_or_malformed_authorization_is_401(dataset: Dataset, clerk_spec: Contract, header: str | None) -> None:
    anonymous = SyncClient(build_clerk_app(dataset, secret_key=SECRET), key=None)
    try:
        headers = {"Authorization": header} if header is not None else {}
        for path in ("/v1/users", "/v1/organization_roles", "/v1/no_such_route"):
            response = anonymous.get(path, headers=headers)
            assert response.status_code == 401, (path, response.text)  # auth comes before routing
            assert response.json()["errors"][0]["code"] == "authorization_header_format_invalid"
        response = anonymous.get("/v1/users", headers=headers)
        clerk_spec.check(response, request=False)  # the request lacks the spec's bearer auth
    finally:
        anonymous.close()


@pytest.mark.contract
def test_unknown_route_is_404_in_the_envelope(client: SyncClient, clerk_errors) -> None:
    check_envelope(clerk_errors, client.get("/v1/no_such_route"), 404, "resource_not_found")
    check_envelope(clerk_errors, client.get("/v2/users"), 404, "resource_not_found")
    response = client.request("DELETE", "/v1/users")
    assert response.status_code == 405
    clerk_errors.validate(response.json())


@pytest.mark.contract
def test_unexpected_failures_are_500_in_the_envelope_without_a_trace(clerk_errors) -> None:
    class Broken(Dataset):
        def user(self, i: int) -> dict:
            raise RuntimeError("boom: internal detail")

    broken = SyncClient(build_clerk_app(Broken(60, seed=1), secret_key=SECRET))
    try:
        body = check_envelope(clerk_errors, broken.get("/v1/users"), 500, "internal_clerk_error")
        assert "boom" not in str(body)
    finally:
        broken.close()


# ----------------------------------------------------------------------------- rate limit


@pytest.mark.contract
def test_rate_limit_429_with_retry_after_then_a_new_window(dataset: Dataset, clerk_errors) -> None:
    clock = FakeClock(1000.0)  # window [1000, 1010)
    app = build_clerk_app(dataset, secret_key=SECRET, requests_per_10s=3, clock=clock)
    limited = SyncClient(app)
    try:
        for _ in range(3):
            assert limited.get("/v1/users/count").status_code == 200
        clock.now = 1002.5
        response = limited.get("/v1/users", params={"limit": 1})
        check_envelope(clerk_errors, response, 429, "too_many_requests")
        assert response.headers["Retry-After"] == "8"
        clock.now = 1009.99
        assert limited.get("/v1/users").headers["Retry-After"] == "1"  # never 0
        assert limited.get("/_sandbox/state").status_code == 200  # sandbox routes are not limited
        assert limited.get(f"/_sandbox/users/{dataset.user_id(0)}/password").status_code in (200, 404)
        clock.now = 1010.0
        assert limited.get("/v1/users/count").status_code == 200
        state = limited.get("/_sandbox/state").json()
        assert state["statuses"]["429"] == 2
        assert state["requests"]["GET /v1/users"] == 2 and state["requests"]["GET /v1/users/count"] == 4
    finally:
        limited.close()


def test_requests_with_a_rejected_key_do_not_spend_the_limit(dataset: Dataset) -> None:
    clock = FakeClock(0.0)
    app = build_clerk_app(dataset, secret_key=SECRET, requests_per_10s=2, clock=clock)
    good, bad = SyncClient(app), SyncClient(app, key="sk_test_other")
    try:
        for _ in range(5):
            assert bad.get("/v1/users/count").status_code == 401
        assert [good.get("/v1/users/count").status_code for _ in range(3)] == [200, 200, 429]
    finally:
        good.close()
        bad.close()


# ----------------------------------------------------------------------------- paging and filters


def test_default_page_is_ten_newest_users(client: SyncClient, dataset: Dataset) -> None:
    users = client.get("/v1/users").json()
    assert [u["id"] for u in users] == [dataset.user_id(i) for i in range(239, 229, -1)]


@pytest.mark.parametrize("order", ["+created_at", "created_at", "-created_at"])
@pytest.mark.parametrize("use_cursor", [False, True])
def test_paging_visits_every_user_exactly_once(
    client: SyncClient, dataset: Dataset, order: str, use_cursor: bool
) -> None:
    users = walk(client, "/v1/users", {"limit": 37, "order_by": order}, cursor=use_cursor)
    ids = [u["id"] for u in users]
    expected = [dataset.user_id(i) for i in range(dataset.n)]
    assert ids == (expected[::-1] if order.startswith("-") else expected)


def test_paging_with_filters_agrees_with_count(client: SyncClient, dataset: Dataset) -> None:
    after, before = dataset.created_at(30), dataset.created_at(200)
    excluded = [dataset.user_id(i) for i in (31, 50, 199, 5)]
    filters: dict[str, Any] = {
        "created_at_after": after,
        "created_at_before": before,
        "user_id": [f"-{user_id}" for user_id in excluded],
    }
    count = client.get("/v1/users/count", params=filters).json()["total_count"]
    assert count == len(range(31, 200)) - 3
    for order in ("+created_at", "-created_at"):
        for use_cursor in (False, True):
            users = walk(client, "/v1/users", {**filters, "limit": 20, "order_by": order}, cursor=use_cursor)
            indexes = sorted(dataset.index_of(u["id"]) for u in users)
            assert indexes == [i for i in range(31, 200) if i not in (31, 50, 199)]


@pytest.mark.parametrize("excluded", [(), (10,), (10, 11, 12), (10, 14, 29), (29,)])
def test_selection_positions_match_the_materialised_list(excluded: tuple[int, ...]) -> None:
    selection = _Selection(range(10, 30), None, excluded)
    expected = [i for i in range(10, 30) if i not in excluded]
    assert selection.count() == len(expected)
    assert [selection.index_at(p) for p in range(len(expected) + 1)] == [*expected, None]
    assert list(selection.ascending(0)) == expected
    assert list(selection.descending(99)) == expected[::-1]
    assert list(selection.descending(expected[-1] - 1)) == [i for i in expected[::-1] if i < expected[-1]]


def test_email_and_user_id_filters(client: SyncClient, dataset: Dataset) -> None:
    shared = client.get("/v1/users", params={"email_address": generator.SHARED_EMAIL}).json()
    assert sorted(dataset.index_of(u["id"]) for u in shared) == [11, 12]
    wanted = [dataset.user(i) for i in (3, 40, 77)]
    emails = [u["email_addresses"][0]["email_address"] for u in wanted if u["email_addresses"]]
    found = client.get("/v1/users", params={"email_address": [*emails, "ghost@example.com"]}).json()
    assert {u["email_addresses"][0]["email_address"] for u in found} == set(emails)
    assert client.get("/v1/users/count", params={"email_address": "ghost@example.com"}).json()["total_count"] == 0
    ids = [dataset.user_id(i) for i in (5, 6, 7, 8)]
    picked = client.get("/v1/users", params={"user_id": [*ids, f"-{ids[1]}"], "order_by": "+created_at"}).json()
    assert [u["id"] for u in picked] == [ids[0], ids[2], ids[3]]
    both = {"user_id": [dataset.user_id(11), dataset.user_id(40)], "email_address": generator.SHARED_EMAIL}
    assert [u["id"] for u in client.get("/v1/users", params=both).json()] == [dataset.user_id(11)]
    assert client.get("/v1/users/count", params=both).json() == {"object": "total_count", "total_count": 1}
    phone_user = next(dataset.user(i) for i in range(60, 240) if dataset.user(i)["phone_numbers"])
    number = phone_user["phone_numbers"][0]["phone_number"]
    by_phone = client.get("/v1/users", params={"phone_number": number}).json()
    assert [u["id"] for u in by_phone] == [phone_user["id"]]
    by_name = client.get("/v1/users", params={"username": "SAM_TAYLOR"}).json()
    assert sorted(dataset.index_of(u["id"]) for u in by_name) == [21, 22]


def test_other_orders_sort_with_nulls_last(client: SyncClient, dataset: Dataset) -> None:
    users = walk(client, "/v1/users", {"limit": 100, "order_by": "+username"})
    names = [u["username"] for u in users]
    present = [n for n in names if n is not None]
    assert present == sorted(present) and names[: len(present)] == present
    assert len(users) == dataset.n


def test_million_users_page_1500_by_offset_and_by_cursor(big: tuple[SyncClient, Dataset]) -> None:
    big_client, dataset = big
    offset = 1499 * 500
    by_offset = big_client.get("/v1/users", params={"limit": 500, "offset": offset, "order_by": "+created_at"})
    assert by_offset.status_code == 200
    first, last = by_offset.json()[0], by_offset.json()[-1]
    assert dataset.index_of(first["id"]) == offset and dataset.index_of(last["id"]) == offset + 499
    cursor = dataset.user_id(offset - 1)
    by_cursor = big_client.get("/v1/users", params={"limit": 500, "starting_after": cursor, "order_by": "+created_at"})
    assert [u["id"] for u in by_cursor.json()] == [u["id"] for u in by_offset.json()]
    newest_first = big_client.get("/v1/users", params={"limit": 500, "offset": offset}).json()
    assert dataset.index_of(newest_first[0]["id"]) == dataset.n - 1 - offset
    after = big_client.get("/v1/users", params={"limit": 500, "starting_after": newest_first[-1]["id"]}).json()
    assert dataset.index_of(after[0]["id"]) == dataset.n - 1 - offset - 500
    tail = big_client.get("/v1/users", params={"limit": 500, "starting_after": dataset.user_id(999_990)}).json()
    assert len(tail) == 500 and dataset.index_of(tail[-1]["id"]) == 999_490
    count = big_client.get("/v1/users/count", params={"created_at_after": dataset.created_at(999_000)})
    assert count.json()["total_count"] == 999
    memberships = big_client.get("/v1/organization_memberships", params={"limit": 500, "offset": 699_600}).json()
    assert memberships["total_count"] == 700_000 and len(memberships["data"]) == 400


def test_memberships_organizations_and_roles_page_with_limit_and_offset(client: SyncClient, dataset: Dataset) -> None:
    memberships = walk(client, "/v1/organization_memberships", {"limit": 50, "order_by": "+created_at"})
    assert memberships == list(dataset.memberships())
    newest = client.get("/v1/organization_memberships", params={"limit": 1}).json()
    assert newest["data"][0] == dataset.membership(dataset.membership_count - 1)
    organizations = walk(client, "/v1/organizations", {"limit": 1, "order_by": "+created_at"})
    assert organizations == dataset.organizations()
    counted = client.get("/v1/organizations", params={"include_members_count": "true", "limit": 500}).json()
    assert sum(o["members_count"] for o in counted["data"]) == dataset.membership_count
    assert "members_count" not in client.get("/v1/organizations").json()["data"][0]
    roles = client.get("/v1/organization_roles", params={"limit": 2, "offset": 1, "order_by": "key"}).json()
    keys = sorted(role["key"] for role in dataset.roles())
    assert [r["key"] for r in roles["data"]] == keys[1:3] and roles["total_count"] == 5


# ----------------------------------------------------------------------------- sandbox routes


def test_password_endpoint_gives_a_plaintext_that_verifies() -> None:
    dataset = Dataset(80, seed=4, hasher_weights={"bcrypt": 1.0})
    sandbox = SyncClient(build_clerk_app(dataset, secret_key=SECRET), key=None)  # no auth needed
    try:
        checked = 0
        for i in range(dataset.n):
            response = sandbox.get(f"/_sandbox/users/{dataset.user_id(i)}/password")
            pair = dataset.password(i)
            if pair is None:
                assert response.status_code == 404
                assert response.json()["errors"][0]["code"] == "resource_not_found"
                continue
            assert bcrypt.checkpw(response.json()["password"].encode(), pair[1].encode())
            checked += 1
        assert checked > 40
        assert sandbox.get("/_sandbox/users/user_2nobody/password").status_code == 404
    finally:
        sandbox.close()


def test_state_counts_requests_by_route_template_and_status(dataset: Dataset) -> None:
    app = build_clerk_app(dataset, secret_key=SECRET)
    counting = SyncClient(app)
    try:
        counting.get("/v1/users")
        counting.get("/v1/users", params={"limit": "x"})
        counting.get(f"/_sandbox/users/{dataset.user_id(1)}/password")
        counting.get(f"/_sandbox/users/{dataset.user_id(2)}/password")
        counting.get("/v1/missing")
        state = counting.get("/_sandbox/state").json()
        assert state["requests"] == {
            "GET /v1/users": 2,
            "GET /_sandbox/users/{user_id}/password": 2,
            "GET (unmatched)": 1,
        }
        assert state["statuses"]["200"] >= 1 and state["statuses"]["422"] == 1 and state["statuses"]["404"] >= 1
        assert sum(state["statuses"].values()) == 5
        assert app.state.request_counts["requests"]["GET /v1/users"] == 2
    finally:
        counting.close()


# ----------------------------------------------------------------------------- API <-> CSV


def _split(cell: str) -> list[str]:
    cell = cell.removeprefix("\t")
    return cell.split("|") if cell else []


def test_api_and_csv_export_agree_by_id(client: SyncClient, dataset: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "clerk-export.csv"
    assert dataset.write_export_csv(path) == dataset.n
    with path.open(newline="", encoding="utf-8") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    users = {u["id"]: u for u in walk(client, "/v1/users", {"limit": 100, "order_by": "+created_at"})}
    assert set(rows) == set(users) and len(rows) == dataset.n
    saw_guarded_phone = saw_multi = False
    for user_id, user in users.items():
        row = rows[user_id]
        emails = {e["id"]: e for e in user["email_addresses"]}
        phones = {p["id"]: p for p in user["phone_numbers"]}
        primary_email = emails.get(user["primary_email_address_id"])
        primary_phone = phones.get(user["primary_phone_number_id"])
        email_cell = row["primary_email_address"]  # guarded when formula-leading (the generator's user 17)
        assert email_cell.removeprefix("\t") == (primary_email["email_address"] if primary_email else "")
        assert email_cell.startswith("\t") == (email_cell[1:2] == "=")
        if primary_phone:
            assert row["primary_phone_number"] == "\t" + primary_phone["phone_number"]  # the TAB guard
            assert row["primary_phone_number"].removeprefix("\t") == primary_phone["phone_number"]
            saw_guarded_phone = True
        else:
            assert row["primary_phone_number"] == ""
        assert row["username"].removeprefix("\t") == (user["username"] or "")
        assert row["first_name"].removeprefix("\t") == (user["first_name"] or "")

        def verified(item: dict) -> bool:
            return bool(item["verification"]) and item["verification"]["status"] == "verified"

        for kind, items, value in (
            ("email_addresses", emails, "email_address"),
            ("phone_numbers", phones, "phone_number"),
        ):
            assert sorted(_split(row[f"verified_{kind}"])) == sorted(i[value] for i in items.values() if verified(i))
            assert sorted(_split(row[f"unverified_{kind}"])) == sorted(
                i[value] for i in items.values() if not verified(i)
            )
            saw_multi |= "|" in row[f"verified_{kind}"] + row[f"unverified_{kind}"]
        index = dataset.index_of(user_id)
        password = dataset.password(index)
        assert (row["password_hasher"], row["password_digest"]) == (password or ("", ""))
        if row["password_digest"]:
            assert user["password_enabled"]
        assert bool(row["totp_secret"]) == user["totp_enabled"]
    assert saw_guarded_phone and saw_multi
