"""Local emulator of the part of Clerk's Backend API that the migrator reads.

Why it is built this way: tests, the demo and the benchmarks trust it as if it were Clerk, so it
answers the way the spec says Clerk does (bare user arrays, ``{data,total_count}`` envelopes,
ClerkErrors bodies on every failure, 401 before routing, 429 with ``Retry-After``), and it never
holds the user list: pages are computed from user indexes (see ``generator.Dataset``), so a page
of 500 at the end of a million users costs the same as the first page.

Served: ``GET /v1/users``, ``/v1/users/count``, ``/v1/organizations``,
``/v1/organization_memberships``, ``/v1/organization_roles``, ``POST /v1/users/{user_id}/verify_password``
(against the user's real password, with Clerk's lockout: ``ClerkBehaviour.lockout_attempts``); sandbox-only (no auth, no rate
limit): ``GET /_sandbox/users/{user_id}/password``, ``GET /_sandbox/state`` and ``POST /_sandbox/users``
(sign-ups, edits, bans, password changes and deletions while serving: ``changes.py``).

Spec parameters the sandbox does not emulate (e.g. ``query``, ``banned``) are answered with a 422
naming them, rather than silently ignored, so a client relying on them fails loudly here.
Unknown parameters are ignored, as HTTP servers usually do.
"""

from __future__ import annotations

import bisect
import hmac
import json
import logging
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.datastructures import Headers, QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from migrator.sandbox.generator import Dataset

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 10.0
MAX_LIMIT = 500
DEFAULT_LIMIT = 10
MAX_LIST_VALUES = 100  # Clerk accepts up to 100 values per repeated filter
MAX_SORTED_USERS = 100_000  # above this, orders other than created_at would need a full scan
USER_ORDER_FIELDS = frozenset(
    {
        "created_at",
        "updated_at",
        "email_address",
        "web3wallet",
        "first_name",
        "last_name",
        "phone_number",
        "username",
        "last_active_at",
        "last_sign_in_at",
    }
)
USER_FILTERS = ("email_address", "phone_number", "username", "user_id")
# Spec parameters of GET /users and /users/count that the sandbox does not emulate.
UNSUPPORTED_USER_PARAMS = (
    "external_id",
    "web3_wallet",
    "organization_id",
    "query",
    "email_address_query",
    "phone_number_query",
    "username_query",
    "name_query",
    "banned",
    "last_active_at_before",
    "last_active_at_after",
    "last_active_at_since",
    "last_sign_in_at_before",
    "last_sign_in_at_after",
    "provider",
    "provider_user_id",
)
UNSUPPORTED_ORGANIZATION_PARAMS = (
    "query",
    "user_id",
    "organization_id",
    "include_missing_member_with_elevated_permissions",
)
UNSUPPORTED_ROLE_PARAMS = ("query",)
STATE_PATH = "/_sandbox/state"
CHANGES_PATH = "/_sandbox/users"
UNMATCHED_ROUTE = "(unmatched)"


class ClerkApiError(Exception):
    """An error answered in Clerk's envelope: ``{"errors": [...], "clerk_trace_id": ...}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        long_message: str,
        *,
        meta: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(long_message)
        self.status = status
        self.code = code
        self.message = message
        self.long_message = long_message
        self.meta = meta
        self.headers = headers

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"message": self.message, "long_message": self.long_message, "code": self.code}
        if self.meta:
            error["meta"] = self.meta
        body = {"errors": [error], "clerk_trace_id": uuid.uuid4().hex}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _param_error(name: str, long_message: str, *, code: str = "form_param_value_invalid") -> ClerkApiError:
    message = "is invalid"
    return ClerkApiError(422, code, message, long_message, meta={"param_name": name})


def _unsupported(name: str) -> ClerkApiError:
    return ClerkApiError(
        422,
        "form_param_value_invalid",
        "is not supported",
        f"{name} is a Clerk parameter the sandbox does not emulate; remove it or extend the sandbox.",
        meta={"param_name": name},
    )


# ------------------------------------------------------------------------------- rate limiting


class FixedWindowRateLimiter:
    """Clerk's limit: N requests per key per fixed 10-second window; the clock is injectable."""

    def __init__(
        self, limit: int, *, window_seconds: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1:
            raise ValueError("the rate limit must allow at least one request per window")
        self.limit = limit
        self.window_seconds = window_seconds
        self.clock = clock
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window number, requests in it)

    def acquire(self, key: str) -> int | None:
        """Count one request; None when allowed, else the Retry-After seconds (at least 1)."""
        now = self.clock()
        window = math.floor(now / self.window_seconds)
        current, used = self._windows.get(key, (window, 0))
        if current != window:
            used = 0
        if used >= self.limit:
            remaining = (window + 1) * self.window_seconds - now
            return max(1, math.ceil(remaining))
        self._windows[key] = (window, used + 1)
        return None


# ------------------------------------------------------------------------------- query parsing


def _first(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    return values[0] if values else None


def _int_param(
    params: QueryParams, name: str, default: int | None, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    raw = _first(params, name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"-?\d{1,19}", raw):
        raise _param_error(name, f"{name} must be an integer", code="form_param_format_invalid")
    value = int(raw)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise _param_error(name, f"{name} must be {bounds}")
    return value


def _bool_param(params: QueryParams, name: str) -> bool:
    raw = _first(params, name)
    if raw is None or raw == "":
        return False
    if raw.lower() not in ("true", "false"):
        raise _param_error(name, f"{name} must be true or false", code="form_param_format_invalid")
    return raw.lower() == "true"


def _list_param(params: QueryParams, name: str) -> list[str]:
    values = params.getlist(name)
    if len(values) > MAX_LIST_VALUES:
        raise _param_error(name, f"{name} accepts up to {MAX_LIST_VALUES} values")
    return values


def _order_param(params: QueryParams, allowed: frozenset[str], default: str = "-created_at") -> tuple[str, bool]:
    """(field, descending). Only the first ``order_by`` counts; no sign means ascending."""
    raw = _first(params, "order_by")
    if raw is None or raw == "":
        raw = default
    descending = raw.startswith("-")
    name = raw[1:] if raw[:1] in ("+", "-") else raw
    if name not in allowed:
        raise _param_error(
            "order_by",
            f"{raw} is not a valid value for order_by; allowed fields: {', '.join(sorted(allowed))}",
        )
    return name, descending


def _reject_unsupported(params: QueryParams, names: tuple[str, ...]) -> None:
    for name in names:
        if name in params:
            raise _unsupported(name)


def _paging(params: QueryParams) -> tuple[int, int]:
    limit = _int_param(params, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    offset = _int_param(params, "offset", 0, minimum=0)
    assert limit is not None and offset is not None
    return limit, offset


# ------------------------------------------------------------------------------- user selection


@dataclass(frozen=True)
class _Selection:
    """The users a filter selects, as index arithmetic: a created_at window (an index range),
    optionally narrowed to explicit members, minus excluded ids. Never a list of every user."""

    span: range
    members: list[int] | None  # sorted; set when an include filter (email, user_id, ...) was given
    excluded: tuple[int, ...]  # sorted indexes inside ``span`` (only used when members is None)

    def count(self) -> int:
        if self.members is not None:
            return len(self.members)
        return len(self.span) - len(self.excluded)

    def index_at(self, position: int) -> int | None:
        """The index at ascending ``position`` (0-based), or None past the end."""
        if position < 0 or position >= self.count():
            return None
        if self.members is not None:
            return self.members[position]
        index = self.span.start + position
        for gone in self.excluded:  # each excluded index at or before it pushes it one further
            if gone <= index:
                index += 1
            else:
                break
        return index

    def ascending(self, start: int) -> Iterator[int]:
        if self.members is not None:
            yield from self.members[bisect.bisect_left(self.members, start) :]
            return
        skip = set(self.excluded)
        for index in range(max(start, self.span.start), self.span.stop):
            if index not in skip:
                yield index

    def descending(self, start: int) -> Iterator[int]:
        if self.members is not None:
            cut = bisect.bisect_right(self.members, start)
            yield from reversed(self.members[:cut])
            return
        skip = set(self.excluded)
        for index in range(min(start, self.span.stop - 1), self.span.start - 1, -1):
            if index not in skip:
                yield index


def _matching(dataset: Dataset, name: str, value: str) -> set[int]:
    """Indexes of users whose ``name`` (email_address, phone_number, username) equals ``value``."""
    wanted = value.strip().lower()
    found = set()
    for index in dataset.candidate_indexes(wanted):
        ids = dataset.identifiers(index)
        if name == "email_address":
            values = [e.lower() for e in ids["emails"]]
        elif name == "phone_number":
            values = ids["phones"]
        else:
            values = [ids["username"].lower()] if ids["username"] else []
        if wanted in values:
            found.add(index)
    return found


def _select_users(dataset: Dataset, params: QueryParams, identity_filters: bool = True) -> _Selection:
    """Parse the filters shared by ``/users`` and ``/users/count`` into a selection (``identity_filters``
    False: an API that ignores ``email_address``/``phone_number``/``username``, see ClerkBehaviour)."""
    _reject_unsupported(params, UNSUPPORTED_USER_PARAMS)
    after = _int_param(params, "created_at_after", None)
    before = _int_param(params, "created_at_before", None)
    span = dataset.index_range(after, before)
    include: set[int] | None = None
    excluded: set[int] = set(dataset.changes.deleted)  # deleted in Clerk since the sandbox started
    for name in USER_FILTERS:
        values = _list_param(params, name)
        if not values or (name != "user_id" and not identity_filters):
            continue
        matched: set[int] = set()
        wanted_any = False
        for value in values:
            if name == "user_id":
                sign, user_id = (value[0], value[1:]) if value[:1] in ("+", "-") else ("+", value)
                index = dataset.index_of(user_id)
                if sign == "-":
                    if index is not None:
                        excluded.add(index)
                    continue
                wanted_any = True
                if index is not None:
                    matched.add(index)
            else:
                wanted_any = True
                matched |= _matching(dataset, name, value)
        if wanted_any:
            include = matched if include is None else include & matched
    if include is not None:
        members = sorted(i for i in include if i in span and i not in excluded)
        return _Selection(span, members, ())
    return _Selection(span, None, tuple(sorted(i for i in excluded if i in span)))


def _sort_key(dataset: Dataset, field: str) -> Callable[[int], Any]:
    if field in ("updated_at", "last_active_at", "last_sign_in_at"):
        return lambda i: dataset.user(i)[field]
    key_name = {
        "email_address": "primary_email",
        "phone_number": "primary_phone",
        "web3wallet": "web3_wallet",
    }.get(field, field)
    return lambda i: dataset.identifiers(i)[key_name]


def _user_page(
    dataset: Dataset, selection: _Selection, field: str, descending: bool, limit: int, offset: int, cursor: int | None
) -> list[int]:
    """Indexes of one page. created_at order is pure index arithmetic; other orders sort keys."""
    if field == "created_at":
        if descending:
            if cursor is not None:
                return list(islice(selection.descending(cursor - 1), limit))
            start = selection.index_at(selection.count() - 1 - offset)
            return [] if start is None else list(islice(selection.descending(start), limit))
        if cursor is not None:
            return list(islice(selection.ascending(cursor + 1), limit))
        start = selection.index_at(offset)
        return [] if start is None else list(islice(selection.ascending(start), limit))
    if field == "updated_at" and descending:
        return _newest_updated(dataset, selection, limit, offset)
    if selection.count() > MAX_SORTED_USERS:
        raise _param_error(
            "order_by",
            f"the sandbox orders by {field} only up to {MAX_SORTED_USERS} users; use created_at or a filter",
        )
    key = _sort_key(dataset, field)
    keyed = [(key(i), i) for i in selection.ascending(selection.span.start)]
    present = sorted((k, i) for k, i in keyed if k is not None)
    missing = [i for k, i in keyed if k is None]
    # PostgreSQL's default: NULLs last when ascending, first when descending.
    ordered = [i for _k, i in reversed(present)] if descending else [i for _k, i in present]
    ordered = missing + ordered if descending else ordered + missing
    return ordered[offset : offset + limit]


def _newest_updated(dataset: Dataset, selection: _Selection, limit: int, offset: int) -> list[int]:
    """``-updated_at`` order without sorting every user per request (catch-ups page it): the
    generated order is sorted once, and users changed while serving come first."""
    members = None if selection.members is None else set(selection.members)
    page: list[int] = []
    skipped = 0
    for index in dataset.updated_order():
        if index not in selection.span or (members is not None and index not in members):
            continue
        if members is None and index in selection.excluded:
            continue
        if skipped < offset:
            skipped += 1
            continue
        page.append(index)
        if len(page) == limit:
            break
    return page


def _change_users(dataset: Dataset, body: Any, *, bans_bump: bool = True) -> dict[str, Any]:
    """Apply ``{"add": N, "change": {id: {first_name, last_name, banned, username}}, "password": [id], "delete": [id],
    "emails": {id: {"address": ..., "primary": bool}}, "remove_emails": {id: address}}`` (an email added, after the
    sign-ups: one of them can be named; then an email removed)."""
    if not isinstance(body, dict):
        raise ClerkApiError(400, "request_invalid", "invalid request", "the body must be a JSON object")

    def index(user_id: Any) -> int:
        found = dataset.index_of(user_id) if isinstance(user_id, str) else None
        if found is None or found in dataset.changes.deleted:
            raise ClerkApiError(404, "resource_not_found", "not found", f"No user was found with id {user_id}")
        return found

    try:
        for user_id, fields in (body.get("change") or {}).items():
            bump = bans_bump or set(fields) - {"banned"}
            dataset.change_user(index(user_id), dict(fields), bump=bool(bump))
        for user_id in body.get("password") or []:
            dataset.change_password(index(user_id), bump=bans_bump)
        for user_id in body.get("delete") or []:
            dataset.delete_user(index(user_id))
        added = dataset.add_users(int(body["add"])) if body.get("add") else []
        for user_id, email in (body.get("emails") or {}).items():
            dataset.add_email(index(user_id), str(email["address"]), primary=bool(email.get("primary")))
        for user_id, address in (body.get("remove_emails") or {}).items():
            dataset.remove_email(index(user_id), str(address))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ClerkApiError(422, "form_param_value_invalid", "is invalid", str(exc)) from None
    return {"added": added, "users": dataset.n - len(dataset.changes.deleted)}


# ------------------------------------------------------------------------------- the app


class _Gate:
    """Pure ASGI middleware: auth and rate limit before routing (as Clerk does), request counts,
    and a ClerkErrors 500 for any exception, so no stack trace ever reaches a client."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: list[BaseRoute],
        secret_key: str,
        limiter: FixedWindowRateLimiter | None,
        counts: dict[str, Counter[str]],
    ) -> None:
        self.app = app
        self.routes = routes
        self.secret_key = secret_key
        self.limiter = limiter
        self.counts = counts

    def _template(self, scope: Scope) -> str:
        for route in self.routes:
            match, _child = route.matches(scope)
            if match != Match.NONE:
                return getattr(route, "path", UNMATCHED_ROUTE)
        return UNMATCHED_ROUTE

    def _admission(self, scope: Scope) -> ClerkApiError | None:
        header = Headers(scope=scope).get("authorization")
        found = re.fullmatch(r"Bearer (\S+)", header or "")
        if found is None:
            return ClerkApiError(
                401,
                "authorization_header_format_invalid",
                "Invalid Authorization header format",
                "Must be 'Bearer <YOUR_API_KEY>'",
            )
        key = found.group(1)
        if not hmac.compare_digest(key.encode(), self.secret_key.encode()):
            return ClerkApiError(
                401,
                "clerk_key_invalid",
                "The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct.",
                "The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct.",
            )
        if self.limiter is not None:
            retry_after = self.limiter.acquire(key)
            if retry_after is not None:
                return ClerkApiError(
                    429,
                    "too_many_requests",
                    "Too many requests",
                    "Too many requests, retry later",
                    meta={"retry_after": retry_after},
                    headers={"Retry-After": str(retry_after)},
                )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        template = self._template(scope)
        statuses: list[int] = []

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            await send(message)

        try:
            rejection = None if scope["path"].startswith("/_sandbox/") else self._admission(scope)
            if rejection is not None:
                await rejection.response()(scope, receive, send_and_note)
            else:
                await self.app(scope, receive, send_and_note)
        except Exception:
            logger.exception("clerk sandbox: unhandled error on %s %s", scope["method"], scope["path"])
            if not statuses:
                error = ClerkApiError(
                    500,
                    "internal_clerk_error",
                    "Oops, an unexpected error occurred",
                    "There was an internal error on our servers. We've been notified.",
                )
                await error.response()(scope, receive, send_and_note)
        finally:
            if template != STATE_PATH:
                self.counts["requests"][f"{scope['method']} {template}"] += 1
                self.counts["statuses"][str(statuses[0] if statuses else 500)] += 1


@dataclass
class ClerkBehaviour:
    """Answers the real Clerk may give that the spec leaves open, switchable while serving (a test
    can end an outage mid-run by setting a field).

    ``cursor``: ``starting_after`` is honoured (the 2026-08 spec), ignored (an older API version
    answers page one again) or rejected with a 422 (a version that does not know the parameter).
    ``identity_filters``: ``GET /v1/users?email_address=`` (``phone_number``, ``username``) selects the
    holders (the spec), or is ignored and every user comes back (a reading to survive: the canary's and
    catch-up's search for the other holders of an identity must still end, with the same keeper).
    ``bans_and_passwords_bump_updated_at``: the spec does not say whether a ban or a password change
    moves a user's ``updated_at``; False: they do not (only ``migrator sync --full`` sees them).
    ``outage_after_pages``: after that many user pages, every ``GET /v1/users`` fails with
    ``outage_status`` until the field is set back to ``None``, or (``outage_seconds``) until that many
    seconds have passed since the first failure (``sandbox serve``, where no test can end it).
    ``organizations``: ``none`` plays an instance that never used organizations (its lists empty; its
    roles, the instance's defaults, still listed). ``role_permissions``: ``none`` lists every role
    without permissions (an instance that defined none).
    """

    cursor: Literal["honoured", "ignored", "rejected"] = "honoured"
    identity_filters: Literal["honoured", "ignored"] = "honoured"
    bans_and_passwords_bump_updated_at: bool = True
    outage_after_pages: int | None = None
    outage_status: int = 503
    pages_served: int = 0
    outage_seconds: float | None = None
    outage_began: float | None = None
    organizations: Literal["served", "none"] = "served"
    role_permissions: Literal["served", "none"] = "served"
    # Clerk's user lockout: after this many failed password attempts (10 by default since 2026-07-06,
    # 100 before) the user is ``locked`` for ``lockout_seconds``. Whether Backend API ``verify_password``
    # failures count is not documented (../shared/reference/lazy-migration.md, section 4): True plays
    # the reading where they do, False where only sign-ins through Clerk's own front end count.
    lockout_attempts: int = 10
    lockout_seconds: int = 3600
    verify_failures_count: bool = True

    def in_outage(self, now: float) -> bool:
        """Whether this user page fails; an outage with a duration ends by itself."""
        if self.outage_after_pages is None or self.pages_served < self.outage_after_pages:
            return False
        if self.outage_seconds is None:
            return True
        self.outage_began = now if self.outage_began is None else self.outage_began
        if now - self.outage_began < self.outage_seconds:
            return True
        self.outage_after_pages = self.outage_began = None
        return False


def build_clerk_app(
    dataset: Dataset,
    *,
    secret_key: str,
    requests_per_10s: int | None = 1000,
    clock: Callable[[], float] = time.monotonic,
    behaviour: ClerkBehaviour | None = None,
) -> Starlette:
    """A Starlette app serving ``dataset`` as Clerk would; ``requests_per_10s=None`` disables
    the rate limit. ``app.state.request_counts`` holds ``{"requests": ..., "statuses": ...}``;
    ``app.state.behaviour`` the :class:`ClerkBehaviour` switches."""
    behaviour = behaviour or ClerkBehaviour()
    failures: Counter[str] = Counter()  # failed verify_password attempts since the last success or lockout
    locked_since: dict[str, float] = {}

    def served(i: int) -> dict[str, Any]:
        """The user as Clerk shows it now: a lockout this app imposed shows in ``locked`` and its fields."""
        user = dataset.user(i)
        user_id = user["id"]
        since = locked_since.get(user_id)
        if since is not None and clock() - since >= behaviour.lockout_seconds:
            del locked_since[user_id]
            since = None
        if since is not None:
            remaining = math.ceil(behaviour.lockout_seconds - (clock() - since))
            user.update(locked=True, lockout_expires_in_seconds=remaining, verification_attempts_remaining=0)
        elif failures[user_id] and not user.get("locked"):
            user["verification_attempts_remaining"] = max(0, behaviour.lockout_attempts - failures[user_id])
        return user

    async def verify_password(request: Request) -> Response:
        """200 ``{"verified": true}``; 422 ``incorrect_password``; 400 ``no_password_set``; 404 (spec)."""
        user_id = request.path_params["user_id"]
        i = dataset.index_of(user_id)
        if i is None:
            raise ClerkApiError(404, "resource_not_found", "not found", f"No user was found with id {user_id}")
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        password = body.get("password") if isinstance(body, dict) else None
        if not isinstance(password, str):
            raise ClerkApiError(
                422, "form_param_missing", "missing", "password must be included.", meta={"param_name": "password"}
            )
        user = served(i)
        actual = dataset.clerk_password(user_id)
        if not user.get("password_enabled") or actual is None:
            raise ClerkApiError(400, "no_password_set", "no password set", "This user does not have a password set.")
        if hmac.compare_digest(password.encode(), actual.encode()):
            failures.pop(user_id, None)
            return JSONResponse({"verified": True})
        if behaviour.verify_failures_count and not user.get("locked"):
            failures[user_id] += 1
            if failures[user_id] >= behaviour.lockout_attempts:
                del failures[user_id]
                locked_since[user_id] = clock()
        raise ClerkApiError(
            422,
            "incorrect_password",
            "Password is incorrect. Try again, or use another method.",
            "Password is incorrect. Try again, or use another method.",
            meta={"param_name": "password"},
        )

    async def list_users(request: Request) -> Response:
        params = request.query_params
        if behaviour.in_outage(clock()):
            raise ClerkApiError(
                behaviour.outage_status,
                "internal_clerk_error",
                "Oops, an unexpected error occurred",
                "There was an internal error on our servers. We've been notified.",
            )
        behaviour.pages_served += 1
        if _first(params, "starting_after") and behaviour.cursor == "rejected":
            raise _unsupported("starting_after")
        if behaviour.cursor == "ignored":
            params = QueryParams([(k, v) for k, v in params.multi_items() if k != "starting_after"])
        limit, offset = _paging(params)
        field, descending = _order_param(params, USER_ORDER_FIELDS)
        selection = _select_users(dataset, params, behaviour.identity_filters == "honoured")
        cursor = None
        starting_after = _first(params, "starting_after")
        if starting_after:
            if field != "created_at":
                raise _param_error("starting_after", "starting_after requires ordering by created_at")
            if offset != 0:
                raise _param_error("starting_after", "starting_after cannot be combined with a non-zero offset")
            cursor = dataset.index_of(starting_after)
            if cursor is None:
                raise _param_error("starting_after", f"no user was found with id {starting_after}")
        page = _user_page(dataset, selection, field, descending, limit, offset, cursor)
        return JSONResponse([served(i) for i in page])

    async def count_users(request: Request) -> Response:
        selection = _select_users(dataset, request.query_params)
        return JSONResponse({"object": "total_count", "total_count": selection.count()})

    async def list_organizations(request: Request) -> Response:
        params = request.query_params
        _reject_unsupported(params, UNSUPPORTED_ORGANIZATION_PARAMS)
        limit, offset = _paging(params)
        field, descending = _order_param(params, frozenset({"created_at", "name", "members_count"}))
        with_counts = _bool_param(params, "include_members_count")
        total = dataset.n_organizations if behaviour.organizations == "served" else 0
        if field == "created_at":
            positions = range(total)[::-1] if descending else range(total)
            chosen = list(positions[offset : offset + limit])
        else:
            counts = dataset.organization_member_counts() if field == "members_count" else None
            keyed = sorted(((counts[j] if counts else dataset.organization(j)["name"]), j) for j in range(total))
            ordered = [j for _k, j in (reversed(keyed) if descending else keyed)]
            chosen = ordered[offset : offset + limit]
        data = []
        for j in chosen:
            organization = dataset.organization(j)
            if with_counts:
                organization["members_count"] = dataset.organization_member_counts()[j]
            data.append(organization)
        return JSONResponse({"data": data, "total_count": total})

    async def list_memberships(request: Request) -> Response:
        params = request.query_params
        limit, offset = _paging(params)
        # Other orders (email_address, username, ...) would need every member's user data.
        _field, descending = _order_param(params, frozenset({"created_at"}))
        total = dataset.membership_count if behaviour.organizations == "served" else 0
        positions = range(total)[::-1] if descending else range(total)
        data = [dataset.membership(p) for p in positions[offset : offset + limit]]
        return JSONResponse({"data": data, "total_count": total})

    async def list_roles(request: Request) -> Response:
        params = request.query_params
        _reject_unsupported(params, UNSUPPORTED_ROLE_PARAMS)
        limit, offset = _paging(params)
        field, descending = _order_param(params, frozenset({"created_at", "name", "key"}))
        roles = sorted(dataset.roles(), key=lambda role: role[field], reverse=descending)
        if behaviour.role_permissions == "none":
            roles = [{**role, "permissions": []} for role in roles]
        return JSONResponse({"data": roles[offset : offset + limit], "total_count": len(roles)})

    async def sandbox_password(request: Request) -> Response:
        user_id = request.path_params["user_id"]
        if dataset.index_of(user_id) is None:
            raise ClerkApiError(404, "resource_not_found", "not found", f"No user was found with id {user_id}")
        plaintext = dataset.plaintext(user_id)
        if plaintext is None:
            raise ClerkApiError(
                404, "resource_not_found", "not found", f"User {user_id} has no password digest in the export"
            )
        return JSONResponse({"password": plaintext})

    async def sandbox_change_users(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        return JSONResponse(_change_users(dataset, body, bans_bump=behaviour.bans_and_passwords_bump_updated_at))

    async def sandbox_state(request: Request) -> Response:
        counts = request.app.state.request_counts
        return JSONResponse({"requests": dict(counts["requests"]), "statuses": dict(counts["statuses"])})

    async def on_clerk_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ClerkApiError)
        return exc.response()

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return ClerkApiError(404, "resource_not_found", "not found", "Resource not found").response()
        if exc.status_code == 405:
            return ClerkApiError(
                405, "request_method_not_allowed", "method not allowed", f"{request.method} is not allowed here"
            ).response()
        return ClerkApiError(exc.status_code, "request_invalid", "invalid request", str(exc.detail)).response()

    routes: list[BaseRoute] = [
        Route("/v1/users", list_users, methods=["GET"]),
        Route("/v1/users/count", count_users, methods=["GET"]),
        Route("/v1/users/{user_id}/verify_password", verify_password, methods=["POST"]),
        Route("/v1/organizations", list_organizations, methods=["GET"]),
        Route("/v1/organization_memberships", list_memberships, methods=["GET"]),
        Route("/v1/organization_roles", list_roles, methods=["GET"]),
        Route("/_sandbox/users/{user_id}/password", sandbox_password, methods=["GET"]),
        Route(STATE_PATH, sandbox_state, methods=["GET"]),
        Route(CHANGES_PATH, sandbox_change_users, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={ClerkApiError: on_clerk_error, HTTPException: on_http_error},
    )
    limiter = None
    if requests_per_10s is not None:
        limiter = FixedWindowRateLimiter(requests_per_10s, clock=clock)
    counts: dict[str, Counter[str]] = {"requests": Counter(), "statuses": Counter()}
    app.state.dataset = dataset
    app.state.behaviour = behaviour
    app.state.rate_limiter = limiter
    app.state.request_counts = counts
    app.add_middleware(_Gate, routes=routes, secret_key=secret_key, limiter=limiter, counts=counts)
    return app
