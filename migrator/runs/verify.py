"""``migrator verify``: Kinde read back and compared with a run of the journal.

Connects (``session.py``: retries reported and requests logged as every command's), proves the token carries the read scopes verify needs, and runs the verify stage
over the chosen run of the journal. Clerk is contacted only with ``fresh``: otherwise the run's staged
plans are what Kinde is compared with.
"""

from __future__ import annotations

import httpx

from migrator.config import Settings
from migrator.errors import JournalError
from migrator.events import Emit, Notice
from migrator.journal import Journal, RunMode
from migrator.kinde.scopes import VERIFY_MEMBER_ROLES, VERIFY_ORGANIZATIONS, VERIFY_READ, check_scopes
from migrator.request_log import VERIFY_REQUESTS_LOG
from migrator.runs.session import open_session
from migrator.stages.context import RunContext
from migrator.stages.verify import Verification, member_pages_chosen, verify
from migrator.stages.verify_sample import Depth

READ_SCOPES = VERIFY_READ  # kinde/scopes.py: a canary's preflight asks for the same before its first write
ORGANIZATION_READ_SCOPES = VERIFY_ORGANIZATIONS
EXTRA_READ_SCOPES = {
    "properties": frozenset({"read:user_properties"}),
    "permissions": frozenset({"read:roles", "read:role_permissions"}),
}


async def run_verification(
    settings: Settings,
    journal: Journal,
    run_id: int | None,
    *,
    on_event: Emit,
    fresh: bool = False,
    depth: Depth | None = None,
    clerk_transport: httpx.AsyncBaseTransport | None = None,
    kinde_transport: httpx.AsyncBaseTransport | None = None,
) -> Verification:
    """Read Kinde back and compare it with run ``run_id`` (default: the latest real run); ``fresh``: with
    Clerk's users as re-read now, mapped with these settings; ``depth``: which users are read one by one."""
    run = journal.runs.get(run_id)
    if run.dry_run:
        raise JournalError(f"run {run.id} was a dry run: it wrote nothing to Kinde, so there is nothing to verify")
    async with open_session(settings, journal, on_event, clerk_transport, kinde_transport) as session:
        # beside the run's own requests.jsonl: a verify days later must not stretch the run's charts
        session.attach_request_log(run, VERIFY_REQUESTS_LOG)
        return await verify_connected(session.context(run), fresh=fresh, depth=depth)


async def verify_connected(ctx: RunContext, *, fresh: bool = False, depth: Depth | None = None) -> Verification:
    """Verify ``ctx.run`` over clients already open (a canary verifies itself this way, right after it ran)."""
    journal, run, kinde = ctx.journal, ctx.run, ctx.kinde
    await kinde.tokens.token()
    needed = READ_SCOPES
    if journal.organizations.all(run.id):  # roles: member pages or the sample's memberships, the cheaper
        needed |= ORGANIZATION_READ_SCOPES if member_pages_chosen(ctx, depth or Depth()) else VERIFY_MEMBER_ROLES
    for extra in journal.users.written_extras(run.id, imported=run.mode == RunMode.EXPORT):
        needed |= EXTRA_READ_SCOPES.get(extra, frozenset())
    if run.mode == RunMode.EXPORT and journal.organizations.all(run.id):
        needed |= {"read:organizations"}  # the import made the organizations: their codes are looked up
    if run.mode == RunMode.UNDO:
        needed = frozenset({"read:users"})  # an undo's verify only lists Kinde's users
    check_scopes(kinde.tokens.scopes, needed, "verify reads Kinde back")
    ctx.emit(Notice(f"verifying run {run.id} against Kinde ({journal.users.expected_count(run.id)} users expected)"))
    return await verify(ctx, fresh=fresh, depth=depth)
