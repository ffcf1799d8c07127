"""Clerk Backend API, read-only: users (paged oldest first), counts, organizations, memberships, roles.

Users are paged 500 at a time ordered ``+created_at`` so that sign-ups during the export land at the
end instead of shifting pages. The cursor (``starting_after``) is used when the server honours it,
and offset paging otherwise: every first cursor page is checked (see ``iter_user_pages``), since an
older API that ignores the parameter would silently return page one again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from migrator.errors import ApiError, AuthError, ProtocolError
from migrator.http import ApiClient

PAGE_SIZE = 500  # Clerk's maximum; more is silently treated as the default 10 (see notes)
ORDER_OLDEST_FIRST = "+created_at"
ORDER_RECENTLY_UPDATED_FIRST = "-updated_at"
MAX_FILTER_VALUES = 100  # user_id=... values per request (spec)


class ClerkClient(ApiClient):
    service = "Clerk"

    def classify(self, response: httpx.Response, method: str, path: str, body: Any, scope: str | None) -> ApiError:
        error = super().classify(response, method, path, body, scope)
        if isinstance(error, AuthError) or response.status_code == 403:
            trace = body.get("clerk_trace_id") if isinstance(body, dict) else None
            return AuthError(
                f"Clerk refused the secret key ({error.status} {error.code or ''}".rstrip()
                + "): check CLERK_SECRET_KEY and CLERK_API_URL"
                + (f" (clerk_trace_id {trace})" if trace else ""),
                service=self.service,
                status=error.status,
                code=error.code,
            )
        return error

    async def count_users(self) -> int:
        body = await self.call("GET", "/users/count")
        total = body.get("total_count")
        if not isinstance(total, int):
            raise ProtocolError("Clerk GET /users/count answered without an integer total_count", service=self.service)
        return total

    async def _user_page(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        page = await self.call("GET", "/users", params=params, expect=list)
        if not all(isinstance(user, dict) and isinstance(user.get("id"), str) for user in page):
            raise ProtocolError(
                "Clerk GET /users answered a list holding something that is not a user", service=self.service
            )
        return page

    async def iter_user_pages(
        self,
        *,
        start_after: str | None = None,
        start_after_created: int | None = None,
        start_offset: int = 0,
        already_have: Callable[[str], bool] | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield pages of users, oldest first, until a short page. Duplicates are the caller's to drop.

        The cursor (``starting_after``, new in the 2026-08 API) is used while the server honours it.
        A 400/422 to it, or a page that shows it was ignored (it starts at the cursor, holds a user
        older than the cursor, repeats the previous page, or, on a resumed fetch, starts with a user
        ``already_have`` knows), switches to offsets from the same position, for good.
        """
        base = {"limit": PAGE_SIZE, "order_by": ORDER_OLDEST_FIRST}
        use_cursor = True
        offset = start_offset
        cursor, cursor_created = start_after, start_after_created
        previous_ids: set[str] = set()
        while True:
            page = None
            if use_cursor and cursor:
                page = await self._cursor_page(base, cursor)
                if page is not None and _cursor_ignored(page, cursor, cursor_created, previous_ids, already_have):
                    page = None
                use_cursor = page is not None
            if page is None:
                page = await self._user_page({**base, "offset": offset} if offset else base)
            if not page:
                return
            yield page
            if len(page) < PAGE_SIZE:
                return
            offset += len(page)
            previous_ids = {user["id"] for user in page}
            cursor, cursor_created = page[-1]["id"], _created_at(page[-1])
            already_have = None  # only the first page of a resumed fetch may start with known users

    async def _cursor_page(self, base: dict[str, Any], cursor: str) -> list[dict[str, Any]] | None:
        """A page after ``cursor``, or None when the server refuses the parameter (older API versions)."""
        try:
            return await self._user_page({**base, "starting_after": cursor})
        except ApiError as exc:
            if exc.status in (400, 422):
                return None
            raise

    # -- catch-ups and canaries (see migrator.stages.catchup, migrator.stages.canary) ----------------
    async def iter_users_created_after(self, after_ms: int) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of users created after ``after_ms`` (Unix ms, the spec's ``created_at_after``), oldest first."""
        offset = 0
        while True:
            params = {"limit": PAGE_SIZE, "order_by": ORDER_OLDEST_FIRST, "created_at_after": after_ms}
            page = await self._user_page({**params, "offset": offset} if offset else params)
            if page:
                yield page
            if len(page) < PAGE_SIZE:
                return
            offset += len(page)

    async def iter_users_updated_since(self, since_ms: int) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of users ordered ``-updated_at``, until one older than ``since_ms`` (the rest are older still).

        A user whose ``updated_at`` is not a number ends nothing: it is passed on (the caller compares).
        """
        offset = 0
        while True:
            params = {"limit": PAGE_SIZE, "order_by": ORDER_RECENTLY_UPDATED_FIRST, "offset": offset}
            page = await self._user_page(params)
            recent = [u for u in page if not isinstance(u.get("updated_at"), int) or u["updated_at"] >= since_ms]
            if recent:
                yield recent
            if len(recent) < len(page) or len(page) < PAGE_SIZE:
                return
            offset += len(page)

    async def users_by_id(self, user_ids: list[str]) -> list[dict[str, Any]]:
        """The users among ``user_ids`` (at most 100, the spec's limit) that Clerk still has."""
        if len(user_ids) > MAX_FILTER_VALUES:
            raise ValueError(f"at most {MAX_FILTER_VALUES} user ids per request")
        if not user_ids:
            return []
        return await self._user_page({"user_id": user_ids, "limit": PAGE_SIZE})

    async def users_holding(self, field_name: str, values: list[str]) -> list[dict[str, Any]]:
        """Every user holding one of ``values`` (at most 100) as ``field_name``: ``email_address``,
        ``phone_number`` or ``username`` (the spec's exact-match filters; any of a user's addresses)."""
        if len(values) > MAX_FILTER_VALUES:
            raise ValueError(f"at most {MAX_FILTER_VALUES} values per request")
        found: list[dict[str, Any]] = []
        previous: list[dict[str, Any]] = []
        while values:
            params = {field_name: values, "limit": PAGE_SIZE, "order_by": ORDER_OLDEST_FIRST}
            page = await self._user_page({**params, "offset": len(found)} if found else params)
            self._refuse_a_repeated_page("/users", previous, page)
            found.extend(page)
            if len(page) < PAGE_SIZE:
                break
            previous = page
        return found

    def _refuse_a_repeated_page(self, path: str, previous: list[dict[str, Any]], page: list[dict[str, Any]]) -> None:
        """A page that starts where the one before did: the server ignores ``offset``, and paging would never end."""
        if previous and page and previous[0].get("id") == page[0].get("id"):
            raise ProtocolError(
                f"Clerk GET {path} ignored offset (page {previous[0].get('id')!s} came back again): cannot page"
                " through it",
                service=self.service,
            )

    async def _iter_list(self, path: str) -> AsyncIterator[dict[str, Any]]:
        offset, previous = 0, []
        while True:
            body = await self.call("GET", path, params={"limit": PAGE_SIZE, "offset": offset})
            data = body.get("data")
            if not isinstance(data, list):
                raise ProtocolError(f"Clerk GET {path} answered without a data list", service=self.service)
            self._refuse_a_repeated_page(path, previous, [item for item in data if isinstance(item, dict)])
            previous = [item for item in data if isinstance(item, dict)]
            for item in data:
                if isinstance(item, dict):
                    yield item
            offset += len(data)
            total = body.get("total_count")
            if len(data) < PAGE_SIZE or (isinstance(total, int) and offset >= total):
                return

    async def count_organizations(self) -> int:
        """How many organizations Clerk holds (one request: the list's ``total_count``), for the preflight."""
        body = await self.call("GET", "/organizations", params={"limit": 1, "offset": 0})
        total = body.get("total_count")
        if isinstance(total, int):
            return total
        return sum([1 async for _ in self.iter_organizations()])

    def iter_organizations(self) -> AsyncIterator[dict[str, Any]]:
        return self._iter_list("/organizations")

    def iter_memberships(self) -> AsyncIterator[dict[str, Any]]:
        return self._iter_list("/organization_memberships")

    def iter_roles(self) -> AsyncIterator[dict[str, Any]]:
        return self._iter_list("/organization_roles")


def _created_at(user: dict[str, Any]) -> int | None:
    value = user.get("created_at")
    return value if isinstance(value, int) else None


def _cursor_ignored(
    page: list[dict[str, Any]],
    cursor: str,
    cursor_created: int | None,
    previous_ids: set[str],
    already_have: Callable[[str], bool] | None,
) -> bool:
    """Does this page, asked for after ``cursor``, show that the server ignored the cursor?"""
    if not page:
        return False
    first = page[0]["id"]
    if first == cursor or first in previous_ids or (already_have is not None and already_have(first)):
        return True
    if cursor_created is not None:
        return any((created := _created_at(user)) is not None and created < cursor_created for user in page)
    return False
