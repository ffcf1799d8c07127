"""Which Management API scopes a run needs, and the preflight check that refuses only on scopes it
*knows* are missing (a token whose scopes are unknown is let through: each call's 403 names its scope)."""

from __future__ import annotations

from collections.abc import Iterable

from migrator.errors import ScopeError

WHERE_TO_GRANT = "Settings > Applications > your M2M application > APIs > Kinde Management API > Manage scopes"

READ = frozenset({"read:users"})
WRITE_USERS = frozenset({"create:users", "update:users", "update:user_passwords"})
ORGANIZATIONS = frozenset(
    {"read:roles", "create:roles", "read:organizations", "create:organizations", "create:organization_users"}
)
ROLE_PERMISSIONS = frozenset(
    {"read:permissions", "create:permissions", "read:role_permissions", "update:role_permissions"}
)
PROPERTY_DEFINITIONS = frozenset({"read:properties"})
CREATE_PROPERTIES = frozenset({"create:properties", "read:property_categories", "create:property_categories"})
USER_PROPERTIES = frozenset({"read:user_properties", "update:user_properties"})
ORGANIZATION_PROPERTIES = frozenset({"read:organization_properties", "update:organization_properties"})
SOCIAL_IDENTITIES = frozenset({"read:user_identities", "create:user_identities"})


def feature_scopes(
    dry_run: bool,
    *,
    user_properties: bool,
    organization_properties: bool,
    create_properties: bool,
    social: bool,
    role_permissions: bool,
) -> set[str]:
    """Scopes of the opt-in features (metadata as properties, social identities, role permissions)."""
    needed: set[str] = set()
    if user_properties or organization_properties:
        needed |= PROPERTY_DEFINITIONS  # the plan lists missing definitions, a dry run too
    if dry_run:
        return needed
    if (user_properties or organization_properties) and create_properties:
        needed |= CREATE_PROPERTIES
    if user_properties:
        needed |= USER_PROPERTIES
    if organization_properties:
        needed |= ORGANIZATION_PROPERTIES
    if social:
        needed |= SOCIAL_IDENTITIES
    if role_permissions:
        needed |= ROLE_PERMISSIONS
    return needed


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


def undo_scopes(kinds: Iterable[str]) -> set[str]:
    """Scopes an undo needs to take back these kinds (``migrator undo`` checks them before asking)."""
    return {scope for kind in kinds for scope in UNDO_SCOPES.get(kind, frozenset())}


def required_scopes(dry_run: bool, migrate_organizations: bool) -> set[str]:
    """A dry run only looks users up; a real run writes users, and organizations unless turned off."""
    needed = set(READ)
    if not dry_run:
        needed |= WRITE_USERS
        if migrate_organizations:
            needed |= ORGANIZATIONS
    return needed


def check_scopes(granted: Iterable[str] | None, needed: Iterable[str]) -> None:
    """Raise ScopeError naming every needed scope the token is known not to have (None: unknown).

    ``ScopeError.scope`` holds them space-separated, as OAuth writes a list of scopes.
    """
    if granted is None:
        return
    missing = sorted(set(needed) - set(granted))
    if missing:
        raise ScopeError(
            f"the Kinde M2M application's token lacks the scope{'s' if len(missing) > 1 else ''} "
            + ", ".join(missing)
            + f": grant {'them' if len(missing) > 1 else 'it'} in Kinde ({WHERE_TO_GRANT})",
            scope=" ".join(missing),
            service="Kinde",
            status=403,
        )
