"""Local emulator of the slice of Kinde's Management API the migrator uses, plus sandbox-only endpoints.

Kinde is not reachable from here, so the demo, the tests and the benchmarks run against this app;
what it does is what our claims rest on. Kinde's official OpenAPI spec (kinde-management-api.yaml)
is the truth for paths, bodies and response shapes; where the real behaviour is unknown, the choice
made here is written next to it, marked GUESS, and made configurable when the migrator must cope
with either answer.

Behaviours worth knowing (details at each handler):

* ``POST /oauth2/token``: client_credentials only, form-encoded; client id/secret in the body or
  HTTP Basic; ``audience`` must be ``<this server's base URL>/api``. Errors use the OAuth2 shape
  ``{"error", "error_description"}`` (RFC 6749 §5.2), not Kinde's envelope. The optional ``scope``
  parameter narrows the grant. Tokens are JWTs as Kinde's "Token structure and claims for M2M
  applications" shows them (``aud``, ``azp``, ``exp``, ``gty``, ``iat``, ``iss``, ``jti``, scopes in
  ``scope`` and/or ``scp``: ``scope_claims``), signed HS256 with this app's own key, which every API
  call checks; ``token_format="opaque"`` issues random strings instead. The answer's ``scope`` field
  (optional in RFC 6749 §5.1, absent from Kinde's documented example) is ``answer_scope``: absent,
  present or empty. Each token is also recorded server side (scopes, expiry, uses).
* Every ``/api/`` error is Kinde's envelope ``{"errors": [{"code", "message"}]}``, or
  ``{"errors": {"code", "message"}}`` when ``error_shape="object"``. Every 404 uses the object form,
  because that is the spec's ``not_found_response`` (code ``ROUTE_NOT_FOUND`` for unknown routes).
* A missing, unknown, badly signed or expired token is refused with ``bad_token_status`` (401, as
  Kinde's docs say; 403 as its spec, which lists no 401, has it); a missing scope with
  ``missing_scope_status`` (403) naming the scope. ``token_max_uses`` makes a token expire after that
  many API calls, so a test can have one expire mid-run without waiting. Authentication and scope
  are checked before the body is parsed, so a bad token never learns about a bad body.
* Rate limit (``rate_limit_rps``): a token bucket refilled at ``rps`` tokens per second, capacity
  ``max(1, rps)`` (one second's burst), full at start, checked before authentication for every
  ``/api/`` and ``/oauth2/`` request. A rejected request consumes nothing. The 429 carries
  ``RateLimit-Reset`` and/or ``Retry-After`` (``rate_limit_headers``): when a token is free, at
  least 1 s away, as whole seconds, an epoch timestamp or an HTTP date (``rate_limit_reset_form``;
  GUESS: Kinde documents seconds; gateways send the others).
* Shared quota (``shared_quota``): another client of the same business (the live app) takes a
  share of the bucket's refill during a window of time, then stops, so the migrator meets a limit
  that steps down and back up. The window is timed from the first rate-limited request.
* Uniqueness: email (ignoring case), username (ignoring case), phone (exact E.164). GUESS: the
  real status and code are undocumented; ``duplicate_status`` / ``duplicate_code`` choose them.
  ``provided_id`` is *not* unique (nothing says Kinde enforces it), which is why the state counts
  creations per ``provided_id``: tests prove nothing was created twice.
* An unknown user id answers ``unknown_user_status`` (default 404, USER_NOT_FOUND). The spec
  declares only 400/403/429 for those operations, so 400 is available for the migrator's tests.
  An unknown organization code or role id answers ``unknown_organization_status`` /
  ``unknown_role_status`` (default 400, ORGANIZATION_NOT_FOUND / ROLE_NOT_FOUND, the spec's examples).
  ``refused_route`` plays a Kinde (or gateway) that does not serve a route: 404 ROUTE_NOT_FOUND to every
  request on it, which proves nothing about the thing asked for.
* Organizations: a "Default Organization" (``is_default``, no external_id) exists from the start,
  as in every Kinde business. ASSUMPTION: a second organization with the same ``external_id`` (or
  ``handle``) is a 400. Adding users to an organization validates every user, role and permission
  key first (400, nothing applied), accepts at most 100 users, and is idempotent: a user already a
  member gets the new role/permission keys merged in and is not listed in ``users_added``.
* Properties must be defined (``POST /api/v1/properties`` with an existing ``category_id``, context
  ``usr``) before ``PATCH /api/v1/users/{id}/properties`` sets them; values are strings (or null to
  clear).
* Passwords: ``PUT /api/v1/users/{id}/password`` stores the body as received; the hash is never
  echoed anywhere (``/_sandbox/state`` shows only the method).
* Lists page with an opaque ``next_token`` (omitted on the last page); ``page_size`` defaults to 10
  and must be 1..500. Properties and categories page with ``starting_after``/``ending_before`` and
  ``has_more``, as the spec says.
* Fields the spec types as non-nullable strings are omitted when unset rather than sent as null.

Sandbox-only endpoints (outside the real API paths, never rate limited):
``POST /_sandbox/sign-in`` ``{"email", "password"}`` -> 200 / 401 / 404, verifying against the stored
hash with :func:`migrator.sandbox.hashing.verify_kinde_password`; ``GET /_sandbox/state`` -> every
user, organization, role, permission, property and request count. To change Kinde behind the
migrator's back (tests of ``migrator verify``): ``DELETE /_sandbox/users/{id}``; ``POST
/_sandbox/users/{id}/duplicate`` (a second user with the same identities, uniqueness bypassed;
``{"provided_id": ...}`` optional); ``PATCH /_sandbox/users/{id}`` (names, flags, ``provided_id``,
``remove_identities``, ``unverify``, ``leave_organizations``, ``roles``, ``properties``, ``remove_social``);
``PATCH /_sandbox/roles/{key}`` (``remove_permissions``).

Environment variables (``/api/v1/environment_variables``, as the spec says; a secret's ``value`` reads back
as null) are what ``kinde.env`` gives a lazy-migration workflow at ``/_sandbox/sign-in``: a variable Kinde
holds wins over the configured default (``workflow_env``, the M2M client) of the same key.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs

import bcrypt
import jwt
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from migrator.sandbox.faults import ResetForm, reset_headers
from migrator.sandbox.hashing import validate_kinde_password_body, verify_kinde_password
from migrator.sandbox.kinde_import import Importer, Rejected
from migrator.sandbox.workflow import EXISTING_PASSWORD_TRIGGER, WorkflowOutcome, bundle_workflow, run_workflow

logger = logging.getLogger(__name__)

ALL_SCOPES: frozenset[str] = frozenset(
    {
        "read:users",
        "create:users",
        "update:users",
        "delete:users",
        "update:user_passwords",
        "update:user_properties",
        "create:user_identities",
        "read:user_identities",
        "delete:identities",
        "update:identities",
        "read:organization_users",
        "read:organization_user_roles",
        "read:user_properties",
        "read:role_permissions",
        "update:role_permissions",
        "read:organization_properties",
        "update:organization_properties",
        "create:organizations",
        "read:organizations",
        "delete:organizations",
        "create:organization_users",
        "read:roles",
        "create:roles",
        "delete:roles",
        "read:permissions",
        "create:permissions",
        "read:properties",
        "create:properties",
        "read:property_categories",
        "create:property_categories",
        # an undo's deletions of definitions (property definitions, permissions, role permissions)
        "delete:role_permissions",
        "delete:permissions",
        "delete:properties",
        # lazy migration: the Kinde environment variables its workflow reads (`migrator lazy setup`)
        "read:environment_variables",
        "create:environment_variables",
        "update:environment_variables",
        "delete:environment_variables",
    }
)

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 10
MAX_USERS_PER_ORG_CALL = 100
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_UNMATCHED_ROUTE = "<unmatched>"
VARIABLES = "/api/v1/environment_variables"
VARIABLE = "/api/v1/environment_variables/{variable_id}"


@dataclass(frozen=True)
class SharedQuota:
    """Another client takes ``share`` (0..1) of the rate limit for ``duration`` seconds, from
    ``start`` seconds after the first rate-limited request."""

    share: float
    start: float
    duration: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0 or self.start < 0 or self.duration < 0:
            raise ValueError(f"shared_quota needs 0 <= share <= 1 and start, duration >= 0; got {self!r}")


@dataclass
class KindeSandboxConfig:
    """How the emulated Kinde business behaves; every uncertain behaviour of the real API is here."""

    client_id: str = "sandbox-m2m-client"
    client_secret: str = "sandbox-m2m-secret"
    scopes: frozenset[str] = ALL_SCOPES
    token_lifetime: int = 3600
    duplicate_status: int = 400
    # GUESS: Kinde documents no code for "email/username already in use"; this one is plausible.
    duplicate_code: str = "USER_ALREADY_EXISTS"
    rate_limit_rps: float | None = None
    rate_limit_headers: tuple[str, ...] = ("RateLimit-Reset",)
    rate_limit_reset_form: ResetForm = "seconds"
    shared_quota: SharedQuota | None = None
    error_shape: Literal["list", "object"] = "list"
    clock: Callable[[], float] = time.monotonic
    # GUESS: the spec lists no 404 for user-id operations (400 is the only client error it names).
    unknown_user_status: int = 404
    # The same question for an unknown organization code (ORGANIZATION_NOT_FOUND) and role id (ROLE_NOT_FOUND):
    # the spec's examples answer 400; 404 plays the other reading.
    unknown_organization_status: int = 400
    unknown_role_status: int = 400
    # A Kinde (or a gateway in front of it) that does not serve a route answers 404 ROUTE_NOT_FOUND to every
    # request on it, which says nothing about the thing asked for: "user" refuses /api/v1/user (GET, PATCH,
    # DELETE, POST), "organization" /api/v1/organization/{org_code}, "role" /api/v1/roles/{role_id}.
    refused_route: Literal["none", "user", "organization", "role"] = "none"
    # A create whose identity Kinde refuses (in use, or against its rules) may still create the user
    # and answer that identity with ``result.created: false``: phones starting with one of these
    # prefixes are refused that way, and (``partial_duplicates``) so is an email/username/phone in use.
    refused_phone_prefixes: tuple[str, ...] = ()
    partial_duplicates: bool = False
    # The spec lets the users list expand a user's organizations; a Kinde that ignores that expand (an older
    # deployment, a gateway stripping the query) lists none: "ignored" plays it (verify then reads member pages).
    users_list_organizations: Literal["listed", "ignored"] = "listed"
    # GUESS: adding a user already in an organization is accepted (merged); 400 plays the other reading.
    existing_member_status: int = 200
    # Tokens: JWTs as Kinde issues them, or opaque strings as some authorization servers do.
    token_format: Literal["jwt", "opaque"] = "jwt"
    # Which claims carry the scopes: Kinde's docs show both (``scp`` only "in newer tokens").
    scope_claims: Literal["scope", "scp", "both", "none"] = "both"
    # The token answer's ``scope`` field: optional (RFC 6749 §5.1); Kinde's documented answer has none.
    answer_scope: Literal["absent", "present", "empty"] = "absent"
    # GUESS: Kinde's docs refuse a bad or expired token with 401, its spec lists only 403 for every call.
    bad_token_status: Literal[401, 403] = 401
    missing_scope_status: Literal[401, 403] = 403
    # A token expires after this many API calls (None: only its lifetime ends it).
    token_max_uses: int | None = None
    # GUESS: the spec gives GET /api/v1/users/{id}/identities no page size; it pages with
    # starting_after/has_more. A small value here proves the migrator follows has_more.
    identities_page_size: int = 10
    # GUESS: whether Kinde puts every new user in the business's default organization is not
    # documented; True plays the reading where it does (verify must not call that drift).
    default_org_joins_new_users: bool = False
    # GUESS: the spec lists ``connection_id`` on each identity of ``GET /users/{id}/identities``; whether
    # social identities really carry it is unknown, so it can be left out (the migrator matches by value).
    identity_connection_id: bool = True
    # GUESS: the spec's 201 to POST /api/v1/users/{id}/identities has an optional ``identity.id``; whether Kinde
    # always sends it is unknown. False leaves it out (the migrator finds the identity by type and value).
    added_identity_id: bool = True
    # Dashboard import (POST /_sandbox/import): the docs' CSV column table says role_key, their
    # examples say roles; D-BULK says email is required, D-IMPORT says email or phone.
    import_role_header: Literal["role_key", "roles"] = "role_key"
    import_csv_requires: Literal["email", "email-or-phone"] = "email"
    # An imported password's first sign-in. D-IMPORT's "weak passwords" section: a CSV row without TRUE in
    # ``password_verified`` gets a one-time code at first sign-in ("column", the strict reading); its column
    # table has no such column and says email_verified TRUE takes effect with an imported password
    # ("email-verified": that flag decides instead).
    import_password_verified: Literal["column", "email-verified"] = "column"
    # The current NDJSON schema has no password_verified: a password signs in without a code only for a
    # user with a verified email identity ("identity", strict: an identity without is_verified is not),
    # or whatever the flags say ("always").
    import_ndjson_verified: Literal["identity", "always"] = "identity"
    # The NDJSON's top-level email/email_verified belong to a schema Kinde removed: ignored ("current") or
    # still read as the user's email ("legacy").
    import_ndjson_schema: Literal["current", "legacy"] = "current"
    # The social connections the business has enabled, by the NDJSON's oauth2 provider (("google",
    # "conn_..."),): an imported ``oauth2:*`` identity of another provider is not linked (listed unassigned).
    import_connections: tuple[tuple[str, str], ...] = ()
    # GUESS: what DELETE /api/v1/permissions/{id} does to a permission roles still carry (the spec says
    # nothing): detach it from them, or refuse with 400.
    permission_delete_in_use: Literal["detach", "refuse"] = "detach"
    # GUESS: what DELETE /api/v1/properties/{id} does when users or organizations hold a value: drop the
    # values with it, or refuse with 400.
    property_delete_with_values: Literal["cascade", "refuse"] = "cascade"
    # Lazy migration: the workflow folder (``migrator lazy init``) Kinde runs on the existing-password
    # trigger at ``POST /_sandbox/sign-in``, bundled when the app is built; None: no workflow.
    workflow: Path | None = None
    # GUESS (../shared/reference/lazy-migration.md, section 2): for whom the trigger fires. "absent": an
    # email Kinde does not hold (the documented pattern, with enumeration protection on); "passwordless":
    # a user Kinde holds without a password (undocumented; without a workflow such users get a one-time
    # code); "both".
    workflow_fires_for: Literal["absent", "passwordless", "both"] = "absent"
    # GUESS (../shared/reference/lazy-migration.md, section 1): Kinde's docs show ``hashedPassword`` (its hash
    # of the typed password) in the event, its typings declare only ``password``. "absent" plays the typings.
    workflow_event_hash: Literal["present", "absent"] = "present"
    # Kinde environment variables the workflow reads (the Clerk key is sent as a secret); the M2M
    # credentials (KINDE_WF_M2M_CLIENT_ID/SECRET) are this config's client. Filled by ``server.Sandbox``.
    workflow_env: dict[str, str] = field(default_factory=dict)
    workflow_secrets: frozenset[str] = frozenset({"CLERK_SECRET_KEY", "KINDE_WF_M2M_CLIENT_SECRET"})
    # GUESS: whether a null in PATCH .../properties clears a value (the spec's ``properties`` object does
    # not type its values), or is refused with 400 (then only the empty string empties it).
    property_null_value: Literal["clears", "refused"] = "clears"


class KindeError(Exception):
    """An error answer. ``oauth`` selects RFC 6749's body instead of Kinde's envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        oauth: bool = False,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.oauth = oauth


def _invalid(message: str) -> KindeError:
    return KindeError(400, "INVALID_REQUEST", message)


def error_payload(code: str, message: str, shape: Literal["list", "object"]) -> dict[str, Any]:
    """Kinde's error envelope, as a list of errors or (as some Kinde answers have it) one object."""
    error = {"code": code, "message": message}
    return {"errors": error if shape == "object" else [error]}


def make_error_body(config: KindeSandboxConfig) -> Callable[[int], bytes]:
    """An ``error_body`` for :class:`~migrator.sandbox.faults.FaultMiddleware` in front of this app."""
    codes = {429: ("TOO_MANY_REQUESTS", "Request was throttled.")}

    def render(status: int) -> bytes:
        code, message = codes.get(status, ("INTERNAL_SERVER_ERROR", "Something went wrong."))
        return json.dumps(error_payload(code, message, config.error_shape)).encode()

    return render


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _without_none(values: dict[str, Any], *, nullable: Iterable[str] = ()) -> dict[str, Any]:
    """Drop unset fields the spec types as non-nullable; keep the nullable ones as null."""
    keep = set(nullable)
    return {key: value for key, value in values.items() if value is not None or key in keep}


# --------------------------------------------------------------------------------------------
# Store
# --------------------------------------------------------------------------------------------


@dataclass
class _Identity:
    type: str
    value: str
    is_verified: bool
    connection_id: str | None = None  # social and enterprise identities
    id: str = field(default_factory=lambda: f"identity_{uuid.uuid4().hex}")


@dataclass
class _User:
    id: str
    seq: int
    created_on: str
    provided_id: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    picture: str | None = None
    identities: list[_Identity] = field(default_factory=list)
    is_suspended: bool = False
    is_password_reset_requested: bool = False
    password: dict[str, Any] | None = None
    properties: dict[str, str] = field(default_factory=dict)
    total_sign_ins: int = 0
    failed_sign_ins: int = 0
    last_signed_in: str | None = None
    one_time_code: bool = False  # imported password not marked verified: the first sign-in asks for a code

    def first(self, identity_type: str) -> str | None:
        return next((i.value for i in self.identities if i.type == identity_type), None)


@dataclass
class _Membership:
    roles: list[str] = field(default_factory=list)
    permissions: list[str] = field(default_factory=list)


@dataclass
class _Organization:
    code: str
    seq: int
    name: str
    external_id: str | None = None
    handle: str | None = None
    is_default: bool = False
    is_auto_membership_enabled: bool = False
    members: dict[str, _Membership] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)


@dataclass
class _Role:
    id: str
    seq: int
    key: str
    name: str
    description: str | None
    is_default_role: bool
    permission_ids: list[str] = field(default_factory=list)


@dataclass
class _Permission:
    id: str
    seq: int
    key: str
    name: str
    description: str | None


@dataclass
class _Category:
    id: str
    seq: int
    name: str
    context: str


@dataclass
class _PropertyDefinition:
    id: str
    seq: int
    key: str
    name: str
    description: str | None
    type: str
    context: str
    is_private: bool
    category_id: str


@dataclass
class _Variable:
    """A Kinde environment variable (``/api/v1/environment_variables``); a secret's value is never read back."""

    id: str
    seq: int
    key: str
    value: str
    is_secret: bool
    created_on: str

    def item(self) -> dict[str, Any]:
        value = None if self.is_secret else self.value
        return {"id": self.id, "key": self.key, "value": value, "is_secret": self.is_secret, "created_on": self.created_on}


@dataclass
class _Token:
    scopes: frozenset[str]
    expires_at: float
    uses: int = 0
    refused_as_expired: bool = False
    signature_checked: bool = False  # these exact bytes verified once (50 us a check; the store keys them)


@dataclass
class RequestLog:
    """Requests received, per ``METHOD /path/template`` and per status, for tests and benchmarks."""

    total: int = 0
    by_route: dict[str, Counter[int]] = field(default_factory=dict)
    by_status: Counter[int] = field(default_factory=Counter)
    first_request_at: float | None = None
    last_request_at: float | None = None
    in_flight: int = 0
    max_in_flight: int = 0

    def arrived(self) -> None:
        """A request came in: ``first_request_at`` is when the first one arrived."""
        if self.first_request_at is None:
            self.first_request_at = time.time()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def finished(self, route: str, status: int) -> None:
        """A request was answered: ``last_request_at`` is when the last answer went out."""
        self.in_flight -= 1
        self.total += 1
        self.by_route.setdefault(route, Counter())[status] += 1
        self.by_status[status] += 1
        self.last_request_at = time.time()

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_route": {
                route: {"total": sum(statuses.values()), "by_status": {str(s): n for s, n in sorted(statuses.items())}}
                for route, statuses in sorted(self.by_route.items())
            },
            "by_status": {str(s): n for s, n in sorted(self.by_status.items())},
            "first_request_at": self.first_request_at,
            "last_request_at": self.last_request_at,
            "max_in_flight": self.max_in_flight,
        }


class KindeStore:
    """Everything the emulated Kinde business holds.

    Mutated from the app's event loop; the re-entrant lock lets a test thread read a consistent
    snapshot while a uvicorn thread serves requests.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._seq = 0
        self.users: dict[str, _User] = {}
        self.emails: dict[str, str] = {}  # lower-cased email -> user id
        self.usernames: dict[str, str] = {}  # lower-cased username -> user id
        self.phones: dict[str, str] = {}  # E.164 -> user id
        self.organizations: dict[str, _Organization] = {}
        self.roles: dict[str, _Role] = {}
        self.permissions: dict[str, _Permission] = {}
        self.categories: dict[str, _Category] = {}
        self.property_definitions: dict[str, _PropertyDefinition] = {}
        self.tokens: dict[str, _Token] = {}
        self.environment_variables: dict[str, _Variable] = {}
        self.tokens_issued = 0
        self.requests = RequestLog()
        self.creations_by_provided_id: Counter[str] = Counter()
        self.workflow_runs: list[dict[str, Any]] = []  # each sign-in the workflow ran for, and its outcome
        self.workflow_log: list[str] = []  # the workflow's console output, one entry per run
        default_code = self.new_org_code()
        self.organizations[default_code] = _Organization(
            code=default_code, seq=self.next_seq(), name="Default Organization", is_default=True
        )

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def new_user_id(self) -> str:
        return "kp_" + secrets.token_hex(16)

    def new_org_code(self) -> str:
        while True:
            code = "org_" + secrets.token_hex(6)[:11]
            if code not in self.organizations:
                return code

    def role_by_key(self, key: str) -> _Role | None:
        return next((role for role in self.roles.values() if role.key == key), None)

    def permission_by_key(self, key: str) -> _Permission | None:
        return next((p for p in self.permissions.values() if p.key == key), None)

    def property_by_key(self, key: str) -> _PropertyDefinition | None:
        return next((p for p in self.property_definitions.values() if p.key == key), None)

    def user_by_email(self, email: str) -> _User | None:
        user_id = self.emails.get(email.lower())
        return self.users.get(user_id) if user_id else None

    # ---- what the dashboard import (sandbox/kinde_import.py) needs ----------------------

    def import_user(self, fields: Mapping[str, Any]) -> str:
        user = _User(
            id=self.new_user_id(),
            seq=self.next_seq(),
            created_on=_now_iso(),
            provided_id=fields.get("provided_id"),
            given_name=fields.get("given_name"),
            family_name=fields.get("family_name"),
            identities=[_Identity(*identity) for identity in fields["identities"]],
            password=fields.get("password"),
            properties=dict(fields.get("properties") or {}),
            is_password_reset_requested=bool(fields.get("reset")),
            one_time_code=bool(fields.get("one_time_code")),
        )
        self.users[user.id] = user
        for identity in user.identities:
            if identity.type == "social":
                continue
            index = {"email": self.emails, "phone": self.phones, "username": self.usernames}[identity.type]
            index[identity.value if identity.type == "phone" else identity.value.lower()] = user.id
        return user.id

    def user_id_by_provided_id(self, provided_id: str) -> str | None:
        return next((u.id for u in self.users.values() if u.provided_id == provided_id), None)

    def identity_taken(self, identity_type: str, value: str) -> bool:
        index = {"email": self.emails, "phone": self.phones, "username": self.usernames}[identity_type]
        return (value if identity_type == "phone" else value.lower()) in index

    def organization_by_external_id(self, external_id: str) -> str | None:
        return next((o.code for o in self.organizations.values() if o.external_id == external_id), None)

    def role_exists(self, key: str) -> bool:
        return self.role_by_key(key) is not None

    def add_member(self, org_code: str, user_id: str, roles: list[str]) -> None:
        membership = self.organizations[org_code].members.setdefault(user_id, _Membership())
        membership.roles.extend(key for key in roles if key not in membership.roles)

    def import_organization(self, name: str, external_id: str) -> bool:
        if self.organization_by_external_id(external_id) is not None:
            return False
        code = self.new_org_code()
        self.organizations[code] = _Organization(code=code, seq=self.next_seq(), name=name, external_id=external_id)
        return True

    def snapshot(self) -> dict[str, Any]:
        """Everything, as JSON-ready data; password hashes never appear, only their method."""
        with self.lock:
            memberships: dict[str, list[dict[str, Any]]] = {}
            for org in self.organizations.values():
                for user_id, membership in org.members.items():
                    memberships.setdefault(user_id, []).append(
                        {"code": org.code, "roles": list(membership.roles), "permissions": list(membership.permissions)}
                    )
            users = [
                {
                    "id": user.id,
                    "provided_id": user.provided_id,
                    "given_name": user.given_name,
                    "family_name": user.family_name,
                    "picture": user.picture,
                    "identities": [
                        _without_none(
                            {
                                "type": i.type,
                                "value": i.value,
                                "is_verified": i.is_verified,
                                "connection_id": i.connection_id,
                            }
                        )
                        for i in user.identities
                    ],
                    "password_method": _password_method(user.password),
                    "is_temporary_password": bool(user.password.get("is_temporary_password"))
                    if user.password
                    else None,
                    "is_password_reset_requested": user.is_password_reset_requested,
                    "is_suspended": user.is_suspended,
                    "organizations": memberships.get(user.id, []),
                    "properties": dict(user.properties),
                    "created_on": user.created_on,
                    "total_sign_ins": user.total_sign_ins,
                    "failed_sign_ins": user.failed_sign_ins,
                    "one_time_code": user.one_time_code,
                }
                for user in sorted(self.users.values(), key=lambda u: u.seq)
            ]
            return {
                "users": users,
                "organizations": [
                    {
                        "code": org.code,
                        "name": org.name,
                        "external_id": org.external_id,
                        "handle": org.handle,
                        "is_default": org.is_default,
                        "members": list(org.members),
                        "properties": dict(org.properties),
                    }
                    for org in sorted(self.organizations.values(), key=lambda o: o.seq)
                ],
                "roles": [
                    {
                        **_role_item(role),
                        "permissions": [self.permissions[p].key for p in role.permission_ids if p in self.permissions],
                    }
                    for role in sorted(self.roles.values(), key=lambda r: r.seq)
                ],
                "permissions": [_permission_item(p) for p in sorted(self.permissions.values(), key=lambda p: p.seq)],
                "property_categories": [
                    {"id": c.id, "name": c.name, "context": c.context}
                    for c in sorted(self.categories.values(), key=lambda c: c.seq)
                ],
                "properties": [
                    {"id": p.id, "key": p.key, "name": p.name, "type": p.type, "context": p.context}
                    for p in sorted(self.property_definitions.values(), key=lambda p: p.seq)
                ],
                "requests": self.requests.snapshot(),
                "creations_by_provided_id": dict(self.creations_by_provided_id),
                "duplicate_creations": sorted(pid for pid, n in self.creations_by_provided_id.items() if n > 1),
                "tokens_issued": self.tokens_issued,
                "environment_variables": [
                    v.item() for v in sorted(self.environment_variables.values(), key=lambda v: v.seq)
                ],
                "workflow_runs": [dict(run) for run in self.workflow_runs],
                "workflow_log": "".join(self.workflow_log),
                "tokens_refused_as_expired": sum(t.refused_as_expired for t in self.tokens.values()),
            }


def _audience(request: Request) -> str:
    """The Management API's audience: this server's base URL + ``/api``."""
    return str(request.base_url).rstrip("/") + "/api"


def _password_method(record: Mapping[str, Any] | None) -> str | None:
    if record is None:
        return None
    return str(record.get("hashing_method") or "bcrypt")  # the spec's default


def _role_item(role: _Role) -> dict[str, Any]:
    return _without_none(
        {
            "id": role.id,
            "key": role.key,
            "name": role.name,
            "description": role.description,
            "is_default_role": role.is_default_role,
        },
        nullable=("description",),
    )


def _permission_item(permission: _Permission) -> dict[str, Any]:
    return _without_none(
        {"id": permission.id, "key": permission.key, "name": permission.name, "description": permission.description}
    )


# --------------------------------------------------------------------------------------------
# Request parsing helpers
# --------------------------------------------------------------------------------------------

T = TypeVar("T")


class _Body:
    """Typed access to a JSON object body: a wrong type is a 400 naming the field, never a crash."""

    def __init__(self, data: Mapping[str, Any], where: str = "") -> None:
        self.data = data
        self.where = where

    def _name(self, key: str) -> str:
        return f"{self.where}{key}"

    def _get(self, key: str, kind: type | tuple[type, ...], kind_name: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None:
            if required:
                raise _invalid(f"'{self._name(key)}' is required")
            return None
        # bool is an int in Python; JSON true is never an integer here.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _invalid(f"'{self._name(key)}' must be {kind_name}")
        return value

    def text(self, key: str, *, required: bool = False) -> str | None:
        return self._get(key, str, "a string", required)

    def required_text(self, key: str) -> str:
        value = self._get(key, str, "a string", True)
        if not value.strip():
            raise _invalid(f"'{self._name(key)}' must not be empty")
        return value

    def flag(self, key: str, *, required: bool = False) -> bool | None:
        return self._get(key, bool, "a boolean", required)

    def obj(self, key: str, *, required: bool = False) -> _Body | None:
        value = self._get(key, dict, "an object", required)
        return None if value is None else _Body(value, f"{self._name(key)}.")

    def array(self, key: str, *, required: bool = False) -> list[Any] | None:
        return self._get(key, list, "an array", required)

    def text_list(self, key: str) -> list[str]:
        values = self.array(key) or []
        if not all(isinstance(v, str) for v in values):
            raise _invalid(f"'{self._name(key)}' must be an array of strings")
        return values

    def choice(self, key: str, allowed: Sequence[str], *, required: bool = False) -> str | None:
        value = self.text(key, required=required)
        if value is not None and value not in allowed:
            raise _invalid(f"'{self._name(key)}' must be one of {', '.join(allowed)}")
        return value


def _csv(params: QueryParams, name: str) -> list[str] | None:
    """A comma-separated query filter as a list, or None when the parameter is absent."""
    raw = params.get(name)
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def _query_bool(params: QueryParams, name: str) -> bool | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise _invalid(f"'{name}' must be true or false")


def _page_size(params: QueryParams) -> int:
    raw = params.get("page_size")
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise _invalid("'page_size' must be an integer") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise _invalid(f"'page_size' must be between 1 and {MAX_PAGE_SIZE}")
    return size


def _encode_token(key: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _decode_token(token: str) -> tuple[Any, ...]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        raise _invalid("'next_token' is not valid") from None
    if not isinstance(decoded, list):
        raise _invalid("'next_token' is not valid")
    return tuple(decoded)


def _paginate(
    items: Iterable[T],
    key: Callable[[T], tuple[Any, ...]],
    params: QueryParams,
    *,
    descending: bool = False,
) -> tuple[list[T], str | None]:
    """One page after ``next_token``: the token is the sort key of the last item returned, so
    inserts and deletes between pages neither repeat nor skip anyone."""
    ordered = sorted(items, key=key, reverse=descending)
    token = params.get("next_token")
    if token:
        last = _decode_token(token)
        try:
            ordered = [item for item in ordered if (key(item) < last if descending else key(item) > last)]
        except TypeError:
            raise _invalid("'next_token' is not valid") from None
    size = _page_size(params)
    page = ordered[:size]
    return page, _encode_token(key(page[-1])) if len(ordered) > size else None


def _cursor_page(items: Sequence[T], id_of: Callable[[T], str], params: QueryParams) -> tuple[list[T], bool]:
    """``starting_after`` / ``ending_before`` paging by id, as properties and categories have it."""
    size = _page_size(params)
    ids = [id_of(item) for item in items]
    after, before = params.get("starting_after"), params.get("ending_before")
    for name, cursor in (("starting_after", after), ("ending_before", before)):
        if cursor and cursor not in ids:
            raise _invalid(f"'{name}' is not a known id")
    if before:
        window = list(items[: ids.index(before)])
        return window[-size:], len(window) > size
    start = ids.index(after) + 1 if after else 0
    window = list(items[start:])
    return window[:size], len(window) > size


def _sort_order(params: QueryParams, allowed: Sequence[str]) -> tuple[str, bool]:
    sort = params.get("sort") or allowed[0]
    if sort not in allowed:
        raise _invalid(f"'sort' must be one of {', '.join(allowed)}")
    field_name, _, direction = sort.rpartition("_")
    return field_name, direction == "desc"


def _ok(payload: Mapping[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(dict(payload), status_code=status)


_SUCCESS = {"message": "Success", "code": "OK"}


# --------------------------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------------------------

BodyRule = Literal["none", "json", "optional_json"]


@dataclass(frozen=True)
class _Call:
    request: Request
    query: QueryParams
    path_params: Mapping[str, str]
    raw_body: bytes
    body: _Body


@dataclass(frozen=True)
class _Operation:
    method: str
    path: str
    handler: Callable[[_Call], Response]
    scope: str | None = None  # the API scope it needs; None: no bearer token (token/sandbox endpoints)
    body: BodyRule = "none"


class _KindeApi:
    """The handlers. Each runs under the store lock with authentication already done."""

    def __init__(self, config: KindeSandboxConfig, store: KindeStore) -> None:
        self.config = config
        self.store = store
        self.signing_key = secrets.token_bytes(32)  # this app's own HS256 key for the tokens it issues
        self.workflow_bundle: Path | None = None

    def operations(self) -> list[_Operation]:
        return [
            _Operation("POST", "/oauth2/token", self.issue_token),
            _Operation("GET", "/api/v1/users", self.list_users, "read:users"),
            _Operation("POST", "/api/v1/user", self.create_user, "create:users", "optional_json"),
            _Operation("GET", "/api/v1/user", self.get_user, "read:users"),
            _Operation("PATCH", "/api/v1/user", self.update_user, "update:users", "json"),
            _Operation("DELETE", "/api/v1/user", self.delete_user, "delete:users"),
            _Operation("PUT", "/api/v1/users/{user_id}/password", self.set_password, "update:user_passwords", "json"),
            _Operation(
                "POST", "/api/v1/users/{user_id}/identities", self.add_identity, "create:user_identities", "json"
            ),
            _Operation("GET", "/api/v1/users/{user_id}/identities", self.list_identities, "read:user_identities"),
            _Operation("DELETE", "/api/v1/identities/{identity_id}", self.delete_identity, "delete:identities"),
            _Operation("PATCH", "/api/v1/identities/{identity_id}", self.update_identity, "update:identities", "json"),
            _Operation("GET", "/api/v1/users/{user_id}/properties", self.user_properties, "read:user_properties"),
            _Operation(
                "GET",
                "/api/v1/organizations/{org_code}/properties",
                self.organization_properties,
                "read:organization_properties",
            ),
            _Operation(
                "PATCH",
                "/api/v1/organizations/{org_code}/properties",
                self.set_organization_properties,
                "update:organization_properties",
                "json",
            ),
            _Operation("GET", "/api/v1/roles/{role_id}/permissions", self.role_permissions, "read:role_permissions"),
            _Operation(
                "PATCH",
                "/api/v1/roles/{role_id}/permissions",
                self.update_role_permissions,
                "update:role_permissions",
                "json",
            ),
            _Operation(
                "PATCH",
                "/api/v1/users/{user_id}/properties",
                self.set_user_properties,
                "update:user_properties",
                "json",
            ),
            _Operation("POST", "/api/v1/organization", self.create_organization, "create:organizations", "json"),
            _Operation("GET", "/api/v1/organizations", self.list_organizations, "read:organizations"),
            _Operation(
                "POST",
                "/api/v1/organizations/{org_code}/users",
                self.add_organization_users,
                "create:organization_users",
                "optional_json",
            ),
            _Operation("DELETE", "/api/v1/organization/{org_code}", self.delete_organization, "delete:organizations"),
            _Operation(
                "GET", "/api/v1/organizations/{org_code}/users", self.list_organization_users, "read:organization_users"
            ),
            _Operation(
                "GET",
                "/api/v1/organizations/{org_code}/users/{user_id}/roles",
                self.list_organization_user_roles,
                "read:organization_user_roles",
            ),
            _Operation("DELETE", "/api/v1/roles/{role_id}", self.delete_role, "delete:roles"),
            _Operation("GET", "/api/v1/roles", self.list_roles, "read:roles"),
            _Operation("POST", "/api/v1/roles", self.create_role, "create:roles", "optional_json"),
            _Operation("GET", "/api/v1/permissions", self.list_permissions, "read:permissions"),
            _Operation("POST", "/api/v1/permissions", self.create_permission, "create:permissions", "optional_json"),
            _Operation("GET", "/api/v1/properties", self.list_properties, "read:properties"),
            _Operation("POST", "/api/v1/properties", self.create_property, "create:properties", "json"),
            _Operation("GET", "/api/v1/property_categories", self.list_categories, "read:property_categories"),
            _Operation(
                "POST", "/api/v1/property_categories", self.create_category, "create:property_categories", "json"
            ),
            _Operation(
                "DELETE",
                "/api/v1/roles/{role_id}/permissions/{permission_id}",
                self.remove_role_permission,
                "delete:role_permissions",
            ),
            _Operation("DELETE", "/api/v1/permissions/{permission_id}", self.delete_permission, "delete:permissions"),
            _Operation("DELETE", "/api/v1/properties/{property_id}", self.delete_property, "delete:properties"),
            _Operation("GET", "/api/v1/search/users", self.search_users, "read:users"),
            _Operation("GET", VARIABLES, self.list_variables, "read:environment_variables"),
            _Operation("POST", VARIABLES, self.create_variable, "create:environment_variables", "json"),
            _Operation("GET", VARIABLE, self.get_variable, "read:environment_variables"),
            _Operation("PATCH", VARIABLE, self.update_variable, "update:environment_variables", "json"),
            _Operation("DELETE", VARIABLE, self.delete_variable, "delete:environment_variables"),
            _Operation("DELETE", "/_sandbox/users/{user_id}", self.tamper_delete),
            _Operation("PATCH", "/_sandbox/users/{user_id}", self.tamper_alter, None, "json"),
            _Operation("POST", "/_sandbox/users/{user_id}/duplicate", self.tamper_duplicate, None, "optional_json"),
            _Operation("PATCH", "/_sandbox/roles/{key}", self.tamper_role, None, "json"),
            _Operation("GET", "/_sandbox/state", self.state),
            _Operation("POST", "/_sandbox/import", self.import_file),
        ]

    # ---- authentication -------------------------------------------------------------------

    def authorize(self, request: Request, scope: str) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        refuse = self.config.bad_token_status
        if scheme.lower() != "bearer" or not credential:
            raise KindeError(refuse, "TOKEN_REQUIRED", "A bearer access token is required.")
        token = self.store.tokens.get(credential)
        if token is None or not (token.signature_checked or self._signed_here(credential)):
            raise KindeError(refuse, "TOKEN_INVALID", "The access token is not valid.")
        token.signature_checked = True
        used_up = self.config.token_max_uses is not None and token.uses >= self.config.token_max_uses
        if used_up or self.config.clock() >= token.expires_at:
            token.refused_as_expired = True
            raise KindeError(refuse, "TOKEN_EXPIRED", "The access token has expired.")
        token.uses += 1
        if scope not in token.scopes:
            raise KindeError(
                self.config.missing_scope_status,
                "FORBIDDEN",
                f"The access token is missing the required scope: {scope}",
            )

    def _signed_here(self, credential: str) -> bool:
        """A JWT signed with this app's key. Expiry is the record's (its clock is injectable); the
        audience is not checked: the same app may answer on several ports or behind a proxy."""
        if self.config.token_format == "opaque":
            return True
        try:
            jwt.decode(
                credential,
                self.signing_key,
                algorithms=["HS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_aud": False},
            )
        except jwt.InvalidTokenError:
            return False
        return True

    def _new_token(self, request: Request, client_id: str, granted: frozenset[str]) -> str:
        if self.config.token_format == "opaque":
            return secrets.token_urlsafe(32)
        issued_at = int(time.time())  # wall clock, as JWT claims are; expiry is enforced by the record
        claims: dict[str, Any] = {
            "aud": [_audience(request)],
            "azp": client_id,
            "exp": issued_at + self.config.token_lifetime,
            "gty": ["client_credentials"],
            "iat": issued_at,
            "iss": str(request.base_url).rstrip("/"),
            "jti": str(uuid.uuid4()),
        }
        scopes = sorted(granted)
        if self.config.scope_claims in ("scope", "both"):
            claims["scope"] = " ".join(scopes)
        if self.config.scope_claims in ("scp", "both"):
            claims["scp"] = scopes
        return jwt.encode(claims, self.signing_key, algorithm="HS256")

    def issue_token(self, call: _Call) -> Response:
        """client_credentials as Kinde's docs and SDKs use it; errors in RFC 6749's shape."""

        def oauth_error(status: int, error: str, description: str) -> KindeError:
            return KindeError(status, error, description, oauth=True)

        content_type = call.request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise oauth_error(400, "invalid_request", "The body must be application/x-www-form-urlencoded.")
        try:
            form = {k: v[-1] for k, v in parse_qs(call.raw_body.decode(), keep_blank_values=True).items()}
        except UnicodeDecodeError:
            raise oauth_error(400, "invalid_request", "The body is not valid form data.") from None
        grant_type = form.get("grant_type")
        if not grant_type:
            raise oauth_error(400, "invalid_request", "grant_type is required.")
        if grant_type != "client_credentials":
            raise oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported.")
        client_id, client_secret = self._client_credentials(call.request, form)
        if not (
            secrets.compare_digest(client_id.encode(), self.config.client_id.encode())
            and secrets.compare_digest(client_secret.encode(), self.config.client_secret.encode())
        ):
            raise KindeError(401, "invalid_client", "Client authentication failed.", oauth=True)
        expected_audience = _audience(call.request)
        audience = form.get("audience")
        if not audience:
            raise oauth_error(400, "invalid_request", "audience is required.")
        if audience.rstrip("/") != expected_audience:
            raise oauth_error(400, "invalid_request", f"audience must be {expected_audience}.")
        requested = frozenset(form.get("scope", "").split())
        if requested - self.config.scopes:
            unknown = " ".join(sorted(requested - self.config.scopes))
            raise oauth_error(400, "invalid_scope", f"Scopes not granted to this application: {unknown}")
        granted = requested or self.config.scopes
        access_token = self._new_token(call.request, client_id, granted)
        self.store.tokens[access_token] = _Token(granted, self.config.clock() + self.config.token_lifetime)
        self.store.tokens_issued += 1
        answer: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.config.token_lifetime,
        }
        if self.config.answer_scope != "absent":
            answer["scope"] = " ".join(sorted(granted)) if self.config.answer_scope == "present" else ""
        return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    @staticmethod
    def _client_credentials(request: Request, form: Mapping[str, str]) -> tuple[str, str]:
        """From the body (client_secret_post, what Kinde's SDKs send) or HTTP Basic."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic" and encoded:
            try:
                client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
            except (ValueError, binascii.Error):
                return "", ""
            return client_id, client_secret
        return form.get("client_id", ""), form.get("client_secret", "")

    # ---- users ----------------------------------------------------------------------------

    def _user(self, user_id: str | None) -> _User:
        if not user_id:
            raise _invalid("'id' is required")
        user = self.store.users.get(user_id)
        if user is None:
            raise KindeError(self.config.unknown_user_status, "USER_NOT_FOUND", f"No user with id {user_id}.")
        return user

    def _duplicate(self, what: str, value: str) -> KindeError:
        return KindeError(
            self.config.duplicate_status, self.config.duplicate_code, f"{what} {value} is already in use."
        )

    def create_user(self, call: _Call) -> Response:
        body = call.body
        profile = body.obj("profile") or _Body({}, "profile.")
        given_name, family_name, picture = (
            profile.text("given_name"),
            profile.text("family_name"),
            profile.text("picture"),
        )
        provided_id = body.text("provided_id")
        org_code = body.text("organization_code")
        identities, refused = self._parse_identities(body)
        if org_code is not None and org_code not in self.store.organizations:
            raise KindeError(400, "ORGANIZATION_NOT_FOUND", f"No organization with code {org_code}.")

        user = _User(
            id=self.store.new_user_id(),
            seq=self.store.next_seq(),
            created_on=_now_iso(),
            provided_id=provided_id,
            given_name=given_name,
            family_name=family_name,
            picture=picture,
            identities=[i for n, i in enumerate(identities) if n not in refused],
        )
        self.store.users[user.id] = user
        for identity in user.identities:
            self._index(identity, user.id)
        if org_code is not None:
            self.store.organizations[org_code].members.setdefault(user.id, _Membership())
        if self.config.default_org_joins_new_users:
            default = next(org for org in self.store.organizations.values() if org.is_default)
            default.members.setdefault(user.id, _Membership())
        if provided_id is not None:
            self.store.creations_by_provided_id[provided_id] += 1
        return _ok(
            {
                "id": user.id,
                "created": True,
                "identities": [
                    {"type": i.type, "result": {"created": n not in refused}} for n, i in enumerate(identities)
                ],
            }
        )

    def add_identity(self, call: _Call) -> Response:
        """POST /api/v1/users/{user_id}/identities: email, phone, username, or social (with ``connection_id``)."""
        user = self._user(call.path_params["user_id"])
        if call.body.data.get("type") == "social":
            return self._add_social_identity(call, user)
        identity_type = call.body.choice("type", ("email", "phone", "username"), required=True)
        value = call.body.required_text("value")
        call.body.text("phone_country_id")
        assert identity_type is not None
        identity = self._checked_identity(identity_type, value, False, set())
        if identity_type == "phone" and value.startswith(self.config.refused_phone_prefixes or ("\0",)):
            raise KindeError(400, "INVALID_PHONE", f"{value} is not accepted for this business.")
        user.identities.append(identity)
        self._index(identity, user.id)
        return _ok({**_SUCCESS, **({"identity": {"id": identity.id}} if self.config.added_identity_id else {})}, 201)

    def _add_social_identity(self, call: _Call, user: _User) -> Response:
        """A social identity on a connection; the same value on the same connection twice (any user) is a
        duplicate, answered like any duplicate identity (``duplicate_status``)."""
        value = call.body.required_text("value")
        connection_id = call.body.required_text("connection_id")
        if not connection_id.startswith("conn_"):
            raise _invalid("'connection_id' must be a connection id (conn_...)")
        for other in self.store.users.values():
            if any(
                i.type == "social" and i.connection_id == connection_id and i.value.lower() == value.lower()
                for i in other.identities
            ):
                raise self._duplicate("social identity", value)
        identity = _Identity("social", value, True, connection_id)
        user.identities.append(identity)
        return _ok({**_SUCCESS, "identity": {"id": identity.id}}, status=201)

    @staticmethod
    def _property_values(values: Mapping[str, str], definitions: Iterable[_PropertyDefinition]) -> Response:
        items = [
            _without_none(
                {"id": d.id, "name": d.name, "description": d.description, "key": d.key, "value": values.get(d.key)}
            )
            for d in definitions
        ]
        return _ok({"code": "OK", "message": "Success", "properties": items})

    def _definitions(self, context: str) -> list[_PropertyDefinition]:
        return sorted(
            (p for p in self.store.property_definitions.values() if p.context == context), key=lambda p: p.seq
        )

    def user_properties(self, call: _Call) -> Response:
        user = self._user(call.path_params["user_id"])
        return self._property_values(user.properties, self._definitions("usr"))

    def organization_properties(self, call: _Call) -> Response:
        return self._property_values(
            self._organization(call.path_params["org_code"]).properties, self._definitions("org")
        )

    def set_organization_properties(self, call: _Call) -> Response:
        org = self._organization(call.path_params["org_code"])
        self._apply_properties(call.body, org.properties, "org")
        return _ok(_SUCCESS)

    def _apply_properties(self, body: _Body, target: dict[str, str], context: str) -> None:
        properties = body.obj("properties", required=True)
        assert properties is not None
        for key, value in properties.data.items():
            definition = self.store.property_by_key(key)
            if definition is None or definition.context != context:
                raise KindeError(400, "PROPERTY_NOT_FOUND", f"No {context} property with key {key}.")
            if value is not None and not isinstance(value, str):
                raise _invalid(f"'properties.{key}' must be a string")
        if self.config.property_null_value == "refused" and None in properties.data.values():
            raise _invalid("'properties' values must be strings")
        for key, value in properties.data.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value

    def _role(self, call: _Call) -> _Role:
        role = self.store.roles.get(call.path_params["role_id"])
        if role is None:
            raise self._unknown_role(call.path_params["role_id"])
        return role

    def _unknown_role(self, role_id: str) -> KindeError:
        return KindeError(self.config.unknown_role_status, "ROLE_NOT_FOUND", f"No role with id {role_id}.")

    def _unknown_organization(self, code: str) -> KindeError:
        return KindeError(
            self.config.unknown_organization_status, "ORGANIZATION_NOT_FOUND", f"No organization with code {code}."
        )

    def role_permissions(self, call: _Call) -> Response:
        role = self._role(call)
        attached = [self.store.permissions[p] for p in role.permission_ids if p in self.store.permissions]
        page, next_token = _paginate(attached, lambda p: (p.seq,), call.query)
        payload: dict[str, Any] = {
            "code": "OK",
            "message": "Success",
            "permissions": [_permission_item(p) for p in page],
        }
        if next_token:
            payload["next_token"] = next_token
        return _ok(payload)

    def update_role_permissions(self, call: _Call) -> Response:
        """Adds (or, with ``operation: delete``, removes) permissions by id; validated all first."""
        role = self._role(call)
        entries = call.body.array("permissions", required=True)
        assert entries is not None
        parsed: list[tuple[str, bool]] = []
        for index, raw in enumerate(entries):
            if not isinstance(raw, dict):
                raise _invalid(f"'permissions[{index}]' must be an object")
            item = _Body(raw, f"permissions[{index}].")
            permission_id = item.required_text("id")
            if permission_id not in self.store.permissions:
                raise KindeError(400, "INVALID_PERMISSION_ID", f"No permission with id {permission_id}.")
            parsed.append((permission_id, item.text("operation") == "delete"))
        added, removed = [], []
        for permission_id, delete in parsed:
            if delete and permission_id in role.permission_ids:
                role.permission_ids.remove(permission_id)
                removed.append(permission_id)
            elif not delete and permission_id not in role.permission_ids:
                role.permission_ids.append(permission_id)
                added.append(permission_id)
        return _ok({**_SUCCESS, "permissions_added": added, "permissions_removed": removed})

    def _parse_identities(self, body: _Body) -> tuple[list[_Identity], set[int]]:
        """Validate every identity and its uniqueness before anything is stored; also which ones
        a partial create leaves out (``refused_phone_prefixes``, ``partial_duplicates``)."""
        identities: list[_Identity] = []
        refused: set[int] = set()
        seen: set[tuple[str, str]] = set()
        for index, raw in enumerate(body.array("identities") or []):
            if not isinstance(raw, dict):
                raise _invalid(f"'identities[{index}]' must be an object")
            item = _Body(raw, f"identities[{index}].")
            identity_type = item.choice("type", ("email", "phone", "username"), required=True)
            assert identity_type is not None
            details = item.obj("details", required=True)
            assert details is not None
            value = details.required_text(identity_type)
            if identity_type == "phone":
                details.text("phone_country_id")
            try:
                identities.append(self._checked_identity(identity_type, value, bool(item.flag("is_verified")), seen))
            except KindeError as error:
                if not (self.config.partial_duplicates and error.status == self.config.duplicate_status):
                    raise
                identities.append(_Identity(identity_type, value, bool(item.flag("is_verified"))))
                refused.add(index)
            if identity_type == "phone" and value.startswith(self.config.refused_phone_prefixes or ("\0",)):
                refused.add(index)
        return identities, refused

    def _checked_identity(
        self, identity_type: str, value: str, verified: bool, seen: set[tuple[str, str]]
    ) -> _Identity:
        if identity_type == "email":
            local, at, domain = value.partition("@")
            if not (local and at and "." in domain):
                raise KindeError(400, "INVALID_EMAIL", f"{value} is not a valid email address.")
            key, index_of, label = value.lower(), self.store.emails, "Email"
        elif identity_type == "phone":
            if not _E164.match(value):
                raise KindeError(400, "INVALID_PHONE", f"{value} is not an E.164 phone number.")
            key, index_of, label = value, self.store.phones, "Phone"
        else:
            key, index_of, label = value.lower(), self.store.usernames, "Username"
        if key in index_of or (identity_type, key) in seen:
            raise self._duplicate(label, value)
        seen.add((identity_type, key))
        return _Identity(identity_type, value, verified)

    def delete_identity(self, call: _Call) -> Response:
        """DELETE /api/v1/identities/{identity_id}: the identity leaves its user (and the uniqueness index).
        GUESS: whether Kinde refuses a user's last identity is not documented; the migrator never asks."""
        identity_id = call.path_params["identity_id"]
        for user in self.store.users.values():
            identity = next((i for i in user.identities if i.id == identity_id), None)
            if identity is not None:
                user.identities.remove(identity)
                index = {"email": self.store.emails, "phone": self.store.phones, "username": self.store.usernames}
                key = identity.value if identity.type == "phone" else identity.value.lower()
                if identity.type in index and index[identity.type].get(key) == user.id:
                    del index[identity.type][key]
                return _ok(_SUCCESS)
        raise KindeError(400, "IDENTITY_NOT_FOUND", f"No identity with id {identity_id}.")

    def update_identity(self, call: _Call) -> Response:
        """PATCH /api/v1/identities/{identity_id} ``{"is_primary": true}``: the identity becomes its user's
        primary of its type (the first of the type: preferred_email, phone, username)."""
        identity_id = call.path_params["identity_id"]
        primary = call.body.flag("is_primary")
        for user in self.store.users.values():
            identity = next((i for i in user.identities if i.id == identity_id), None)
            if identity is not None:
                at = next(n for n, i in enumerate(user.identities) if i.type == identity.type)
                if primary and user.identities[at] is not identity:
                    user.identities.remove(identity)
                    user.identities.insert(at, identity)
                return _ok(_SUCCESS)
        raise KindeError(400, "IDENTITY_NOT_FOUND", f"No identity with id {identity_id}.")

    def _index(self, identity: _Identity, user_id: str) -> None:
        if identity.type == "email":
            self.store.emails[identity.value.lower()] = user_id
        elif identity.type == "phone":
            self.store.phones[identity.value] = user_id
        else:
            self.store.usernames[identity.value.lower()] = user_id

    def _org_codes(self, users: list[_User]) -> dict[str, list[str]]:
        """Each user's organization codes, in the organizations' order: one pass over the organizations for a
        whole page (a scan per user would make a page of a tenant with many organizations quadratic)."""
        wanted = {u.id for u in users}
        codes: dict[str, list[str]] = {uid: [] for uid in wanted}
        for org in sorted(self.store.organizations.values(), key=lambda o: o.seq):
            # walk the smaller side: the page's users or the organization's members
            members = wanted.intersection(org.members) if len(org.members) > len(wanted) else org.members
            for uid in members:
                if uid in codes:
                    codes[uid].append(org.code)
        return codes

    def _user_fields(
        self, user: _User, expand: set[str], email_key: str, org_codes: dict[str, list[str]] | None = None
    ) -> dict[str, Any]:
        item = _without_none(
            {
                "id": user.id,
                "provided_id": user.provided_id,
                email_key: user.first("email"),
                "phone": user.first("phone"),
                "username": user.first("username"),
                "last_name": user.family_name,
                "first_name": user.given_name,
                "is_suspended": user.is_suspended,
                "picture": user.picture,
                "total_sign_ins": user.total_sign_ins,
                "failed_sign_ins": user.failed_sign_ins,
                "last_signed_in": user.last_signed_in,
                "created_on": user.created_on,
            },
            nullable=("last_signed_in",),
        )
        if "organizations" in expand:
            item["organizations"] = (org_codes if org_codes is not None else self._org_codes([user]))[user.id]
        if "identities" in expand:
            item["identities"] = [{"type": i.type, "identity": i.value} for i in user.identities]
            if email_key == "email":  # the list's items (not GET /user's) carry connection_id, null but for social
                for shown, identity in zip(item["identities"], user.identities, strict=True):
                    shown["connection_id"] = identity.connection_id
        return item

    @staticmethod
    def _expand(params: QueryParams) -> set[str]:
        return set(_csv(params, "expand") or [])

    def list_users(self, call: _Call) -> Response:
        """Filters are comma lists; different filters all apply; ``email`` ignores case."""
        params = call.query
        users: Iterable[_User] = self.store.users.values()
        if (ids := _csv(params, "user_id")) is not None:
            wanted_ids = set(ids)
            users = [u for u in users if u.id in wanted_ids]
        if (emails := _csv(params, "email")) is not None:
            wanted = {e.lower() for e in emails}
            users = [u for u in users if any(i.type == "email" and i.value.lower() in wanted for i in u.identities)]
        if (usernames := _csv(params, "username")) is not None:
            wanted = {n.lower() for n in usernames}
            users = [u for u in users if any(i.type == "username" and i.value.lower() in wanted for i in u.identities)]
        if (phones := _csv(params, "phone")) is not None:
            wanted_phones = set(phones)
            users = [u for u in users if any(i.type == "phone" and i.value in wanted_phones for i in u.identities)]
        if (has_org := _query_bool(params, "has_organization")) is not None:
            members = {uid for org in self.store.organizations.values() for uid in org.members}
            users = [u for u in users if (u.id in members) == has_org]
        page, next_token = _paginate(users, lambda u: (u.seq,), params)
        expand = self._expand(params)
        if self.config.users_list_organizations == "ignored":
            expand.discard("organizations")
        codes = self._org_codes(page) if "organizations" in expand else None
        payload: dict[str, Any] = {
            "code": "OK",
            "message": "Success",
            "users": [self._user_fields(u, expand, "email", codes) for u in page],
        }
        if next_token:
            payload["next_token"] = next_token
        return _ok(payload)

    def get_user(self, call: _Call) -> Response:
        user = self._user(call.query.get("id"))
        return _ok(self._user_fields(user, self._expand(call.query), "preferred_email"))

    def update_user(self, call: _Call) -> Response:
        user = self._user(call.query.get("id"))
        body = call.body
        updates = {
            "given_name": body.text("given_name"),
            "family_name": body.text("family_name"),
            "picture": body.text("picture"),
            "provided_id": body.text("provided_id"),
            "is_suspended": body.flag("is_suspended"),
            "is_password_reset_requested": body.flag("is_password_reset_requested"),
        }
        for name, value in updates.items():
            if value is not None:
                setattr(user, name, value)
        return _ok(
            _without_none(
                {
                    "id": user.id,
                    "given_name": user.given_name,
                    "family_name": user.family_name,
                    "email": user.first("email"),
                    "is_suspended": user.is_suspended,
                    "is_password_reset_requested": user.is_password_reset_requested,
                    "picture": user.picture,
                },
                nullable=("picture",),
            )
        )

    def delete_user(self, call: _Call) -> Response:
        user = self._user(call.query.get("id"))
        _query_bool(call.query, "is_delete_profile")
        del self.store.users[user.id]
        for index in (self.store.emails, self.store.usernames, self.store.phones):
            for key in [k for k, owner in index.items() if owner == user.id]:
                del index[key]
        for org in self.store.organizations.values():
            org.members.pop(user.id, None)
        return _ok(_SUCCESS)

    def set_password(self, call: _Call) -> Response:
        user = self._user(call.path_params["user_id"])
        record = dict(call.body.data)
        problem = validate_kinde_password_body(record)
        if problem:
            raise KindeError(400, "INVALID_PASSWORD", problem)
        user.password = record
        return _ok(_SUCCESS)

    def set_user_properties(self, call: _Call) -> Response:
        user = self._user(call.path_params["user_id"])
        self._apply_properties(call.body, user.properties, "usr")
        return _ok(_SUCCESS)

    # ---- organizations, roles, permissions -----------------------------------------------------

    def create_organization(self, call: _Call) -> Response:
        body = call.body
        name = body.required_text("name")
        external_id = body.text("external_id")
        handle = body.text("handle")
        auto_membership = body.flag("is_auto_membership_enabled")
        for key in ("theme_code", "sender_name", "sender_email", "billing_email", "billing_plan_code"):
            body.text(key)
        body.obj("feature_flags")
        for org in self.store.organizations.values():
            if external_id is not None and org.external_id == external_id:
                raise KindeError(
                    400, "ORGANIZATION_EXTERNAL_ID_EXISTS", f"An organization with external_id {external_id} exists."
                )
            if handle is not None and org.handle == handle:
                raise KindeError(400, "ORGANIZATION_HANDLE_EXISTS", f"An organization with handle {handle} exists.")
        org = _Organization(
            code=self.store.new_org_code(),
            seq=self.store.next_seq(),
            name=name,
            external_id=external_id,
            handle=handle,
            is_auto_membership_enabled=bool(auto_membership),
        )
        self.store.organizations[org.code] = org
        return _ok({**_SUCCESS, "organization": {"code": org.code}})

    def list_organizations(self, call: _Call) -> Response:
        # Organizations have no email in this emulator, so the email sorts order by name too.
        _, descending = _sort_order(call.query, ("name_asc", "name_desc", "email_asc", "email_desc"))
        page, next_token = _paginate(
            self.store.organizations.values(), lambda o: (o.name.lower(), o.seq), call.query, descending=descending
        )
        payload: dict[str, Any] = {
            "code": "OK",
            "message": "Success",
            "organizations": [
                _without_none(
                    {
                        "code": org.code,
                        "name": org.name,
                        "handle": org.handle,
                        "is_default": org.is_default,
                        "external_id": org.external_id,
                        "is_auto_membership_enabled": org.is_auto_membership_enabled,
                    },
                    nullable=("handle", "external_id"),
                )
                for org in page
            ],
        }
        if next_token:
            payload["next_token"] = next_token
        return _ok(payload)

    def add_organization_users(self, call: _Call) -> Response:
        """All-or-nothing validation first, then idempotent adds (role/permission keys merged)."""
        org = self.store.organizations.get(call.path_params["org_code"])
        if org is None:
            raise self._unknown_organization(call.path_params["org_code"])
        entries = call.body.array("users", required=True)
        assert entries is not None
        if len(entries) > MAX_USERS_PER_ORG_CALL:
            raise _invalid(f"At most {MAX_USERS_PER_ORG_CALL} users can be added in one request, got {len(entries)}.")
        parsed: list[tuple[str, list[str], list[str]]] = []
        for index, raw in enumerate(entries):
            if not isinstance(raw, dict):
                raise _invalid(f"'users[{index}]' must be an object")
            item = _Body(raw, f"users[{index}].")
            user_id = item.required_text("id")
            roles, permissions = item.text_list("roles"), item.text_list("permissions")
            if user_id not in self.store.users:
                raise KindeError(400, "USER_NOT_FOUND", f"No user with id {user_id}.")
            for key in roles:
                if self.store.role_by_key(key) is None:
                    raise KindeError(400, "ROLE_NOT_FOUND", f"No role with key {key}.")
            for key in permissions:
                if self.store.permission_by_key(key) is None:
                    raise KindeError(400, "PERMISSION_NOT_FOUND", f"No permission with key {key}.")
            parsed.append((user_id, roles, permissions))
        if self.config.existing_member_status != 200:
            for user_id, _roles, _permissions in parsed:
                if user_id in org.members:
                    raise KindeError(
                        self.config.existing_member_status,
                        "USER_ALREADY_IN_ORGANIZATION",
                        f"User {user_id} is already a member of {org.code}.",
                    )
        added: list[str] = []
        for user_id, roles, permissions in parsed:
            membership = org.members.get(user_id)
            if membership is None:
                membership = org.members[user_id] = _Membership()
                added.append(user_id)
            membership.roles.extend(key for key in roles if key not in membership.roles)
            membership.permissions.extend(key for key in permissions if key not in membership.permissions)
        return _ok({**_SUCCESS, "users_added": added})

    def _organization(self, code: str) -> _Organization:
        org = self.store.organizations.get(code)
        if org is None:
            raise self._unknown_organization(code)
        return org

    def delete_organization(self, call: _Call) -> Response:
        org = self._organization(call.path_params["org_code"])
        if org.is_default:
            raise KindeError(400, "CANNOT_DELETE_DEFAULT_ORGANIZATION", "The default organization cannot be deleted.")
        del self.store.organizations[org.code]
        return _ok(_SUCCESS)

    def delete_role(self, call: _Call) -> Response:
        role = self.store.roles.get(call.path_params["role_id"])
        if role is None:
            raise self._unknown_role(call.path_params["role_id"])
        in_use = any(role.key in m.roles for org in self.store.organizations.values() for m in org.members.values())
        if in_use:
            raise KindeError(400, "ROLE_IN_USE", f"Role {role.key} is assigned to users.")
        del self.store.roles[role.id]
        return _ok(_SUCCESS)

    def list_roles(self, call: _Call) -> Response:
        field_name, descending = _sort_order(call.query, ("name_asc", "name_desc", "key_asc", "key_desc"))
        page, next_token = _paginate(
            self.store.roles.values(),
            lambda r: ((r.key if field_name == "key" else r.name).lower(), r.seq),
            call.query,
            descending=descending,
        )
        payload: dict[str, Any] = {"code": "OK", "message": "Success", "roles": [_role_item(r) for r in page]}
        if next_token:
            payload["next_token"] = next_token
        return _ok(payload)

    def create_role(self, call: _Call) -> Response:
        body = call.body
        key, name = body.required_text("key"), body.required_text("name")
        description = body.text("description")
        is_default = bool(body.flag("is_default_role"))
        body.text("assignment_permission_id")
        if self.store.role_by_key(key) is not None:
            raise KindeError(400, "ROLE_ALREADY_EXISTS", f"A role with key {key} already exists.")
        role = _Role(str(uuid.uuid4()), self.store.next_seq(), key, name, description, is_default)
        self.store.roles[role.id] = role
        return _ok({**_SUCCESS, "role": {"id": role.id}}, status=201)

    def list_permissions(self, call: _Call) -> Response:
        field_name, descending = _sort_order(call.query, ("name_asc", "name_desc", "id_asc", "id_desc"))
        page, next_token = _paginate(
            self.store.permissions.values(),
            lambda p: ((p.id if field_name == "id" else p.name.lower()), p.seq),
            call.query,
            descending=descending,
        )
        payload: dict[str, Any] = {
            "code": "OK",
            "message": "Success",
            "permissions": [_permission_item(p) for p in page],
        }
        if next_token:
            payload["next_token"] = next_token
        return _ok(payload)

    def create_permission(self, call: _Call) -> Response:
        body = call.body
        key, name = body.required_text("key"), body.required_text("name")
        description = body.text("description")
        if self.store.permission_by_key(key) is not None:
            raise KindeError(400, "PERMISSION_ALREADY_EXISTS", f"A permission with key {key} already exists.")
        permission = _Permission(str(uuid.uuid4()), self.store.next_seq(), key, name, description)
        self.store.permissions[permission.id] = permission
        return _ok(_SUCCESS, status=201)  # the spec returns no id: read it back with GET

    # ---- properties -----------------------------------------------------------------------

    def list_categories(self, call: _Call) -> Response:
        context = _Body(dict(call.query)).choice("context", ("usr", "org"))
        categories = [c for c in self.store.categories.values() if context in (None, c.context)]
        page, has_more = _cursor_page(categories, lambda c: c.id, call.query)
        return _ok(
            {
                "code": "OK",
                "message": "Success",
                "categories": [{"id": c.id, "name": c.name} for c in page],
                "has_more": has_more,
            }
        )

    def create_category(self, call: _Call) -> Response:
        body = call.body
        name = body.required_text("name")
        context = body.choice("context", ("org", "usr", "app"), required=True)
        assert context is not None
        category = _Category("cat_" + secrets.token_hex(16), self.store.next_seq(), name, context)
        self.store.categories[category.id] = category
        return _ok({**_SUCCESS, "category": {"id": category.id}}, status=201)

    def list_properties(self, call: _Call) -> Response:
        context = _Body(dict(call.query)).choice("context", ("usr", "org", "app"))
        definitions = [p for p in self.store.property_definitions.values() if context in (None, p.context)]
        page, has_more = _cursor_page(definitions, lambda p: p.id, call.query)
        return _ok(
            {
                "code": "OK",
                "message": "Success",
                "properties": [
                    _without_none(
                        {
                            "id": p.id,
                            "key": p.key,
                            "name": p.name,
                            "is_private": p.is_private,
                            "description": p.description,
                            "is_kinde_property": False,
                        }
                    )
                    for p in page
                ],
                "has_more": has_more,
            }
        )

    def create_property(self, call: _Call) -> Response:
        body = call.body
        name, key = body.required_text("name"), body.required_text("key")
        description = body.text("description")
        property_type = body.choice("type", ("single_line_text", "multi_line_text"), required=True)
        context = body.choice("context", ("org", "usr", "app"), required=True)
        is_private = body.flag("is_private", required=True)
        category_id = body.required_text("category_id")
        assert property_type is not None and context is not None and is_private is not None
        if category_id not in self.store.categories:
            raise KindeError(400, "CATEGORY_NOT_FOUND", f"No property category with id {category_id}.")
        if self.store.property_by_key(key) is not None:
            raise KindeError(400, "PROPERTY_ALREADY_EXISTS", f"A property with key {key} already exists.")
        definition = _PropertyDefinition(
            "prop_" + secrets.token_hex(16),
            self.store.next_seq(),
            key,
            name,
            description,
            property_type,
            context,
            is_private,
            category_id,
        )
        self.store.property_definitions[definition.id] = definition
        return _ok({**_SUCCESS, "property": {"id": definition.id}}, status=201)

    # ---- deleting definitions (an undo) ----------------------------------------------------

    def remove_role_permission(self, call: _Call) -> Response:
        role = self._role(call)
        permission_id = call.path_params["permission_id"]
        if permission_id not in role.permission_ids:
            # GUESS: the spec's only client error is 400; detaching what is not attached is one
            raise KindeError(400, "INVALID_PERMISSION_ID_ROLE", f"Role {role.key} has no permission {permission_id}.")
        role.permission_ids.remove(permission_id)
        return _ok(_SUCCESS)

    def delete_permission(self, call: _Call) -> Response:
        permission = self.store.permissions.get(call.path_params["permission_id"])
        if permission is None:
            raise KindeError(
                400, "INVALID_PERMISSION_ID", f"No permission with id {call.path_params['permission_id']}."
            )
        carriers = [role for role in self.store.roles.values() if permission.id in role.permission_ids]
        if carriers and self.config.permission_delete_in_use == "refuse":
            raise KindeError(400, "PERMISSION_IN_USE", f"Permission {permission.key} is assigned to roles.")
        for role in carriers:
            role.permission_ids.remove(permission.id)
        for org in self.store.organizations.values():
            for membership in org.members.values():
                if permission.key in membership.permissions:
                    membership.permissions.remove(permission.key)
        del self.store.permissions[permission.id]
        return _ok(_SUCCESS)

    def delete_property(self, call: _Call) -> Response:
        definition = self.store.property_definitions.get(call.path_params["property_id"])
        if definition is None:
            raise KindeError(400, "PROPERTY_NOT_FOUND", f"No property with id {call.path_params['property_id']}.")
        holders = [
            *(u.properties for u in self.store.users.values()),
            *(o.properties for o in self.store.organizations.values()),
        ]
        holding = [values for values in holders if values.get(definition.key)]
        if holding and self.config.property_delete_with_values == "refuse":
            raise KindeError(400, "PROPERTY_IN_USE", f"Property {definition.key} has values.")
        for values in holders:
            values.pop(definition.key, None)
        del self.store.property_definitions[definition.id]
        return _ok(_SUCCESS)

    def search_users(self, call: _Call) -> Response:
        """``query`` (``*``: everyone; else part of an email or name), paged by ``starting_after`` (user id);
        ``expand`` adds organizations, identities, properties. (The spec's ``properties[key]`` filter is not
        emulated: the migrator does not send it.)"""
        params = call.query
        query = (params.get("query") or "*").lower()
        users = sorted(self.store.users.values(), key=lambda u: u.seq)
        if query != "*":
            users = [u for u in users if any(query in (v or "").lower() for v in self._searchable(u))]
        page, _ = _cursor_page(users, lambda u: u.id, params)
        expand = self._expand(params)
        results = []
        for user in page:
            item = self._user_fields(user, expand & {"organizations", "identities"}, "email")
            item.pop("phone", None)  # not a field of the search's results
            if "properties" in expand:
                item["properties"] = dict(user.properties)
            results.append(item)
        return _ok({"code": "OK", "message": "Success", "results": results})

    @staticmethod
    def _searchable(user: _User) -> list[str | None]:
        return [user.first("email"), user.given_name, user.family_name]

    # ---- environment variables (what a workflow reads through kinde.env) ------------------

    def _variable(self, call: _Call) -> _Variable:
        variable = self.store.environment_variables.get(call.path_params["variable_id"])
        if variable is None:
            # GUESS: the spec names only 400 for an unknown id; the code follows Kinde's <THING>_NOT_FOUND form.
            raise KindeError(400, "ENVIRONMENT_VARIABLE_NOT_FOUND", f"No environment variable {call.path_params['variable_id']}.")
        return variable

    def _variable_fields(self, body: _Body, *, required: bool) -> tuple[str | None, str | None, bool | None]:
        key = body.required_text("key") if required else body.text("key")
        value = body.text("value", required=required)
        if key is not None and not (0 < len(key) <= 128):
            raise _invalid("'key' must be 1 to 128 characters")
        if value is not None and len(value) > 2048:
            raise _invalid("'value' must be at most 2048 characters")
        return key, value, body.flag("is_secret")

    def _key_taken(self, key: str, other_than: str | None = None) -> None:
        # GUESS: the spec does not say whether keys are unique; Kinde's dashboard names a variable by its key.
        if any(v.key == key and v.id != other_than for v in self.store.environment_variables.values()):
            raise KindeError(400, "ENVIRONMENT_VARIABLE_ALREADY_EXISTS", f"An environment variable {key} exists.")

    def list_variables(self, call: _Call) -> Response:
        ordered = sorted(self.store.environment_variables.values(), key=lambda v: v.seq)
        return _ok({**_SUCCESS, "has_more": False, "environment_variables": [v.item() for v in ordered]})

    def create_variable(self, call: _Call) -> Response:
        key, value, is_secret = self._variable_fields(call.body, required=True)
        assert key is not None and value is not None
        self._key_taken(key)
        variable = _Variable(f"env_var_{uuid.uuid4().hex}", self.store.next_seq(), key, value, bool(is_secret), _now_iso())
        self.store.environment_variables[variable.id] = variable
        created = {"message": "Environment variable created", "code": "VARIABLE_CREATED"}
        return _ok({**created, "environment_variable": {"id": variable.id}}, 201)

    def get_variable(self, call: _Call) -> Response:
        return _ok({**_SUCCESS, "environment_variable": self._variable(call).item()})

    def update_variable(self, call: _Call) -> Response:
        variable = self._variable(call)
        key, value, is_secret = self._variable_fields(call.body, required=False)
        if variable.is_secret and is_secret is False:
            # GUESS: a secret is "not readable after creation"; turning it back into a plain one would read it.
            raise _invalid(f"{variable.key} is a secret and cannot be made readable: delete it and create it again")
        if key is not None:
            self._key_taken(key, variable.id)
            variable.key = key
        if value is not None:
            variable.value = value
        if is_secret:
            variable.is_secret = True
        return _ok({"message": "Environment variable updated", "code": "ENVIRONMENT_VARIABLE_UPDATED"})

    def delete_variable(self, call: _Call) -> Response:
        variable = self._variable(call)
        del self.store.environment_variables[variable.id]
        return _ok({"message": "Environment variable deleted", "code": "ENVIRONMENT_VARIABLE_DELETED"})

    # ---- sandbox-only ---------------------------------------------------------------------

    def sign_in_credentials(self, body: _Body) -> tuple[str, str]:
        email = body.required_text("email")
        password = body.text("password", required=True)
        assert password is not None
        return email, password

    def workflow_fires(self, email: str) -> bool:
        """Whether Kinde's existing-password trigger fires for this sign-in (``workflow_fires_for``)."""
        if self.workflow_bundle is None:
            return False
        user = self.store.user_by_email(email)
        if user is None:
            return self.config.workflow_fires_for in ("absent", "both")
        return user.password is None and self.config.workflow_fires_for in ("passwordless", "both")

    def workflow_event(self, request: Request, email: str, password: str) -> dict[str, Any]:
        """The event as Kinde's docs show it for ``user:existing_password_provided``: the typed password,
        Kinde's own (bcrypt) hash of it, and whether Kinde holds the email."""
        client = request.client
        auth: dict[str, Any] = {
            "providedEmail": email,
            "password": password,
            "hashedPassword": bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode(),
            "hasUserRecordInKinde": self.store.user_by_email(email) is not None,
        }
        if self.config.workflow_event_hash == "absent":
            del auth["hashedPassword"]
        return {
            "request": {"ip": client.host if client else "127.0.0.1", "userAgent": request.headers.get("user-agent", "")},
            "context": {
                "auth": auth,
                "domains": {"kindeDomain": str(request.base_url).rstrip("/")},
                "application": {"clientId": "sandbox-application"},
                "workflow": {"trigger": EXISTING_PASSWORD_TRIGGER},
            },
        }

    def workflow_env(self) -> dict[str, tuple[str, bool]]:
        """What ``kinde.env`` gives the workflow: the environment variables Kinde holds (``migrator lazy setup``
        writes them through the API), over the configured defaults for those it does not hold."""
        values = {
            **self.config.workflow_env,
            "KINDE_WF_M2M_CLIENT_ID": self.config.client_id,
            "KINDE_WF_M2M_CLIENT_SECRET": self.config.client_secret,
        }
        env = {key: (value, key in self.config.workflow_secrets) for key, value in values.items()}
        for variable in sorted(self.store.environment_variables.values(), key=lambda v: v.seq):
            env[variable.key] = (variable.value, variable.is_secret)
        return env

    def after_workflow(self, email: str, outcome: WorkflowOutcome) -> None:
        """A refusal or failure ends the sign-in; a completed run lets Kinde check the password itself
        (GUESS, as Kinde's drip-feed tutorial implies: the same sign-in succeeds once the password is set)."""
        self.store.workflow_runs.append(
            {"email": email, "outcome": outcome.outcome, "message": outcome.message, "error": outcome.error}
        )
        self.store.workflow_log.append(outcome.log)
        if outcome.outcome in ("refused", "denied"):
            user = self.store.user_by_email(email)
            if user is not None:
                user.failed_sign_ins += 1
            raise KindeError(401, "WORKFLOW_REFUSED", outcome.message or "Sign-in refused.")
        if outcome.outcome == "failed":
            raise KindeError(502, "WORKFLOW_FAILED", "Sign-in failed: the workflow stopped (failurePolicy stop).")

    def sign_in(self, email: str, password: str) -> Response:
        """Proves a migrated user can sign in with the old password: 200, 401 wrong, 404 unknown; a user
        without a password is offered Kinde's one-time code (401 ONE_TIME_CODE_REQUIRED)."""
        user = self.store.user_by_email(email)
        if user is None:
            raise KindeError(404, "USER_NOT_FOUND", f"No user with email {email}.")
        if user.password is None:
            raise KindeError(
                401, "ONE_TIME_CODE_REQUIRED", "Sign-in failed: the user has no password; Kinde sends a one-time code."
            )
        if not verify_kinde_password(user.password, password):
            user.failed_sign_ins += 1
            raise KindeError(401, "INVALID_CREDENTIALS", "Sign-in failed: the password does not match.")
        if user.one_time_code:
            raise KindeError(
                403, "ONE_TIME_CODE_REQUIRED", "First sign-in: a one-time code was sent (password not marked verified)."
            )
        user.total_sign_ins += 1
        user.failed_sign_ins = 0
        user.last_signed_in = _now_iso()
        return _ok(
            {
                "id": user.id,
                "signed_in": True,
                "password_method": _password_method(user.password),
                "is_temporary_password": bool(user.password.get("is_temporary_password")),
                "is_password_reset_requested": user.is_password_reset_requested,
                "is_suspended": user.is_suspended,
            }
        )

    def state(self, call: _Call) -> Response:
        return _ok(self.store.snapshot())

    # ---- reading back (what `migrator verify` reads) ---------------------------------------

    def list_identities(self, call: _Call) -> Response:
        """GET /api/v1/users/{user_id}/identities: ``is_confirmed`` is the ``is_verified`` sent."""
        user = self._user(call.path_params["user_id"])
        size = self.config.identities_page_size
        ids = [i.id for i in user.identities]
        after = call.query.get("starting_after")
        if after and after not in ids:
            raise _invalid("'starting_after' is not a known id")
        start = ids.index(after) + 1 if after else 0
        window = user.identities[start:]
        primary = {kind: user.first(kind) for kind in ("email", "phone", "username")}
        items = [
            _without_none(
                {
                    "id": i.id,
                    "type": i.type,
                    "is_confirmed": i.is_verified,
                    "name": i.value,
                    "email": i.value if i.type in ("email", "social") else None,
                    "connection_id": i.connection_id if self.config.identity_connection_id else None,
                    "is_primary": primary.get(i.type) == i.value,
                    "created_on": user.created_on,
                    "total_logins": 0,
                }
            )
            for i in window[:size]
        ]
        return _ok({**_SUCCESS, "identities": items, "has_more": len(window) > size})

    def list_organization_users(self, call: _Call) -> Response:
        """GET /api/v1/organizations/{org_code}/users: members in the order they joined, with role keys."""
        org = self.store.organizations.get(call.path_params["org_code"])
        if org is None:
            raise self._unknown_organization(call.path_params["org_code"])
        _sort_order(call.query, ("name_asc", "name_desc", "email_asc", "email_desc", "id_asc", "id_desc"))
        order = {user_id: n for n, user_id in enumerate(org.members)}
        page, next_token = _paginate(
            (uid for uid in org.members if uid in self.store.users), lambda uid: (order[uid],), call.query
        )
        items = []
        for user_id in page:
            user = self.store.users[user_id]
            full_name = " ".join(n for n in (user.given_name, user.family_name) if n)
            items.append(
                _without_none(
                    {
                        "id": user.id,
                        "email": user.first("email"),
                        "full_name": full_name,
                        "first_name": user.given_name,
                        "last_name": user.family_name,
                        "joined_on": user.created_on,
                        "is_suspended": user.is_suspended,
                        "roles": list(org.members[user_id].roles),
                    }
                )
            )
        payload: dict[str, Any] = {**_SUCCESS, "organization_users": items}
        if next_token:
            payload["next_token"] = next_token
        return _ok(payload)

    def list_organization_user_roles(self, call: _Call) -> Response:
        """GET /api/v1/organizations/{org_code}/users/{user_id}/roles: one member's roles (id, key, name).

        GUESS: the spec names no answer for a user who is not a member; this says so (400), as the
        membership writes do for an unknown user, rather than an empty list that reads as "no roles"."""
        org = self.store.organizations.get(call.path_params["org_code"])
        if org is None:
            raise self._unknown_organization(call.path_params["org_code"])
        member = org.members.get(call.path_params["user_id"])
        if member is None or call.path_params["user_id"] not in self.store.users:
            raise KindeError(400, "USER_NOT_IN_ORGANIZATION", f"User is not a member of organization {org.code}.")
        roles = [role for key in member.roles if (role := self.store.role_by_key(key)) is not None]
        items = [{"id": role.id, "key": role.key, "name": role.name} for role in roles]
        return _ok({**_SUCCESS, "roles": items})

    # ---- sandbox only: change a user behind the migrator's back (tests of `verify`) --------

    def tamper_delete(self, call: _Call) -> Response:
        user = self._user(call.path_params["user_id"])
        self._forget(user)
        return _ok(_SUCCESS)

    def _forget(self, user: _User) -> None:
        del self.store.users[user.id]
        for index in (self.store.emails, self.store.usernames, self.store.phones):
            for key in [k for k, owner in index.items() if owner == user.id]:
                del index[key]
        for org in self.store.organizations.values():
            org.members.pop(user.id, None)

    def tamper_duplicate(self, call: _Call) -> Response:
        """A second user with the same identities, bypassing uniqueness (as an import by another tool might)."""
        source = self._user(call.path_params["user_id"])
        copy = _User(
            id=self.store.new_user_id(),
            seq=self.store.next_seq(),
            created_on=_now_iso(),
            provided_id=call.body.text("provided_id") if "provided_id" in call.body.data else source.provided_id,
            given_name=source.given_name,
            family_name=source.family_name,
            identities=[_Identity(i.type, i.value, i.is_verified) for i in source.identities],
        )
        self.store.users[copy.id] = copy
        return _ok({**_SUCCESS, "id": copy.id})

    def tamper_alter(self, call: _Call) -> Response:
        """Profile fields and flags; ``remove_identities`` (values), ``unverify`` (values),
        ``leave_organizations`` (codes), ``roles`` ({org code: [role keys]})."""
        user = self._user(call.path_params["user_id"])
        body = call.body
        for name in ("given_name", "family_name", "provided_id"):
            if name in body.data:
                setattr(user, name, body.text(name))
        for name in ("is_suspended", "is_password_reset_requested"):
            if (flag := body.flag(name)) is not None:
                setattr(user, name, flag)
        removed = set(body.text_list("remove_identities"))
        for identity in [i for i in user.identities if i.value in removed]:
            user.identities.remove(identity)
            index = {"email": self.store.emails, "phone": self.store.phones}.get(identity.type, self.store.usernames)
            key = identity.value if identity.type == "phone" else identity.value.lower()
            if index.get(key) == user.id:
                del index[key]
        for identity in user.identities:
            if identity.value in set(body.text_list("unverify")):
                identity.is_verified = False
        for code in body.text_list("leave_organizations"):
            if code in self.store.organizations:
                self.store.organizations[code].members.pop(user.id, None)
        roles = body.obj("roles")
        for code in roles.data if roles else {}:
            member = self.store.organizations[code].members.get(user.id) if code in self.store.organizations else None
            if member is not None:
                member.roles = roles.text_list(code) if roles else []
        self._tamper_extras(user, body)
        return _ok(_SUCCESS)

    def _tamper_extras(self, user: _User, body: _Body) -> None:
        """``properties`` ({key: value}, null removes one) and ``remove_social`` (values of social identities)."""
        properties = body.obj("properties")
        for key, value in (properties.data if properties else {}).items():
            if value is None:
                user.properties.pop(key, None)
            else:
                user.properties[key] = str(value)
        social = set(body.text_list("remove_social"))
        user.identities = [i for i in user.identities if not (i.type == "social" and i.value in social)]

    def tamper_role(self, call: _Call) -> Response:
        """``PATCH /_sandbox/roles/{key}`` ``{"remove_permissions": [keys]}``: detach permissions behind our back."""
        role = self.store.role_by_key(call.path_params["key"])
        if role is None:
            raise KindeError(404, "ROLE_NOT_FOUND", f"No role with key {call.path_params['key']}.")
        removed = {
            p.id for key in call.body.text_list("remove_permissions") if (p := self.store.permission_by_key(key))
        }
        role.permission_ids = [p for p in role.permission_ids if p not in removed]
        return _ok(_SUCCESS)

    def import_file(self, call: _Call) -> Response:
        """The dashboard's import of one file (``?format=``); the answer is its error list."""
        config = self.config
        importer = Importer(
            self.store,
            role_header=config.import_role_header,
            csv_requires=config.import_csv_requires,
            password_verified=config.import_password_verified,
            ndjson_verified=config.import_ndjson_verified,
            ndjson_schema=config.import_ndjson_schema,
            connections=dict(config.import_connections),
        )
        try:
            report = importer.ingest(call.query.get("format", ""), call.raw_body)
        except (Rejected, UnicodeDecodeError) as exc:
            raise _invalid(f"the file cannot be imported: {exc}") from None
        return _ok(report.to_json())


# --------------------------------------------------------------------------------------------
# Wiring: front door (counting, rate limit, catch-all), dispatch, error rendering
# --------------------------------------------------------------------------------------------


class TokenBucket:
    """``rate`` tokens per second, capacity ``max(1, rate)``; a refused take consumes nothing.

    With ``shared``, another client takes ``shared.share`` of the refill during its window (timed
    from the first take), so what is left for the caller steps down, then back up.
    """

    def __init__(self, rate: float, clock: Callable[[], float], shared: SharedQuota | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate_limit_rps must be positive (or None for no limit)")
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.clock = clock
        self.shared = shared
        self.tokens = self.capacity
        self.updated = clock()
        self.first_take: float | None = None

    def _refill(self, since: float, now: float) -> float:
        """Tokens left for the caller between ``since`` and ``now``: the rate, less the other client's share."""
        tokens = (now - since) * self.rate
        if self.shared is not None and self.first_take is not None:
            start = self.first_take + self.shared.start
            overlap = max(0.0, min(now, start + self.shared.duration) - max(since, start))
            tokens -= overlap * self.rate * self.shared.share
        return tokens

    def available_rate(self, now: float) -> float:
        """Tokens per second left for the caller at ``now``."""
        shared = self.shared
        if shared is not None and self.first_take is not None:
            start = self.first_take + shared.start
            if start <= now < start + shared.duration:
                return max(1e-9, self.rate * (1.0 - shared.share))
        return self.rate

    def take(self) -> float | None:
        """None when a token was taken, else the seconds until one is free."""
        now = self.clock()
        if self.first_take is None:
            self.first_take = now
        self.tokens = min(self.capacity, self.tokens + self._refill(self.updated, now))
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.available_rate(now)


class _Renderer:
    def __init__(self, config: KindeSandboxConfig) -> None:
        self.config = config

    def error(self, error: KindeError) -> JSONResponse:
        if error.oauth:
            payload: dict[str, Any] = {"error": error.code, "error_description": error.message}
        else:
            # The spec's not_found_response has ``errors`` as one object; every 404 follows it.
            shape = "object" if error.status == 404 else self.config.error_shape
            payload = error_payload(error.code, error.message, shape)
        return JSONResponse(payload, status_code=error.status, headers=error.headers)


class _FrontDoor:
    """Outermost layer inside the app: counts every request, rate limits the API paths, and turns
    any exception into a 500 envelope, so a client never sees a traceback."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: KindeSandboxConfig,
        store: KindeStore,
        routes: Sequence[Route],
    ) -> None:
        self.app = app
        self.config = config
        self.store = store
        self.routes = routes
        self.renderer = _Renderer(config)
        rps = config.rate_limit_rps
        self.bucket = TokenBucket(rps, config.clock, config.shared_quota) if rps is not None else None

    def _template(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return route.path
        return _UNMATCHED_ROUTE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = f"{scope['method']} {self._template(scope)}"
        status = 500
        started = False

        async def send_and_watch(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        requests = self.store.requests
        with self.store.lock:
            requests.arrived()
        try:
            throttle = self._throttle(scope["path"])
            if throttle is not None:
                await throttle(scope, receive, send_and_watch)
            else:
                await self.app(scope, receive, send_and_watch)
        except Exception:
            logger.exception("kinde sandbox: unhandled error on %s", route)
            if started:
                raise
            failure = KindeError(500, "INTERNAL_SERVER_ERROR", "Something went wrong.")
            await self.renderer.error(failure)(scope, receive, send_and_watch)
        finally:
            with self.store.lock:
                requests.finished(route, status)

    def _throttle(self, path: str) -> Response | None:
        if self.bucket is None or not path.startswith(("/api/", "/oauth2/")):
            return None
        with self.store.lock:
            wait = self.bucket.take()
        if wait is None:
            return None
        pairs = reset_headers(self.config.rate_limit_headers, wait, self.config.rate_limit_reset_form)
        headers = {name.decode(): value.decode() for name, value in pairs}
        return self.renderer.error(KindeError(429, "TOO_MANY_REQUESTS", "Request was throttled.", headers=headers))


# KindeSandboxConfig.refused_route: the route a Kinde that does not serve it refuses whole
REFUSED_ROUTES = {
    "user": "/api/v1/user",
    "organization": "/api/v1/organization/{org_code}",
    "role": "/api/v1/roles/{role_id}",
}


def _endpoint(api: _KindeApi, renderer: _Renderer, by_method: Mapping[str, _Operation]) -> Callable[..., Any]:
    """One Starlette endpoint per path: auth, then body parsing, then the handler, under the lock."""

    async def endpoint(request: Request) -> Response:
        operation = by_method.get(request.method) or by_method["GET"]  # HEAD is answered as GET
        raw_body = await request.body()
        try:
            if REFUSED_ROUTES.get(api.config.refused_route) == operation.path:
                raise KindeError(404, "ROUTE_NOT_FOUND", "The requested API route does not exist")
            with api.store.lock:
                if operation.scope is not None:
                    api.authorize(request, operation.scope)
                body = _parse_json_body(operation.body, raw_body)
                call = _Call(request, request.query_params, request.path_params, raw_body, body)
                return operation.handler(call)
        except KindeError as error:
            return renderer.error(error)

    return endpoint


def _sign_in_endpoint(api: _KindeApi, renderer: _Renderer) -> Callable[..., Any]:
    """``POST /_sandbox/sign-in``: Kinde's own password check, or first the workflow on the existing-password
    trigger, run outside the store lock (it calls this app's API back over loopback)."""

    async def endpoint(request: Request) -> Response:
        raw_body = await request.body()
        try:
            with api.store.lock:
                email, password = api.sign_in_credentials(_parse_json_body("json", raw_body))
                fires = api.workflow_fires(email)
                if fires:
                    event, env = api.workflow_event(request, email, password), api.workflow_env()
            if fires:
                assert api.workflow_bundle is not None
                outcome = await run_workflow(api.workflow_bundle, event, env)
                with api.store.lock:
                    api.after_workflow(email, outcome)
            with api.store.lock:
                return api.sign_in(email, password)
        except KindeError as error:
            return renderer.error(error)

    return endpoint


def _parse_json_body(rule: BodyRule, raw: bytes) -> _Body:
    if rule == "none" or (rule == "optional_json" and not raw.strip()):
        return _Body({})
    if not raw.strip():
        raise _invalid("A JSON request body is required.")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise KindeError(400, "INVALID_JSON", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise _invalid("The request body must be a JSON object.")
    return _Body(data)


def build_kinde_app(config: KindeSandboxConfig | None = None) -> Starlette:
    """The emulator as a Starlette app; ``app.state.store`` is its :class:`KindeStore`."""
    config = config or KindeSandboxConfig()
    if config.rate_limit_rps is not None and not config.rate_limit_rps > 0:
        raise ValueError(f"rate_limit_rps must be positive, or None for no limit; got {config.rate_limit_rps!r}")
    if config.token_max_uses is not None and config.token_max_uses < 1:
        raise ValueError(f"token_max_uses must be at least 1, or None; got {config.token_max_uses!r}")
    store = KindeStore()
    api = _KindeApi(config, store)
    renderer = _Renderer(config)

    by_path: dict[str, dict[str, _Operation]] = {}
    for operation in api.operations():
        by_path.setdefault(operation.path, {})[operation.method] = operation
    routes = [
        Route(path, _endpoint(api, renderer, by_method), methods=list(by_method)) for path, by_method in by_path.items()
    ]
    routes.append(Route("/_sandbox/sign-in", _sign_in_endpoint(api, renderer), methods=["POST"]))
    bundle_dir = tempfile.mkdtemp(prefix="kinde-workflow-")

    def sync_workflow(folder: Path) -> None:
        """Kinde's "Sync code": the sign-in runs this folder's workflow from now on (a runbook's or the
        demo's `lazy init` folder, written after the sandbox started)."""
        bundle = bundle_workflow(folder, Path(bundle_dir))
        with store.lock:
            api.workflow_bundle = bundle

    if config.workflow is not None:
        sync_workflow(config.workflow)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            error = KindeError(404, "ROUTE_NOT_FOUND", "The requested API route does not exist")
        elif exc.status_code == 405:
            error = KindeError(
                405,
                "METHOD_NOT_ALLOWED",
                f"{request.method} is not allowed on {request.url.path}",
                headers=exc.headers,
            )
        else:
            error = KindeError(exc.status_code, "HTTP_ERROR", str(exc.detail))
        return renderer.error(error)

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        # Only reached if the front door itself fails; it normally renders the 500 first.
        return renderer.error(KindeError(500, "INTERNAL_SERVER_ERROR", "Something went wrong."))

    app = Starlette(
        routes=routes,
        middleware=[Middleware(_FrontDoor, config=config, store=store, routes=routes)],
        exception_handlers={HTTPException: http_error, Exception: unexpected_error},
    )
    app.state.store = store
    app.state.config = config
    app.state.sync_workflow = sync_workflow
    weakref.finalize(app, shutil.rmtree, bundle_dir, ignore_errors=True)
    return app
