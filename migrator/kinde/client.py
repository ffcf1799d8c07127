"""Kinde Management API: M2M token, user lookup/create/password/update, organizations, roles.

Each call names the scope it needs, so a 403 becomes a message that says which scope to grant.
The token is cached, renewed a minute before it expires, and renewed once more if the API answers
401 anyway (Kinde's documented lifetime is uncertain: 1 h or 24 h; we trust ``expires_in``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from migrator.errors import AlreadyExists, ApiError, AuthError, ProtocolError
from migrator.http import ApiClient, error_details
from migrator.limiter import AdaptiveLimiter

TOKEN_RENEW_MARGIN = 60.0
DEFAULT_LIFETIME = 3600.0
TOKEN_ATTEMPTS = 4  # tries of one token request that met a transient failure
MAX_PAGE = 500
BATCH_ADD_LIMIT = 100  # Kinde: at most 100 objects per bulk request
MAX_LOOKUP_QUERY = 3500  # characters of comma-joined values per lookup: keeps URLs well under 8 KB


@dataclass(frozen=True)
class KindeUser:
    """The parts of a Kinde user the migrator needs to reconcile."""

    id: str
    provided_id: str | None
    email: str | None
    username: str | None
    phone: str | None


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


class TokenManager:
    """Client-credentials token, cached and renewed before expiry; safe under concurrency."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        client_id: str,
        client_secret: SecretStr,
        audience: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._client_id = client_id
        self._client_secret = client_secret
        self._audience = audience
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.scopes: frozenset[str] | None = None

    async def token(self, *, force: bool = False, stale: str | None = None) -> str:
        async with self._lock:
            if force and stale is not None and self._token != stale:
                return self._token or await self._fetch()  # another request already renewed it
            if force or self._token is None or self._clock() >= self._expires_at:
                return await self._fetch()
            return self._token

    async def _fetch(self) -> str:
        data = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "audience": self._audience,
        }
        for attempt in range(1, TOKEN_ATTEMPTS + 1):
            # A 5xx, a 429 or a dropped connection is worth another try: asking again is harmless.
            try:
                response = await self._http.post("/oauth2/token", data=data)
            except httpx.TransportError as exc:
                if attempt < TOKEN_ATTEMPTS:
                    await asyncio.sleep(0.2 * 2**attempt)
                    continue
                raise ApiError(
                    f"Kinde POST /oauth2/token: cannot reach the Kinde domain ({type(exc).__name__}); check KINDE_DOMAIN",
                    service="Kinde",
                ) from None
            if (response.status_code == 429 or response.status_code >= 500) and attempt < TOKEN_ATTEMPTS:
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            break
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code in (400, 401, 403):
            code, message = error_details(body)
            raise AuthError(
                f"Kinde refused the token request ({response.status_code} {code or ''}".rstrip()
                + (f": {message}" if message else "")
                + "): check KINDE_MANAGEMENT_CLIENT_ID, KINDE_MANAGEMENT_CLIENT_SECRET and the audience "
                f"{self._audience} (KINDE_DOMAIN / KINDE_AUDIENCE)",
                service="Kinde",
                status=response.status_code,
                code=code,
            )
        if not response.is_success or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise ProtocolError(
                f"Kinde POST /oauth2/token answered {response.status_code} without an access token",
                service="Kinde",
                status=response.status_code,
                retryable=response.status_code >= 500,
            )
        lifetime = body.get("expires_in")
        lifetime = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else DEFAULT_LIFETIME
        margin = min(TOKEN_RENEW_MARGIN, lifetime / 10)
        self._token = body["access_token"]
        self._expires_at = self._clock() + lifetime - margin
        scope = body.get("scope")
        self.scopes = frozenset(scope.split()) if isinstance(scope, str) else None
        return self._token


class KindeClient(ApiClient):
    service = "Kinde"

    def __init__(self, http: httpx.AsyncClient, limiter: AdaptiveLimiter, tokens: TokenManager, **kwargs: Any) -> None:
        super().__init__(http, limiter, **kwargs)
        self.tokens = tokens

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:  # type: ignore[override]
        """Authenticated call; on a 401 the token is renewed once and the call repeated."""
        token = await self.tokens.token()
        try:
            return await super().call(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        except AuthError:
            token = await self.tokens.token(force=True, stale=token)
            try:
                return await super().call(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
            except AuthError as exc:
                raise AuthError(
                    f"{exc} even with a fresh token: check the M2M application's access to the Kinde Management API",
                    service=self.service,
                    status=exc.status,
                    code=exc.code,
                ) from None

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
            if exc.status in (400, 409) and not isinstance(exc, AlreadyExists):
                raise AlreadyExists(str(exc), service=self.service, status=exc.status, code=exc.code) from None
            raise

    async def add_identity(self, kinde_id: str, identity: dict[str, Any]) -> None:
        """POST /api/v1/users/{id}/identities: one identity a create did not carry across."""
        await self._create("POST", f"/api/v1/users/{kinde_id}/identities", identity, "create:user_identities")

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

    async def set_password(self, kinde_id: str, fields: dict[str, Any]) -> None:
        await self.call("PUT", f"/api/v1/users/{kinde_id}/password", json=fields, scope="update:user_passwords")

    async def update_user(self, kinde_id: str, fields: dict[str, Any]) -> None:
        await self.call("PATCH", "/api/v1/user", params={"id": kinde_id}, json=fields, scope="update:users")

    # -- undo and catch-up deletions (migrator.stages.undo) ---------------------------------
    async def get_user(self, kinde_id: str) -> KindeUser | None:
        """GET /api/v1/user?id=: the user, or None when Kinde has no such user (it answers 400 or 404)."""
        try:
            body = await self.call("GET", "/api/v1/user", params={"id": kinde_id}, scope="read:users")
        except ApiError as exc:
            if exc.status in (400, 404):
                return None
            raise
        user = self._parse_user(body)
        if user is None:
            raise ProtocolError("Kinde GET /api/v1/user answered without a user id", service=self.service)
        return user

    async def delete_user(self, kinde_id: str) -> None:
        await self.call("DELETE", "/api/v1/user", params={"id": kinde_id}, scope="delete:users")

    async def organization_user_ids(self, org_code: str) -> list[str]:
        users = await self._paged(
            f"/api/v1/organizations/{org_code}/users", "organization_users", "read:organization_users"
        )
        return [u["id"] for u in users if isinstance(u.get("id"), str)]

    async def delete_organization(self, org_code: str) -> None:
        await self.call("DELETE", f"/api/v1/organization/{org_code}", scope="delete:organizations")

    async def delete_role(self, role_id: str) -> None:
        await self.call("DELETE", f"/api/v1/roles/{role_id}", scope="delete:roles")

    # -- organizations and roles ------------------------------------------------------------
    async def _paged(self, path: str, key: str, scope: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"page_size": MAX_PAGE}
        while True:
            body = await self.call("GET", path, params=params, scope=scope)
            page = body.get(key) or []
            if not isinstance(page, list):
                raise ProtocolError(f"Kinde GET {path} answered {key} that is not a list", service=self.service)
            items.extend(item for item in page if isinstance(item, dict))
            next_token = body.get("next_token")
            if not next_token or not page:
                return items
            params = {**params, "next_token": next_token}

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
