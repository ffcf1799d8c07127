"""Kinde's M2M access token: what a token answer grants, one cached token shared by every request,
and the ``httpx.Auth`` that puts it on each request and renews it when Kinde refuses it.

What the scopes are is read from the token's own claims (``scope``: space-separated, ``scp``: an
array; Kinde's "Token structure and claims for M2M applications"), else from the answer's optional
``scope`` field (RFC 6749 §5.1). An absent or empty field, or an opaque token, means *unknown*,
never *none*: only a scope known to be missing may stop a run before it starts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import jwt

from migrator.errors import ApiError

DEFAULT_LIFETIME = 3600.0  # what Kinde's docs and Python SDK assume when ``expires_in`` is missing
RENEW_MARGIN = 60.0  # renew this long before expiry (a tenth of the lifetime for short-lived tokens)
_T = TypeVar("_T")
REFUSED = (401, 403)  # Kinde's spec calls 403 "invalid credentials"; its docs use 401 for an expired token
MAX_SENDS = 3  # one request, sent at most this often: a refusal is believed once a token fetched for it is refused


@dataclass(frozen=True)
class Grant:
    """One token answer: the token, how long it lives, and its scopes (None: unknown)."""

    access_token: str
    lifetime: float
    scopes: frozenset[str] | None


def _claim_scopes(value: Any) -> set[str]:
    """A ``scope``/``scp`` claim as a set: a space-separated string or an array of strings."""
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list):
        return {item for entry in value if isinstance(entry, str) for item in entry.split()}
    return set()


def token_claims(access_token: str) -> dict[str, Any] | None:
    """The JWT payload, unverified (Kinde checks the signature); None for an opaque token."""
    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    return claims if isinstance(claims, dict) else None


def _granted_scopes(claims: dict[str, Any] | None, answer_scope: Any) -> frozenset[str] | None:
    """Scopes from the token's claims, else from the answer's ``scope`` field; None when unknown."""
    claims = claims or {}
    scopes = _claim_scopes(claims.get("scope")) | _claim_scopes(claims.get("scp"))
    if not scopes and isinstance(answer_scope, str):
        scopes = set(answer_scope.split())
    return frozenset(scopes) if scopes else None


def _lifetime(answer: dict[str, Any], claims: dict[str, Any] | None) -> float:
    """``expires_in``, else the token's ``exp - iat``, else Kinde's documented default."""
    expires_in = answer.get("expires_in")
    if isinstance(expires_in, str) and expires_in.strip().isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        return float(expires_in)
    exp, iat = (claims or {}).get("exp"), (claims or {}).get("iat")
    if isinstance(exp, int | float) and isinstance(iat, int | float) and exp > iat:
        return float(exp - iat)
    return DEFAULT_LIFETIME


def read_grant(answer: dict[str, Any]) -> Grant | None:
    """A token answer's grant; None when it carries no access token."""
    access_token = answer.get("access_token")
    if not isinstance(access_token, str) or not access_token.strip():
        return None
    claims = token_claims(access_token)  # decoded once, for its lifetime and its scopes
    return Grant(access_token, _lifetime(answer, claims), _granted_scopes(claims, answer.get("scope")))


class TokenManager:
    """One token shared by every request. Reading it takes no lock; only fetching a new one does,
    so many workers wait for a single token request, and a request refused with a token that
    another one already replaced does not renew it again."""

    def __init__(self, fetch: Callable[[], Awaitable[Grant]], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()
        self.scopes: frozenset[str] | None = None
        self.fetched = 0  # token requests that succeeded, for tests and progress

    def _current(self) -> str | None:
        return self._token if self._token is not None and self._clock() < self._renew_at else None

    async def token(self) -> str:
        """The cached token, or a new one when there is none or it is about to expire."""
        current = self._current()
        if current is not None:
            return current
        async with self._lock:
            return self._current() or await self._refresh()

    async def renew(self, refused: str) -> tuple[str, bool]:
        """A new token after ``refused`` was refused, unless another request already replaced it;
        and whether this call fetched it (else it is the replacement another request fetched)."""
        async with self._lock:
            current = self._current()
            if current is not None and current != refused:
                return current, False
            return await self._refresh(), True

    async def _refresh(self) -> str:
        grant = await self._fetch()
        margin = min(RENEW_MARGIN, grant.lifetime / 10)
        self._token = grant.access_token
        self._renew_at = self._clock() + grant.lifetime - margin
        self.scopes = grant.scopes
        self.fetched += 1
        return grant.access_token


class BearerAuth(httpx.Auth):
    """Kinde's bearer token on every request; on a 401 or 403 the token is renewed and the request
    repeated, as httpx's own auth flows repeat a request after a challenge. Each refused token is
    renewed once, by the first request to report it; the others reuse its replacement. A refusal of
    a token fetched for this very request goes back to the caller, which then knows it was fresh."""

    def __init__(self, tokens: TokenManager) -> None:
        self.tokens = tokens

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("Kinde's bearer auth needs an httpx.AsyncClient")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._token(self.tokens.token())
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        fetched_for_this_request = False
        for _ in range(MAX_SENDS - 1):
            if response.status_code not in REFUSED or fetched_for_this_request:
                return
            await response.aread()  # frees its connection for the token request
            token, fetched_for_this_request = await self._token(self.tokens.renew(token))
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request

    @staticmethod
    async def _token(pending: Awaitable[_T]) -> _T:
        """The token request already had its own retries, and the request it was for was never
        sent: its failure must not be retried again, nor taken for a write that may have happened."""
        try:
            return await pending
        except ApiError as exc:
            raise exc.unsent() from exc
