"""PURE: the shapes of Kinde's bulk-import files, and which file (if any) can carry a given user.

Kinde's dashboard (Users > Import users) reads a Custom CSV, a Custom NDJSON, FusionAuth NDJSON
and others; docs/import-files.md says what each carries and which points are our reading. A user
goes to the file that carries everything the API path would have given it (identities with their
verified flags, the password, properties, organizations with roles, a suspension or a reset
request). When no file does, the user is routed to the API path with the reason: never dropped.

No I/O here; digests only ever leave this module inside the records it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from migrator.models import PasswordImport, SocialIdentity, UserPlan


class FileFormat(StrEnum):
    """The format the operator asks for (``migrator export --format``)."""

    KINDE_NDJSON = "kinde-ndjson"
    KINDE_CSV = "kinde-csv"


class Target(StrEnum):
    """Where one user goes."""

    KINDE_NDJSON = "kinde-ndjson"
    KINDE_CSV = "kinde-csv"
    FUSIONAUTH = "fusionauth-ndjson"
    API = "api"


# hashing methods the Custom CSV and Custom NDJSON take (D-IMPORT); pbkdf2 only through FusionAuth's importer
CUSTOM_METHODS = frozenset({"crypt", "bcrypt", "sha256", "md5", "wordpress"})
FUSIONAUTH_METHODS = frozenset({"pbkdf2"})

# Custom CSV columns. Both role headers are written: the docs' column table says role_key, their
# worked examples say roles, and an importer that reads one ignores the other (docs/import-files.md).
CSV_COLUMNS = (
    "id", "email", "email_verified", "first_name", "last_name", "username", "phone", "phone_verified",
    "external_organization_id", "role_key", "roles", "hashed_password", "hashing_method", "salt",
    "salt_position", "salt_format", "password_verified",
)  # fmt: skip
# The Custom NDJSON's social identity types (D-IMPORT's schema: ``oauth2:<provider>``). Its newest enum
# leaves out oauth2:google while its own example uses it, as the older schema did: google is kept.
OAUTH2_PROVIDERS = frozenset({
    "apple", "bitbucket", "clever", "discord", "facebook", "github", "gitlab", "google", "linkedin",
    "microsoft", "roblox", "slack", "stripe", "twitch", "twitter", "xero",
})  # fmt: skip
# Clerk strategy names whose Kinde provider is named otherwise
_OAUTH2_ALIASES = {"linkedin_oidc": "linkedin", "x": "twitter"}
MEMBERSHIP_COLUMNS = ("id", "external_organization_id", "role_key", "roles")
ORGANIZATION_COLUMNS = ("name", "id")


@dataclass(frozen=True, slots=True)
class OrgRoles:
    """One organization a user belongs to (its external id = the Clerk org id) with role keys."""

    external_id: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Placement:
    target: Target
    reason: str | None = None  # why the API path, when target is API


def place(plan: UserPlan, password: PasswordImport | None, fmt: FileFormat) -> Placement:
    """Which file carries ``plan`` (with ``password``, already translated), or why only the API does."""
    if plan.suspended:
        return Placement(Target.API, "banned in Clerk: import files cannot suspend a user")
    if plan.request_password_reset:
        return Placement(Target.API, "a password reset request is not carried by import files")
    method = password.method if password else None
    if method is not None and method not in CUSTOM_METHODS | FUSIONAUTH_METHODS:
        return Placement(Target.API, f"{method} passwords are not carried by Kinde's import files")
    if method in FUSIONAUTH_METHODS:
        why = _fusionauth_cannot_carry(plan)
        return (
            Placement(Target.API, f"pbkdf2 password (FusionAuth file only) but {why}")
            if why
            else Placement(Target.FUSIONAUTH)
        )
    if fmt == FileFormat.KINDE_CSV:
        why = _csv_cannot_carry(plan)
        return Placement(Target.API, why) if why else Placement(Target.KINDE_CSV)
    if not plan.identities:
        return Placement(Target.API, "no identity to import")
    why = _social_cannot_carry(plan.social)
    return Placement(Target.API, why) if why else Placement(Target.KINDE_NDJSON)


def oauth2_provider(social: SocialIdentity) -> str | None:
    """Kinde's provider name for a Clerk account's provider (``oauth_google`` -> ``google``), if its import has one."""
    name = social.provider.removeprefix("oauth_")
    name = _OAUTH2_ALIASES.get(name, name)
    return name if name in OAUTH2_PROVIDERS else None


def _social_cannot_carry(social: Sequence[SocialIdentity]) -> str | None:
    unknown = sorted({s.provider for s in social if oauth2_provider(s) is None})
    if unknown:
        return f"social identities of {', '.join(unknown)}: the Custom NDJSON has no oauth2 type for them"
    return None


def _providers(plan: UserPlan) -> str:
    return ", ".join(sorted({s.provider for s in plan.social}))


def _counts(plan: UserPlan) -> dict[str, int]:
    counts = {"email": 0, "phone": 0, "username": 0}
    for identity in plan.identities:
        counts[identity.type] += 1
    return counts


def _csv_cannot_carry(plan: UserPlan) -> str | None:
    counts = _counts(plan)
    if not counts["email"]:
        # D-BULK requires email; D-IMPORT says email or phone. Only the reading both allow is written.
        return "no email: the Custom CSV requires one (kinde-ndjson carries phone-only users)"
    if any(n > 1 for n in counts.values()):
        return "more identities than the Custom CSV's columns (kinde-ndjson carries them)"
    if plan.properties:
        return "properties are not carried by the Custom CSV (kinde-ndjson carries them)"
    if plan.social:
        return f"social identities ({_providers(plan)}) are not carried by the Custom CSV (kinde-ndjson carries them)"
    return None


def _fusionauth_cannot_carry(plan: UserPlan) -> str | None:
    counts = _counts(plan)
    if not counts["email"] and not counts["phone"] and not counts["username"]:
        return "no identity to import"
    if any(n > 1 for n in counts.values()):
        return "more identities than a FusionAuth record carries"
    if len({i.is_verified for i in plan.identities if i.type != "username"}) > 1:
        return "a FusionAuth record has one verified flag for all identities"
    if plan.properties:
        return "properties are not carried by a FusionAuth record"
    if plan.social:
        return f"social identities ({_providers(plan)}) are not carried by a FusionAuth record"
    return None


def _custom_password(password: PasswordImport | None, key: str) -> dict[str, Any]:
    if password is None:
        return {}
    fields = password.fields
    out = {"hashed_password": fields["hashed_password"], key: fields["hashing_method"]}
    if fields.get("salt"):
        out["salt"] = fields["salt"]
        out["salt_format"] = "string"
        if fields.get("salt_position"):
            out["salt_position"] = fields["salt_position"]
    return out


def ndjson_record(plan: UserPlan, password: PasswordImport | None, orgs: Sequence[OrgRoles]) -> dict[str, Any]:
    """One line of Kinde's Custom NDJSON (D-IMPORT's current schema: identities only, no top-level email,
    which belonged to a schema Kinde removed). Every identity carries its verified flag."""
    record: dict[str, Any] = {"id": plan.clerk_id}
    if plan.given_name:
        record["first_name"] = plan.given_name
    if plan.family_name:
        record["last_name"] = plan.family_name
    record["identities"] = [
        {"type": i.type, "identity": i.value, "is_verified": i.is_verified} for i in plan.identities
    ] + [social_record(s) for s in plan.social]
    if plan.properties:
        record["properties"] = [{"key": k, "value": v} for k, v in plan.properties.items()]
    if orgs:
        record["organizations"] = [{"external_id": o.external_id, "roles": list(o.roles)} for o in orgs]
    if password is not None:
        record["password"] = _custom_password(password, "hashing_algorithm")
    return record


def social_record(social: SocialIdentity) -> dict[str, Any]:
    """A mapped external account as an ``oauth2:*`` identity. Its value is what Kinde matches a social
    sign-in on (the account's email, else the provider's user id), as the API path sends it; Clerk
    verified the account at its sign-in. Only for accounts ``place`` let into the file."""
    provider = oauth2_provider(social)
    assert provider is not None, "place() routes accounts without an oauth2 type to the API path"
    return {"type": f"oauth2:{provider}", "identity": social.value, "provider": provider, "is_verified": True}


def csv_rows(plan: UserPlan, password: PasswordImport | None, orgs: Sequence[OrgRoles]) -> list[dict[str, str]]:
    """The user's Custom CSV rows: one per organization (roles differ per org), or one without."""
    email = next((i for i in plan.identities if i.type == "email"), None)
    phone = next((i for i in plan.identities if i.type == "phone"), None)
    base = {
        "id": plan.clerk_id,
        "email": email.value if email else "",
        "email_verified": _flag(email.is_verified) if email else "",
        "first_name": plan.given_name or "",
        "last_name": plan.family_name or "",
        "username": plan.username or "",
        "phone": phone.value if phone else "",
        "phone_verified": _flag(phone.is_verified) if phone else "",
        **_custom_password(password, "hashing_method"),
        # D-IMPORT: without TRUE here, an imported password still costs a one-time code at first sign-in
        "password_verified": "TRUE" if password is not None else "",
    }
    if not orgs:
        return [base]
    return [{**base, "external_organization_id": o.external_id, **_role_cells(o.roles)} for o in orgs]


def membership_rows(clerk_id: str, orgs: Sequence[OrgRoles]) -> list[dict[str, str]]:
    """The second-file form (``id,roles,external_organization_id``) for users whose file carries no orgs."""
    return [{"id": clerk_id, "external_organization_id": o.external_id, **_role_cells(o.roles)} for o in orgs]


def fusionauth_record(plan: UserPlan, password: PasswordImport) -> dict[str, Any]:
    """One line of a FusionAuth export (snake_case, as its database export writes) for a pbkdf2 password."""
    fields = password.fields
    record: dict[str, Any] = {
        "id": plan.clerk_id,
        "encryption_scheme": fields["variant"],
        "factor": fields["iterations"],
        "salt": fields["salt"],
        "password": fields["hashed_password"],
        "verified": any(i.is_verified for i in plan.identities if i.type != "username"),
    }
    for key, value in (
        ("email", plan.email),
        ("username", plan.username),
        ("mobile_phone", plan.phone),
        ("first_name", plan.given_name),
        ("last_name", plan.family_name),
    ):
        if value:
            record[key] = value
    return record


def _role_cells(roles: Sequence[str]) -> dict[str, str]:
    joined = ",".join(roles)
    return {"role_key": joined, "roles": joined}


def _flag(value: bool) -> str:
    return "TRUE" if value else "FALSE"
