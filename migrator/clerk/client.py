"""Clerk Backend API, read-only: users (paged oldest first), counts, organizations, memberships, roles.

Users are paged 500 at a time ordered ``+created_at`` so that sign-ups during the export land at the
end instead of shifting pages. The cursor (``starting_after``) is used when the server honours it,
and offset paging otherwise: the first cursor page is checked for overlap with the previous one,
since an older API that ignores the parameter would silently return page one again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from migrator.errors import ApiError, AuthError, ProtocolError
from migrator.http import ApiClient

PAGE_SIZE = 500  # Clerk's maximum; more is silently treated as the default 10 (see notes)
ORDER_OLDEST_FIRST = "+created_at"


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
        self, *, start_after: str | None = None, start_offset: int = 0
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield pages of users, oldest first, until a short page. Duplicates are the caller's to drop."""
        base = {"limit": PAGE_SIZE, "order_by": ORDER_OLDEST_FIRST}
        use_cursor = True
        offset = start_offset
        previous_ids: set[str] = set()
        cursor = start_after
        while True:
            if use_cursor and cursor:
                page = await self._user_page({**base, "starting_after": cursor})
                if page and page[0]["id"] in previous_ids:
                    use_cursor = False  # the server ignored the cursor: fall back to offsets
                    page = await self._user_page({**base, "offset": offset})
            else:
                page = await self._user_page({**base, "offset": offset} if offset or not use_cursor else base)
            if not page:
                return
            yield page
            if len(page) < PAGE_SIZE:
                return
            offset += len(page)
            previous_ids = {user["id"] for user in page}
            cursor = page[-1]["id"]

    async def _iter_list(self, path: str) -> AsyncIterator[dict[str, Any]]:
        offset = 0
        while True:
            body = await self.call("GET", path, params={"limit": PAGE_SIZE, "offset": offset})
            data = body.get("data")
            if not isinstance(data, list):
                raise ProtocolError(f"Clerk GET {path} answered without a data list", service=self.service)
            for item in data:
                if isinstance(item, dict):
                    yield item
            offset += len(data)
            total = body.get("total_count")
            if len(data) < PAGE_SIZE or (isinstance(total, int) and offset >= total):
                return

    def iter_organizations(self) -> AsyncIterator[dict[str, Any]]:
        return self._iter_list("/organizations")

    def iter_memberships(self) -> AsyncIterator[dict[str, Any]]:
        return self._iter_list("/organization_memberships")

    def iter_roles(self) -> AsyncIterator[dict[str, Any]]:
        return self._iter_list("/organization_roles")
