"""Which Management API scopes a run needs, worked out from what the run will do (``Work``), and the
check that refuses only on scopes the token is *known* to lack (a token whose scopes are unknown is let
through: each call's 403 names its scope).

One place computes needs: every command that writes describes its work (from its settings and what it
read of Clerk or the journal) and ``needs`` turns that into scopes, each with the data that needs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from migrator.errors import ScopeError

WHERE_TO_GRANT = "Settings > Applications > your M2M application > APIs > Kinde Management API > Manage scopes"

READ = frozenset({"read:users"})
WRITE_USERS = frozenset({"create:users", "update:users", "update:user_passwords"})
ORGANIZATIONS = frozenset({"read:organizations", "create:organizations", "create:organization_users"})
ROLES = frozenset({"read:roles", "create:roles"})
ROLE_PERMISSIONS = frozenset(
    {"read:permissions", "create:permissions", "read:role_permissions", "update:role_permissions"}
)
PROPERTY_DEFINITIONS = frozenset({"read:properties"})
CREATE_PROPERTIES = frozenset({"create:properties", "read:property_categories", "create:property_categories"})
USER_PROPERTIES = frozenset({"read:user_properties", "update:user_properties"})
ORGANIZATION_PROPERTIES = frozenset({"read:organization_properties", "update:organization_properties"})
SOCIAL_IDENTITIES = frozenset({"read:user_identities", "create:user_identities"})
DELETE_USERS = frozenset({"read:users", "delete:users"})
# what `migrator verify` (and a canary's own verify) reads back
VERIFY_READ = frozenset({"read:users", "read:user_identities"})
VERIFY_ORGANIZATIONS = frozenset({"read:organization_users"})  # roles from the organizations' member pages
VERIFY_MEMBER_ROLES = frozenset({"read:organization_user_roles"})  # or from the sampled users' memberships


@dataclass(frozen=True)
class Work:
    """What a run will do, as far as Kinde's scopes go. Counts come from what the run read (Clerk's
    organizations and roles, the settings' mappings); zero means that part of the run writes nothing."""

    writes_users: bool = True  # False: a dry run or an export (lookups only)
    organizations: int = 0  # Clerk organizations the run migrates (0 with migrate_organizations = false)
    roles: int = 0  # Clerk's roles (with organizations only: roles serve memberships)
    permissions: int = 0  # permissions those roles carry
    user_properties: tuple[str, ...] = ()  # the Kinde properties ``properties`` maps user metadata to
    organization_properties: tuple[str, ...] = ()  # those ``organization_properties`` maps (with organizations)
    create_properties: bool = True
    social: tuple[str, ...] = ()  # the Clerk providers ``social_connections`` maps
    verify: bool = False  # a canary reads its users back before it reports
    delete_removed: bool = False  # a catch-up deletes users gone from Clerk
    create_roles: bool = False  # `export --create-roles`


@dataclass(frozen=True)
class Need:
    """Scopes one part of the run needs, the data that needs them, and the setting that skips that part."""

    scopes: frozenset[str]
    why: str
    skip: str | None = None


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def needs(work: Work) -> list[Need]:
    """Every scope ``work`` needs, grouped by the data that needs it (always: looking users up)."""
    found = [Need(READ, "every run looks its users up in Kinde")]
    properties = work.user_properties + work.organization_properties
    if properties:
        found.append(
            Need(
                PROPERTY_DEFINITIONS,
                f"the mapping maps {_plural(len(properties), 'property')} ({', '.join(properties)})",
                "drop the properties / organization_properties settings",
            )
        )
    if work.create_roles:
        found.append(Need(ROLES, "`export --create-roles` creates the roles", "leave out --create-roles"))
    if not work.writes_users:
        return found
    found.append(Need(WRITE_USERS, "the run creates users, imports their passwords and sets their flags"))
    if work.organizations:
        skip = "migrate_organizations = false"
        held = f"Clerk has {_plural(work.organizations, 'organization')} (their memberships carry roles)"
        found.append(Need(ORGANIZATIONS | ROLES, held, skip))
        if work.permissions:
            carry = f"{_plural(work.roles, 'role')} carry {_plural(work.permissions, 'permission')}"
            found.append(Need(ROLE_PERMISSIONS, carry, skip))
    if properties and work.create_properties:
        found.append(Need(CREATE_PROPERTIES, "missing property definitions are created", "--no-create-properties"))
    if work.user_properties:
        mapped = f"the mapping maps user metadata to {', '.join(work.user_properties)}"
        found.append(Need(USER_PROPERTIES, mapped, "drop the properties setting"))
    if work.organization_properties and work.organizations:
        mapped = f"the mapping maps organization metadata to {', '.join(work.organization_properties)}"
        found.append(Need(ORGANIZATION_PROPERTIES, mapped, "drop the organization_properties setting"))
    if work.social:
        mapped = f"social sign-in is mapped for {', '.join(work.social)}"
        found.append(Need(SOCIAL_IDENTITIES, mapped, "drop the social_connections setting"))
    if work.verify:
        found.append(Need(VERIFY_READ, "the canary reads its users back (verify)"))
        if work.organizations:
            found.append(Need(VERIFY_ORGANIZATIONS, "the canary's verify reads organization members back"))
    if work.delete_removed:
        found.append(Need(DELETE_USERS, "--delete-removed deletes users gone from Clerk", "leave out --delete-removed"))
    return found


def undo_needs(planned: dict[str, int]) -> list[Need]:
    """What an undo reads and deletes, per kind it plans to take back (a kind with nothing planned: nothing)."""
    return [
        Need(UNDO_SCOPES[kind], f"the undo takes back {count} {kind.replace('_', ' ')}(s)")
        for kind, count in planned.items()
        if count and kind in UNDO_SCOPES
    ]


def check_needs(granted: Iterable[str] | None, found: Iterable[Need]) -> None:
    """Raise ScopeError naming each missing scope with the data that needs it (None: scopes unknown).

    ``ScopeError.scope`` holds them space-separated, as OAuth writes a list of scopes.
    """
    if granted is None:
        return
    have = set(granted)
    parts, missing = [], set()
    for need in found:
        lacking = sorted(need.scopes - have - missing)
        if not lacking:
            continue
        missing |= set(lacking)
        skip = f" (or skip it: {need.skip})" if need.skip else ""
        parts.append(f"{need.why}: grant {', '.join(lacking)}{skip}")
    if parts:
        raise ScopeError(
            f"the Kinde M2M application's token lacks the scope{'s' if len(missing) > 1 else ''} "
            + ", ".join(sorted(missing))
            + ": "
            + "; ".join(parts)
            + f". Grant {'them' if len(missing) > 1 else 'it'} in Kinde ({WHERE_TO_GRANT})",
            scope=" ".join(sorted(missing)),
            service="Kinde",
            status=403,
        )


def check_scopes(granted: Iterable[str] | None, needed: Iterable[str], why: str = "this command") -> None:
    """``check_needs`` for a plain set of scopes needed by one part of the work."""
    check_needs(granted, [Need(frozenset(needed), why)])


# What an undo reads and deletes for each kind it takes back (a kind with nothing to undo needs nothing).
UNDO_SCOPES: dict[str, frozenset[str]] = {
    "user": frozenset({"read:users", "delete:users"}),
    "organization": frozenset({"read:organizations", "read:organization_users", "delete:organizations"}),
    "organization_property": frozenset({"read:organization_properties", "update:organization_properties"}),
    "role_permission": frozenset(
        {"read:roles", "read:permissions", "read:role_permissions", "delete:role_permissions"}
    ),
    "role": frozenset({"read:roles", "delete:roles"}),
    # a catch-up's writes to users already in Kinde (stages/undo_updates.py)
    "identity_removed": frozenset(
        {"read:users", "read:user_identities", "create:user_identities", "update:identities"}
    ),
    "identity_added": frozenset({"read:users", "read:user_identities", "delete:identities"}),
    "user_profile": frozenset({"read:users", "update:users"}),
    "permission": frozenset({"read:permissions", "read:roles", "read:role_permissions", "delete:permissions"}),
    # before deleting a definition: does a user or organization the run did not create still hold a value?
    "property": frozenset(
        {"read:properties", "delete:properties", "read:users", "read:organizations", "read:organization_properties"}
    ),
}
