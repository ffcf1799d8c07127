"""The ordered check every command that writes passes before a run is recorded or resumed.

One order, in one place: local inputs (the settings are already validated; the Clerk export is read
through once: header, ids, encodings, cell sizes, duplicate ids), then Clerk's key (its user count,
recorded as the run's source count), then Kinde's token (and the scope every run needs), then what this
run will do (``Work``: Clerk's organizations and roles, the mapped properties and providers, a canary's
verify, a catch-up's deletions) against the token's scopes (``kinde.scopes.needs``). A failure at any
step names the problem of that step: a bad export is never answered with a scope refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from migrator.clerk.client import ClerkClient
from migrator.config import Settings
from migrator.kinde.client import KindeClient
from migrator.kinde.scopes import READ, Work, check_needs, check_scopes, needs
from migrator.stages.export_index import open_export


@dataclass(frozen=True)
class Intent:
    """What the command is asked to do, before anything is read."""

    writes_users: bool = True
    verify: bool = False  # a canary verifies its users once written
    delete_removed: bool = False
    create_roles: bool = False


@dataclass(frozen=True)
class Checked:
    """What the check learnt: Clerk's user count and the run's work (its needs were granted)."""

    source_count: int
    work: Work


def check_local_inputs(export: Path | None) -> None:
    """The export read through once, so a malformed file is named (file, row, column) before any request."""
    if export is None:
        return
    with open_export(export) as file:
        for _ in file.scan():
            pass


async def plan_work(settings: Settings, clerk: ClerkClient, intent: Intent) -> Work:
    """What this run will write, from the settings and what Clerk holds (organizations, roles, permissions)."""
    organizations = roles = permissions = 0
    if settings.migrate_organizations:
        organizations = await clerk.count_organizations()
    if organizations:  # roles matter only for memberships: a Clerk without organizations needs none
        async for role in clerk.iter_roles():
            roles += 1
            permissions += len(role.get("permissions") or [])
    return Work(
        writes_users=intent.writes_users,
        organizations=organizations,
        roles=roles,
        permissions=permissions,
        user_properties=tuple(mapping.key for mapping in settings.properties.values()),
        organization_properties=tuple(m.key for m in settings.organization_properties.values())
        if organizations
        else (),
        create_properties=settings.create_properties,
        social=tuple(sorted(set(settings.social_connections))),
        verify=intent.verify,
        delete_removed=intent.delete_removed,
        create_roles=intent.create_roles,
    )


async def check_before_run(
    settings: Settings, clerk: ClerkClient, kinde: KindeClient, intent: Intent, export: Path | None
) -> Checked:
    """Local inputs, then Clerk, then Kinde's token, then the work's scopes: raises at the first problem."""
    check_local_inputs(export)
    source_count = await clerk.count_users()
    await kinde.tokens.token()
    check_scopes(kinde.tokens.scopes, READ, "every run looks its users up in Kinde")
    work = await plan_work(settings, clerk, intent)
    check_needs(kinde.tokens.scopes, needs(work))
    return Checked(source_count, work)
