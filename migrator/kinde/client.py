"""Kinde Management API: user lookup/create/password/update, organizations, roles.

Each call names the scope it needs, so a refusal says which scope to grant. The M2M token
(``migrator.kinde.token``) is requested through the same limiter, retry policy and error mapping as
every other call, and put on each API request by an ``httpx.Auth`` that renews it once on a 401/403.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from migrator.errors import AlreadyExists, ApiError, AuthError, NotFound, ProtocolError, ScopeError
from migrator.http import ApiClient, error_details
from migrator.kinde.scopes import WHERE_TO_GRANT
from migrator.kinde.token import BearerAuth, Grant, TokenManager, read_grant
from migrator.limiter import AdaptiveLimiter
from migrator.request_log import ATTEMPT

TOKEN_PATH = "/oauth2/token"
MAX_PAGE = 500
BATCH_ADD_LIMIT = 100  # Kinde: at most 100 objects per bulk request
MAX_LOOKUP_QUERY = 3500  # characters of comma-joined values per lookup: keeps URLs well under 8 KB

# Kinde's answers that a thing does not exist: the only proof that a user, organization or role is gone.
# The spec's examples name ORGANIZATION_NOT_FOUND and ROLE_NOT_FOUND; an unknown user id is answered
# USER_NOT_FOUND; ../shared/reference/kinde-management-api.md (section 7) lists INVALID_PERMISSION_ID for a
# permission that does not exist, so the ``INVALID_<THING>_ID`` and ``<THING>_INVALID`` forms count too.
# Status 400 (the only client error the spec names for these operations) or 404. A 404 with any other code
# (ROUTE_NOT_FOUND: the route itself is unknown) or none says nothing about the thing: a protocol error.
NOT_FOUND_SUBJECTS = {
    "USER": "user",
    "ORGANIZATION": "organization",
    "ORG": "organization",
    "ROLE": "role",
    "IDENTITY": "identity",
    "PERMISSION": "permission",
    "PROPERTY": "property",
}
NOT_FOUND_FORMS = ("{}_NOT_FOUND", "{}_INVALID", "INVALID_{}_ID")
NOT_FOUND_CODES = {
    form.format(name): subject for name, subject in NOT_FOUND_SUBJECTS.items() for form in NOT_FOUND_FORMS
}


def not_found_subject(status: int, code: str | None) -> str | None:
    """What a Kinde error answer proves absent (``user``, ``organization``, ``role``, ...), or None."""
    if status not in (400, 404) or not code:
        return None
    return NOT_FOUND_CODES.get(code.strip().upper())


@dataclass(frozen=True)
class KindeUser:
    """The parts of a Kinde user the migrator needs to reconcile."""

    id: str
    provided_id: str | None
    email: str | None
    username: str | None
    phone: str | None
    # Kinde says the user signed in at least once (``total_sign_ins`` / ``last_signed_in``): `lazy status`
    signed_in: bool = False


@dataclass(frozen=True)
class CreatedUser:
    """A user Kinde created; ``refused`` indexes the request's identities Kinde did not create."""

    id: str
    refused: tuple[int, ...] = ()


def refused_identities(sent: list[dict[str, Any]], answered: Any) -> tuple[int, ...]:
    """Which identities of a create Kinde reports as not created (``identities[].result.created``).

    The answer names only each identity's type, so the n-th answered identity of a type is taken
    for the n-th sent identity of that type. An answer without the list says nothing was refused.
    """
    if not isinstance(answered, list):
        return ()
    by_type: dict[str, list[int]] = {}
    for index, identity in enumerate(sent):
        by_type.setdefault(str(identity.get("type")), []).append(index)
    refused: list[int] = []
    for item in answered:
        if not isinstance(item, dict):
            continue
        indexes = by_type.get(str(item.get("type")))
        if not indexes:
            continue
        index = indexes.pop(0)
        result = item.get("result")
        if isinstance(result, dict) and result.get("created") is False:
            refused.append(index)
    return tuple(sorted(refused))


@dataclass(frozen=True)
class M2MCredentials:
    """The M2M application's client credentials and the Management API's audience."""

    client_id: str
    client_secret: SecretStr
    audience: str


class KindeClient(ApiClient):
    service = "Kinde"

    def __init__(
        self,
        http: httpx.AsyncClient,
        limiter: AdaptiveLimiter,
        credentials: M2MCredentials,
        *,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(http, limiter, **kwargs)
        self.credentials = credentials
        self.tokens = TokenManager(self._request_token, clock=clock)
        self.auth = BearerAuth(self.tokens)

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:  # type: ignore[override]
        """An API call with the M2M token (renewed once if Kinde refuses it)."""
        return await super().call(method, path, auth=self.auth, **kwargs)

    async def _request_token(self) -> Grant:
        """client_credentials, paced and retried like any call (asking again is harmless)."""
        form = {
            "grant_type": "client_credentials",
            "client_id": self.credentials.client_id,
            "client_secret": self.credentials.client_secret.get_secret_value(),
            "audience": self.credentials.audience,
        }
        answer = await super().call("POST", TOKEN_PATH, data=form, auth=None)
        grant = read_grant(answer)
        if grant is None:
            raise ProtocolError(
                f"{self._where('POST', TOKEN_PATH)} answered without an access token", service=self.service
            )
        return grant

    def classify(self, response: httpx.Response, method: str, path: str, body: Any, scope: str | None) -> ApiError:
        """Kinde's refinements: a refused token request names the settings to check; a 401/403 that
        reaches here was answered to a fresh token, so it names the scope the endpoint needs."""
        status = response.status_code
        code, message = error_details(body)
        detail = f"{status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        if path != TOKEN_PATH and (subject := not_found_subject(status, code)):
            return NotFound(
                f"{self._where(method, path)}: Kinde has no such {subject} ({detail})",
                what=subject,
                service=self.service,
                status=status,
                code=code,
            )
        if status == 404:
            return ProtocolError(
                f"{self._where(method, path)} answered {detail}, which names nothing that is missing: the route is "
                "unknown at this address (check KINDE_DOMAIN / KINDE_AUDIENCE point at the Kinde Management API)",
                service=self.service,
                status=status,
                code=code,
            )
        if status not in (400, 401, 403) or (status == 400 and path != TOKEN_PATH):
            return super().classify(response, method, path, body, scope)
        if path == TOKEN_PATH:
            return AuthError(
                f"Kinde refused the token request ({detail}): check KINDE_MANAGEMENT_CLIENT_ID, "
                f"KINDE_MANAGEMENT_CLIENT_SECRET and the audience {self.credentials.audience} "
                "(KINDE_DOMAIN / KINDE_AUDIENCE)",
                service=self.service,
                status=status,
                code=code,
            )
        where = self._where(method, path)
        if status == 403:
            needs = f"the M2M application needs the scope {scope}; grant it in Kinde ({WHERE_TO_GRANT})"
            return ScopeError(
                f"{where} is not allowed ({detail}) even with a fresh token: "
                + (needs if scope else "check the M2M application's access to the Kinde Management API"),
                scope=scope,
                service=self.service,
                status=status,
                code=code,
            )
        return AuthError(
            f"{where} was refused ({detail}) even with a fresh token: check the M2M application is authorized "
            "for the Kinde Management API" + (f" and has the scope {scope} ({WHERE_TO_GRANT})" if scope else ""),
            service=self.service,
            status=status,
            code=code,
        )

    # -- users -------------------------------------------------------------------------------
    @staticmethod
    def _parse_user(raw: Any) -> KindeUser | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            return None
        email = raw.get("email") or raw.get("preferred_email")
        return KindeUser(
            id=raw["id"],
            provided_id=raw.get("provided_id") or None,
            email=email if isinstance(email, str) else None,
            username=raw.get("username") if isinstance(raw.get("username"), str) else None,
            phone=raw.get("phone") if isinstance(raw.get("phone"), str) else None,
            signed_in=_signed_in(raw),
        )

    async def find_users(self, field: str, values: Sequence[str]) -> list[KindeUser]:
        """Users whose ``field`` (email, username, phone) is one of ``values``: one GET per page."""
        found: list[KindeUser] = []
        params: dict[str, Any] = {field: ",".join(values), "page_size": MAX_PAGE}
        while True:
            body = await self.call("GET", "/api/v1/users", params=params, scope="read:users")
            users = body.get("users") or []
            if not isinstance(users, list):
                raise ProtocolError("Kinde GET /api/v1/users answered users that are not a list", service=self.service)
            found.extend(u for u in map(self._parse_user, users) if u)
            next_token = body.get("next_token")
            if not next_token or not users:
                return found
            params = {**params, "next_token": next_token}

    async def create_user(self, body: dict[str, Any]) -> CreatedUser:
        """POST /api/v1/user. 400/409 become ``AlreadyExists`` (reconciled by lookup); a user created
        without some of its identities says which (``CreatedUser.refused``)."""
        result = await self._create("POST", "/api/v1/user", body, "create:users")
        user_id = result.get("id")
        if not isinstance(user_id, str):
            raise ProtocolError(
                "Kinde POST /api/v1/user answered without a user id", service=self.service, ambiguous=True
            )
        if result.get("created") is False:
            raise AlreadyExists(
                f"Kinde POST /api/v1/user answered created: false for user {user_id}", service=self.service
            )
        return CreatedUser(user_id, refused_identities(body.get("identities") or [], result.get("identities")))

    async def _create(self, method: str, path: str, body: dict[str, Any], scope: str) -> dict[str, Any]:
        """A create: never re-sent after an ambiguous failure; 400/409 mean "may already exist"."""
        try:
            return await self.call(method, path, json=body, scope=scope, idempotent=False)
        except ApiError as exc:
            if exc.status in (400, 409) and not isinstance(exc, AlreadyExists | AuthError):  # AuthError: the token
                raise AlreadyExists(str(exc), service=self.service, status=exc.status, code=exc.code) from None
            raise

    async def add_identity(self, kinde_id: str, identity: dict[str, Any]) -> str | None:
        """POST /api/v1/users/{id}/identities: one identity a create did not carry across; Kinde's id for it
        (None when the answer names none)."""
        body = await self._create("POST", f"/api/v1/users/{kinde_id}/identities", identity, "create:user_identities")
        created = body.get("identity") if isinstance(body, dict) else None
        identity_id = created.get("id") if isinstance(created, dict) else None
        return identity_id if isinstance(identity_id, str) else None

    async def user_organizations(self, kinde_id: str) -> list[str] | None:
        """The codes of the organizations a user belongs to (None: Kinde did not say)."""
        body = await self.call(
            "GET",
            "/api/v1/users",
            params={"user_id": kinde_id, "expand": "organizations", "page_size": MAX_PAGE},
            scope="read:users",
        )
        users = body.get("users")
        for user in users if isinstance(users, list) else []:
            if isinstance(user, dict) and user.get("id") == kinde_id and isinstance(user.get("organizations"), list):
                return [code for code in user["organizations"] if isinstance(code, str)]
        return None

    # -- reading everything back (``migrator verify``) ----------------------------------------
    async def user_pages(self, expand: Sequence[str] = ()) -> AsyncIterator[list[dict[str, Any]]]:
        """Every Kinde user, 500 a page, following ``next_token``; each item has a string ``id``.
        ``expand``: any of ``identities``, ``organizations`` (the spec's list adds them to each user)."""
        extra = {"expand": ",".join(expand)} if expand else {}
        async for page in self._pages("/api/v1/users", "users", "read:users", extra):
            yield [user for user in page if isinstance(user.get("id"), str)]

    async def organization_member_pages(self, org_code: str) -> AsyncIterator[list[dict[str, Any]]]:
        """The members of one organization with their role keys, 500 a page."""
        path = f"/api/v1/organizations/{org_code}/users"
        async for page in self._pages(path, "organization_users", "read:organization_users"):
            yield [member for member in page if isinstance(member.get("id"), str)]

    async def organization_user_roles(self, org_code: str, kinde_id: str) -> list[str]:
        """The role keys of one member of one organization (``GET .../users/{user_id}/roles``)."""
        path = f"/api/v1/organizations/{org_code}/users/{kinde_id}/roles"
        body = await self.call("GET", path, scope="read:organization_user_roles")
        roles = body.get("roles") if isinstance(body, dict) else None
        if not isinstance(roles, list):
            raise ProtocolError(f"Kinde GET {path} answered without a list of roles", service=self.service)
        return [role["key"] for role in roles if isinstance(role, dict) and isinstance(role.get("key"), str)]

    async def _pages(
        self, path: str, key: str, scope: str, extra: dict[str, Any] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        params: dict[str, Any] = {"page_size": MAX_PAGE, **(extra or {})}
        seen_tokens: set[str] = set()
        while True:
            body = await self.call("GET", path, params=params, scope=scope)
            page = body.get(key) if isinstance(body, dict) else None
            if page is None:
                page = []
            if not isinstance(page, list):
                raise ProtocolError(f"Kinde GET {path} answered {key} that is not a list", service=self.service)
            yield [item for item in page if isinstance(item, dict)]
            next_token = body.get("next_token")
            if not next_token or not page:
                return
            if not isinstance(next_token, str) or next_token in seen_tokens:
                raise ProtocolError(
                    f"Kinde GET {path} answered a next_token it had already given: its paging goes round in a circle",
                    service=self.service,
                )
            seen_tokens.add(next_token)
            params = {**params, "next_token": next_token}

    async def user_identities(self, kinde_id: str) -> list[tuple[str, str, bool | None]]:
        """(type, value, is_confirmed) of each identity of a user, following ``has_more``."""
        found: list[tuple[str, str, bool | None]] = []
        for item in await self.user_identity_records(kinde_id):
            if isinstance(item.get("type"), str) and isinstance(item.get("name"), str):
                confirmed = item.get("is_confirmed")
                found.append((item["type"], item["name"], confirmed if isinstance(confirmed, bool) else None))
        return found

    async def set_password(self, kinde_id: str, fields: dict[str, Any]) -> None:
        await self.call("PUT", f"/api/v1/users/{kinde_id}/password", json=fields, scope="update:user_passwords")

    async def update_user(self, kinde_id: str, fields: dict[str, Any]) -> None:
        await self.call("PATCH", "/api/v1/user", params={"id": kinde_id}, json=fields, scope="update:users")

    # -- undo and catch-up deletions (migrator.stages.undo) ---------------------------------
    async def get_user(self, kinde_id: str) -> KindeUser | None:
        """GET /api/v1/user?id=: the user, or None when Kinde says it has no such user (``USER_NOT_FOUND``)."""
        body = await self._user_body(kinde_id)
        if body is None:
            return None
        user = self._parse_user(body)
        if user is None:
            raise ProtocolError("Kinde GET /api/v1/user answered without a user id", service=self.service)
        return user

    async def _user_body(self, kinde_id: str) -> dict[str, Any] | None:
        """GET /api/v1/user?id= as Kinde answers it; None only when Kinde says it has no such user. Any other
        refusal of a read by an id Kinde gave us is a protocol error: never taken for "gone"."""
        try:
            body = await self.call("GET", "/api/v1/user", params={"id": kinde_id}, scope="read:users")
        except ApiError as exc:
            if gone(exc, "user"):
                return None
            if exc.status == 400:
                raise ProtocolError(
                    f"{exc} (a read of a user by its Kinde id refused without saying the user is missing)",
                    service=self.service,
                    status=exc.status,
                    code=exc.code,
                ) from None
            raise
        if not isinstance(body, dict):
            raise ProtocolError("Kinde GET /api/v1/user answered without a user", service=self.service)
        return body

    async def user_profile(self, kinde_id: str) -> dict[str, Any] | None:
        """The fields a catch-up PATCHes, named as PATCH names them (Kinde answers ``first_name``/``last_name``
        for ``given_name``/``family_name``), with ``provided_id``; None when Kinde has no such user."""
        body = await self._user_body(kinde_id)
        if body is None:
            return None
        if body.get("id") != kinde_id:
            raise ProtocolError("Kinde GET /api/v1/user answered another user, or none", service=self.service)
        return {
            "provided_id": body.get("provided_id") or None,
            "given_name": body.get("first_name") or None,
            "family_name": body.get("last_name") or None,
            "is_suspended": bool(body.get("is_suspended")),
        }

    async def make_identity_primary(self, identity_id: str) -> None:
        """PATCH /api/v1/identities/{id} ``is_primary``: a re-added email/phone/username becomes the user's primary."""
        await self.call(
            "PATCH", f"/api/v1/identities/{identity_id}", json={"is_primary": True}, scope="update:identities"
        )

    async def delete_identity(self, identity_id: str) -> None:
        """DELETE /api/v1/identities/{identity_id} (an id from ``user_identity_records``)."""
        await self.call("DELETE", f"/api/v1/identities/{identity_id}", scope="delete:identities")

    async def delete_user(self, kinde_id: str) -> bool:
        """True: Kinde confirmed the deletion; False: it says it has no such user (already gone)."""
        return await self._delete("user", "/api/v1/user", "delete:users", params={"id": kinde_id})

    async def organization_user_ids(self, org_code: str) -> list[str] | None:
        """The ids of an organization's members; None when Kinde says it has no such organization."""
        try:
            return [
                u["id"]
                async for page in self.organization_member_pages(org_code)
                for u in page
                if isinstance(u.get("id"), str)
            ]
        except NotFound as exc:
            if gone(exc, "organization"):
                return None
            raise

    async def delete_organization(self, org_code: str) -> bool:
        """True: deleted; False: Kinde says it has no such organization (already gone)."""
        return await self._delete("organization", f"/api/v1/organization/{org_code}", "delete:organizations")

    async def delete_role(self, role_id: str) -> bool:
        """True: deleted; False: Kinde says it has no such role (already gone)."""
        return await self._delete("role", f"/api/v1/roles/{role_id}", "delete:roles")

    async def _delete(self, subject: str, path: str, scope: str, **kwargs: Any) -> bool:
        """True: Kinde confirmed this DELETE (2xx), or answered a retry of it that the thing is gone (the first
        attempt, whose answer was lost, did it). False: Kinde's first answer proves there was nothing to delete
        (someone else deleted it since we looked). Anything else raises."""
        try:
            await self.call("DELETE", path, scope=scope, **kwargs)
        except NotFound as exc:
            if gone(exc, subject):
                return ATTEMPT.get() > 1
            raise
        return True

    # -- environment variables (what a lazy-migration workflow reads) ------------------------------
    async def environment_variables(self) -> list[dict[str, Any]]:
        """Every environment variable of the business (a secret's value is null: Kinde never shows it)."""
        path = "/api/v1/environment_variables"
        body = await self.call("GET", path, scope="read:environment_variables")
        found = body.get("environment_variables") if isinstance(body, dict) else None
        if not isinstance(found, list):
            raise ProtocolError(f"Kinde GET {path} answered environment_variables that are not a list", service=self.service)
        if body.get("has_more") is True:
            # The spec gives this list no paging parameter: a key not on the page may still exist.
            raise ProtocolError(
                f"Kinde GET {path} answered has_more: true and names no way to read the rest", service=self.service
            )
        return [item for item in found if isinstance(item, dict) and isinstance(item.get("key"), str)]

    async def create_environment_variable(self, key: str, value: str, *, secret: bool) -> None:
        body = {"key": key, "value": value, "is_secret": secret}
        await self._create("POST", "/api/v1/environment_variables", body, "create:environment_variables")

    async def update_environment_variable(self, variable_id: str, value: str, *, secret: bool) -> None:
        await self.call(
            "PATCH",
            f"/api/v1/environment_variables/{variable_id}",
            json={"value": value, "is_secret": secret},
            scope="update:environment_variables",
        )

    # -- organizations and roles ------------------------------------------------------------
    async def _paged(self, path: str, key: str, scope: str) -> list[dict[str, Any]]:
        """Every item of a ``next_token``-paged list (roles, organizations, permissions)."""
        return [item async for page in self._pages(path, key, scope) for item in page]

    async def list_roles(self) -> list[dict[str, Any]]:
        return await self._paged("/api/v1/roles", "roles", "read:roles")

    async def create_role(self, body: dict[str, Any]) -> None:
        await self._create("POST", "/api/v1/roles", body, "create:roles")

    async def list_organizations(self) -> list[dict[str, Any]]:
        return await self._paged("/api/v1/organizations", "organizations", "read:organizations")

    async def create_organization(self, body: dict[str, Any]) -> str:
        result = await self._create("POST", "/api/v1/organization", body, "create:organizations")
        org = result.get("organization")
        code = org.get("code") if isinstance(org, dict) else None
        if not isinstance(code, str):
            raise ProtocolError(
                "Kinde POST /api/v1/organization answered without an organization code", service=self.service
            )
        return code

    async def add_organization_users(self, org_code: str, users: list[dict[str, Any]]) -> None:
        if len(users) > BATCH_ADD_LIMIT:
            raise ValueError(f"at most {BATCH_ADD_LIMIT} users per call")
        await self.call(
            "POST",
            f"/api/v1/organizations/{org_code}/users",
            json={"users": users},
            scope="create:organization_users",
        )

    # -- properties, identities, permissions (metadata, social sign-in, role permissions) ---------
    async def _cursor_list(self, path: str, key: str, scope: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Lists paged by ``starting_after`` + ``has_more`` (properties, categories, identities)."""
        items: list[dict[str, Any]] = []
        params = {**params, "page_size": MAX_PAGE} if "identities" not in path else dict(params)
        while True:
            body = await self.call("GET", path, params=params, scope=scope)
            page = body.get(key) or []
            if not isinstance(page, list):
                raise ProtocolError(f"Kinde GET {path} answered {key} that is not a list", service=self.service)
            items.extend(item for item in page if isinstance(item, dict))
            last = page[-1].get("id") if page and isinstance(page[-1], dict) else None
            if body.get("has_more") is not True or not isinstance(last, str) or last == params.get("starting_after"):
                return items
            params = {**params, "starting_after": last}

    async def list_properties(self, context: str) -> list[dict[str, Any]]:
        return await self._cursor_list("/api/v1/properties", "properties", "read:properties", {"context": context})

    async def create_property(self, body: dict[str, Any]) -> None:
        await self._create("POST", "/api/v1/properties", body, "create:properties")

    async def list_property_categories(self, context: str) -> list[dict[str, Any]]:
        return await self._cursor_list(
            "/api/v1/property_categories", "categories", "read:property_categories", {"context": context}
        )

    async def create_property_category(self, body: dict[str, Any]) -> str:
        result = await self._create("POST", "/api/v1/property_categories", body, "create:property_categories")
        category = result.get("category")
        category_id = category.get("id") if isinstance(category, dict) else None
        if not isinstance(category_id, str):
            raise ProtocolError("Kinde POST /api/v1/property_categories answered without an id", service=self.service)
        return category_id

    async def _property_values(self, path: str, scope: str) -> dict[str, str | None]:
        body = await self.call("GET", path, scope=scope)
        values = body.get("properties")
        if not isinstance(values, list):
            raise ProtocolError(f"Kinde GET {path} answered properties that are not a list", service=self.service)
        return {
            item["key"]: item.get("value") if isinstance(item.get("value"), str) else None
            for item in values
            if isinstance(item, dict) and isinstance(item.get("key"), str)
        }

    async def user_properties(self, kinde_id: str) -> dict[str, str | None]:
        """The user's property values by key (what a re-run compares before writing)."""
        return await self._property_values(f"/api/v1/users/{kinde_id}/properties", "read:user_properties")

    async def set_user_properties(self, kinde_id: str, values: dict[str, str]) -> None:
        await self.call(
            "PATCH", f"/api/v1/users/{kinde_id}/properties", json={"properties": values}, scope="update:user_properties"
        )

    async def organization_properties(self, org_code: str) -> dict[str, str | None]:
        return await self._property_values(
            f"/api/v1/organizations/{org_code}/properties", "read:organization_properties"
        )

    async def set_organization_properties(self, org_code: str, values: dict[str, str]) -> None:
        await self.call(
            "PATCH",
            f"/api/v1/organizations/{org_code}/properties",
            json={"properties": values},
            scope="update:organization_properties",
        )

    async def user_identity_records(self, kinde_id: str) -> list[dict[str, Any]]:
        """Each identity of a user as Kinde lists it (``GET /users/{id}/identities``, paged by ``has_more``)."""
        return await self._cursor_list(f"/api/v1/users/{kinde_id}/identities", "identities", "read:user_identities", {})

    async def list_permissions(self) -> list[dict[str, Any]]:
        return await self._paged("/api/v1/permissions", "permissions", "read:permissions")

    async def create_permission(self, body: dict[str, Any]) -> None:
        await self._create("POST", "/api/v1/permissions", body, "create:permissions")

    async def role_permissions(self, role_id: str) -> list[dict[str, Any]]:
        return await self._paged(f"/api/v1/roles/{role_id}/permissions", "permissions", "read:role_permissions")

    async def add_role_permissions(self, role_id: str, permission_ids: Sequence[str]) -> None:
        """PATCH /api/v1/roles/{id}/permissions: attach (never remove) these permissions."""
        await self.call(
            "PATCH",
            f"/api/v1/roles/{role_id}/permissions",
            json={"permissions": [{"id": permission_id} for permission_id in permission_ids]},
            scope="update:role_permissions",
        )

    # -- undo of definitions: attachments, permissions, property definitions ---------------------
    async def remove_role_permission(self, role_id: str, permission_id: str) -> bool:
        """DELETE /api/v1/roles/{role_id}/permissions/{permission_id}: detach one permission from a role.
        True: detached; False: Kinde says the role has no such permission (already gone)."""
        path = f"/api/v1/roles/{role_id}/permissions/{permission_id}"
        return await self._delete("permission", path, "delete:role_permissions")

    async def delete_permission(self, permission_id: str) -> bool:
        """True: deleted; False: Kinde says it has no such permission (already gone)."""
        return await self._delete("permission", f"/api/v1/permissions/{permission_id}", "delete:permissions")

    async def delete_property(self, property_id: str) -> bool:
        """True: deleted; False: Kinde says it has no such property (already gone)."""
        return await self._delete("property", f"/api/v1/properties/{property_id}", "delete:properties")

    async def restore_organization_properties(self, org_code: str, values: dict[str, str | None]) -> None:
        """PATCH values back; ``None`` asks Kinde to clear one (the spec's ``properties`` object allows it)."""
        await self.call(
            "PATCH",
            f"/api/v1/organizations/{org_code}/properties",
            json={"properties": values},
            scope="update:organization_properties",
        )

    async def users_with_properties(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Every Kinde user with its property values: ``GET /api/v1/search/users?query=*&expand=properties``,
        paged by ``starting_after`` (the spec gives it no ``has_more``) until an empty page."""
        params: dict[str, Any] = {"query": "*", "expand": "properties", "page_size": MAX_PAGE}
        path = "/api/v1/search/users"
        while True:
            body = await self.call("GET", path, params=params, scope="read:users")
            page = body.get("results") if isinstance(body, dict) else None
            if page is None:
                return
            if not isinstance(page, list):
                raise ProtocolError(f"Kinde GET {path} answered results that are not a list", service=self.service)
            users = [user for user in page if isinstance(user, dict) and isinstance(user.get("id"), str)]
            if not users:
                return
            yield users
            if users[-1]["id"] == params.get("starting_after"):
                raise ProtocolError(f"Kinde GET {path} answered the same page again", service=self.service)
            params = {**params, "starting_after": users[-1]["id"]}


def gone(exc: BaseException, subject: str) -> bool:
    """Kinde's answer proves ``subject`` (``user``, ``organization``, ``role``, ...) does not exist."""
    return isinstance(exc, NotFound) and exc.what == subject


def _signed_in(raw: dict[str, Any]) -> bool:
    total = raw.get("total_sign_ins")
    return (isinstance(total, int) and not isinstance(total, bool) and total > 0) or bool(raw.get("last_signed_in"))


def lookup_batches(
    values: Sequence[str], *, max_chars: int = MAX_LOOKUP_QUERY, max_items: int = 100
) -> list[list[str]]:
    """Split values into comma-joined groups that keep the URL short (URL-encoding can triple it)."""
    batches: list[list[str]] = []
    current: list[str] = []
    size = 0
    for value in values:
        if current and (size + len(value) + 1 > max_chars or len(current) >= max_items):
            batches.append(current)
            current, size = [], 0
        current.append(value)
        size += len(value) + 1
    if current:
        batches.append(current)
    return batches
