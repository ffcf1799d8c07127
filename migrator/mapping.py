"""Clerk user JSON (+ its export row) -> what Kinde should get. Pure: no I/O, no clock, no randomness.

Decisions live here so they can be tested exhaustively and reported before anything is written:
which identities a user keeps (and why others are dropped), whether the password can travel, and
what a ban or an unimportable password means under the operator's policy.

Clerk's API is parsed leniently: keys may be missing or null, lists may hold junk, unknown keys
are ignored. A user that cannot be migrated becomes a ``Skip`` with a stable reason code instead
of an exception.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from migrator import passwords
from migrator.clerk.accounts import canonical_provider, read_external_account
from migrator.models import (
    ExportRow,
    Identity,
    Membership,
    PasswordImport,
    PasswordUnimportable,
    Skip,
    SocialIdentity,
    SocialNotCarried,
    UserPlan,
)

UnimportablePolicy = Literal["reset", "no-password", "skip", "lazy"]
FallbackPolicy = Literal["reset", "no-password", "skip"]
BannedPolicy = Literal["suspend", "skip"]
SaltPosition = Literal["prefix", "suffix"]

NO_DIGEST_REASON = "password enabled in Clerk but no digest in the export"
STALE_DIGEST_REASON = "password changed after the export"
UNREADABLE_UPDATE_REASON = (
    "password_last_updated_at is not a Unix timestamp, so whether the password changed after the export cannot be told"
)
# Clerk's timestamps are Unix milliseconds; a value below this reads as seconds instead (1e11 ms is
# March 1973, 1e11 s is the year 5138), so either unit gives the same answer.
SECONDS_BELOW = 10**11
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PropertyType = Literal["single_line_text", "multi_line_text"]


@dataclass(frozen=True)
class PropertySpec:
    """One ``[properties]`` entry: a Clerk path (``public_metadata.plan``) and the Kinde property it fills."""

    path: str
    key: str
    type: PropertyType = "single_line_text"
    name: str | None = None
    is_private: bool = True


_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class MappingOptions:
    """The operator's choices that change what a plan contains (all part of the run fingerprint)."""

    unimportable_passwords: UnimportablePolicy = "reset"
    # Policy "lazy": what a user it cannot serve gets instead (no verified email: the workflow finds users by
    # email, and only a verified one). The run's cohort itself is not created (unless lazy_users_in_kinde).
    lazy_fallback: FallbackPolicy = "reset"
    lazy_users_in_kinde: bool = False
    banned_users: BannedPolicy = "suspend"
    # Clerk role key -> Kinde role key. Unmapped keys lose their ``org:`` prefix.
    role_map: Mapping[str, str] = field(default_factory=dict)
    # Region for phone numbers stored without a country code (Clerk stores E.164, so rarely used).
    default_phone_region: str | None = None
    # Where md5_salted / sha256_salted digests put the salt; Clerk does not say, so None keeps
    # those digests unimportable (see passwords.translate).
    salt_position: SaltPosition | None = None
    # When the export's digests were read out of Clerk (timezone-aware). A password Clerk says was
    # updated at or after it is not in the export: the digest there is the old one. None: no check.
    export_time: datetime | None = None
    # Clerk paths -> Kinde user / organization properties (opt-in: empty means no property is written).
    properties: tuple[PropertySpec, ...] = ()
    organization_properties: tuple[PropertySpec, ...] = ()
    # Clerk OAuth provider -> Kinde connection id; external accounts of other providers are reported.
    social_connections: Mapping[str, str] = field(default_factory=dict)


# -- identifier validation (shared with the export reader so its warnings predict the mapping) --


@lru_cache(maxsize=4096)  # a user's addresses are checked in its export row and in its API record: the second is a hit
def email_problem(address: str) -> str | None:
    """Why ``address`` cannot be an email identity, or None when it can.

    Syntax only (no DNS): Clerk has already accepted these addresses. ``.test`` domains are
    allowed because development instances use them; other reserved names (``.local``,
    ``.invalid``, ``localhost``) and quoted local parts are refused.
    """
    try:
        validate_email(address, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        return str(exc)
    return None


@dataclass(frozen=True, slots=True)
class ParsedPhone:
    e164: str
    region: str  # lowercase ISO 3166 code, as Kinde's phone_country_id wants it


@lru_cache(maxsize=4096)  # as email_problem: the export row's numbers are parsed again from the API record
def parse_phone(raw: str, default_region: str | None = None) -> ParsedPhone | None:
    """E.164 and country of a phone number, or None when it is not a valid number of one country.

    Non-geographic numbers (+800, +882...) are refused: Kinde needs a country for each phone.
    """
    try:
        number = phonenumbers.parse(raw, default_region.upper() if default_region else None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    region = phonenumbers.region_code_for_number(number)
    if not region or region in ("ZZ", "001"):
        return None
    return ParsedPhone(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), region.lower())


# -- lenient readers for Clerk JSON -----------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A non-blank string, stripped; anything else (None, numbers, blanks) is None."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


@dataclass(frozen=True, slots=True)
class _Contact:
    """One Clerk EmailAddress or PhoneNumber, reduced to what the mapping needs."""

    id: str | None
    value: str
    verified: bool


def _contacts(entries: Any, value_key: str, field_name: str, notes: list[str]) -> list[_Contact]:
    contacts = []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, Mapping):
            notes.append(f"{field_name}: an entry that is not an object was ignored")
            continue
        value = _text(entry.get(value_key))
        if value is None:
            notes.append(f"{field_name}: an entry without {value_key} was ignored")
            continue
        # verification.status is what counts; verification may be null and `object` may be absent.
        verified = _mapping(entry.get("verification")).get("status") == "verified"
        contacts.append(_Contact(_text(entry.get("id")), value, verified))
    return contacts


def _designated_primary(contacts: list[_Contact], primary_id: Any, id_field: str, notes: list[str]) -> _Contact | None:
    primary_id = _text(primary_id)
    if primary_id is None:
        return None
    primary = next((contact for contact in contacts if contact.id == primary_id), None)
    if primary is None:
        notes.append(f"{id_field}: {primary_id!r} matches none of the user's entries")
    return primary


# -- identities -------------------------------------------------------------------------------------


def _email_identities(user: Mapping[str, Any], notes: list[str]) -> list[Identity]:
    """The primary email first, then other verified ones; unverified extras are dropped."""
    contacts = _contacts(user.get("email_addresses"), "email_address", "email_addresses", notes)
    valid: list[_Contact] = []
    for contact in contacts:
        if email_problem(contact.value) is None:
            valid.append(contact)
        else:
            notes.append(f"email_addresses: {_shown(contact.value)} is not a valid email address; dropped")
    primary = _designated_primary(contacts, user.get("primary_email_address_id"), "primary_email_address_id", notes)
    if primary not in valid:
        # No designated primary, or it is unusable: the first verified address leads instead.
        primary = next((contact for contact in valid if contact.verified), None)

    identities: list[Identity] = []
    taken: set[str] = set()
    for contact in ([primary] if primary else []) + valid:
        key = contact.value.lower()
        if key in taken:
            continue
        if contact is not primary and not contact.verified:
            notes.append(f"email_addresses: unverified {_shown(contact.value)} is not migrated")
            continue
        taken.add(key)
        identities.append(Identity("email", contact.value, is_verified=contact.verified))
    return identities


def _phone_identity(user: Mapping[str, Any], options: MappingOptions, notes: list[str]) -> list[Identity]:
    """At most one phone (Kinde keeps one): the primary, else the first verified one."""
    contacts = _contacts(user.get("phone_numbers"), "phone_number", "phone_numbers", notes)
    parsed: dict[int, ParsedPhone] = {}
    for index, contact in enumerate(contacts):
        phone = parse_phone(contact.value, options.default_phone_region)
        if phone is None:
            notes.append(f"phone_numbers: {_shown(contact.value)} is not a valid phone number; dropped")
        else:
            parsed[index] = phone
    primary = _designated_primary(contacts, user.get("primary_phone_number_id"), "primary_phone_number_id", notes)
    chosen = contacts.index(primary) if primary is not None else None
    if chosen not in parsed:
        chosen = next((index for index in parsed if contacts[index].verified), None)
    if chosen is None:
        if parsed:
            count = len({p.e164 for p in parsed.values()})
            notes.append(f"phone_numbers: {count} unverified number(s) not migrated (no primary phone)")
        return []
    phone = parsed[chosen]
    others = {p.e164 for p in parsed.values()} - {phone.e164}
    if others:
        notes.append(f"phone_numbers: {len(others)} other number(s) not migrated (Kinde keeps one phone)")
    return [Identity("phone", phone.e164, is_verified=contacts[chosen].verified, phone_country_id=phone.region)]


def _username_identity(user: Mapping[str, Any]) -> list[Identity]:
    username = _text(user.get("username"))
    return [Identity("username", username)] if username else []


# -- password ---------------------------------------------------------------------------------------


def _password(
    user: Mapping[str, Any], export: ExportRow | None, options: MappingOptions, notes: list[str]
) -> tuple[PasswordImport | None, PasswordUnimportable | None]:
    """The importable password, or why the user will not be able to sign in with the old one."""
    enabled = user.get("password_enabled")
    hasher = export.password_hasher if export else None
    digest = export.password_digest if export else None
    if hasher or digest:
        if enabled is False:
            # The API is read after the export was taken: the password was removed since then.
            # Importing it would bring back a credential the user (or an admin) took away.
            notes.append("password_digest: not imported, password_enabled is false in Clerk now")
            return None, None
        stale = _stale_digest(user.get("password_last_updated_at"), options.export_time)
        if stale is not None:
            name = (hasher or "").strip().lower()
            return None, PasswordUnimportable(name if name in passwords.KNOWN_HASHERS else None, stale)
        result = passwords.translate(hasher, digest, salt_position=options.salt_position)
        if isinstance(result, PasswordImport):
            return result, None
        if isinstance(result, PasswordUnimportable):
            return None, result
    if enabled is True:
        return None, PasswordUnimportable(None, NO_DIGEST_REASON)
    return None, None


def password_updated_at(value: Any) -> datetime | None:
    """Clerk's ``password_last_updated_at`` as a UTC datetime; None when absent or null.

    Unix milliseconds, or seconds when the number is too small to be milliseconds of any date Clerk
    has seen (see ``SECONDS_BELOW``). Raises ValueError for anything that is not such a number.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError("not a Unix timestamp")
    microseconds = value * 1_000_000 if value < SECONDS_BELOW else value * 1_000
    try:
        return _EPOCH + _MICROSECOND * round(microseconds)
    except OverflowError:
        raise ValueError("not a Unix timestamp") from None


def _stale_digest(updated_at: Any, export_time: datetime | None) -> str | None:
    """Why the export's digest must not be imported, judged by when Clerk last saw the password change.

    At or after the export time counts as after: a reset can be undone by the user, a stale password
    brought back cannot. Absent or null (the user never changed it, or the API does not say) passes.
    """
    if export_time is None:
        return None
    try:
        changed = password_updated_at(updated_at)
    except ValueError:
        return UNREADABLE_UPDATE_REASON
    if changed is not None and changed >= export_time:
        return STALE_DIGEST_REASON
    return None


# -- metadata, social accounts, MFA -----------------------------------------------------------------


def property_specs(config: Mapping[str, Any]) -> tuple[PropertySpec, ...]:
    """The ``[properties]`` table (Clerk path -> object with key, type, name, is_private) as specs."""
    return tuple(
        PropertySpec(path, entry.key, entry.type, entry.name, entry.is_private) for path, entry in config.items()
    )


def value_at(source: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``public_metadata.plan``) of Clerk JSON; None when any step is missing."""
    value: Any = source
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def property_text(value: Any) -> str | None:
    """A Clerk value as Kinde stores properties (strings): text as is, anything else as compact JSON.

    None (absent, null), empty text and empty objects are None: nothing to write. Objects are JSON with sorted keys,
    so the same metadata always gives the same string and a re-run can compare before writing.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, dict | list) and not value:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def property_values(source: Mapping[str, Any], specs: tuple[PropertySpec, ...], notes: list[str]) -> dict[str, str]:
    """Kinde property key -> value for every mapped path that holds a value."""
    values: dict[str, str] = {}
    for spec in specs:
        text = property_text(value_at(source, spec.path))
        if text is None:
            continue
        if spec.type == "single_line_text" and "\n" in text:
            notes.append(f"{spec.path}: holds line breaks but {spec.key} is single_line_text; they are kept")
        values[spec.key] = text
    return values


def connection_for(connections: Mapping[str, str], provider: str) -> str | None:
    """The Kinde connection mapped to a canonical provider; the table may spell it ``google`` or ``oauth_google``."""
    found = connections.get(provider)
    if found is None:
        found = next((c for name, c in connections.items() if canonical_provider(name) == provider), None)
    return found


def social_identities(
    user: Mapping[str, Any], options: MappingOptions, notes: list[str]
) -> tuple[tuple[SocialIdentity, ...], tuple[str, ...], tuple[SocialNotCarried, ...]]:
    """(Kinde social identities for the mapped providers, Clerk providers left without a mapping, accounts
    that cannot be carried). Each account not carried also gets a note: nothing is dropped silently."""
    identities: list[SocialIdentity] = []
    unmapped: list[str] = []
    dropped: list[SocialNotCarried] = []
    accounts = user.get("external_accounts")
    for position, raw in enumerate(accounts if isinstance(accounts, list) else ()):
        account = read_external_account(raw)
        if account.provider is None:
            shown = _shown(account.object_name) if account.object_name else "no object name"
            reason = f"external_accounts[{position}]: an account of unknown shape ({shown}, no provider); not linked"
            notes.append(reason)
            dropped.append(SocialNotCarried("unknown", reason))
            continue
        provider = account.provider
        connection = connection_for(options.social_connections, provider)
        value = account.value
        if connection is None:
            if provider not in unmapped:
                unmapped.append(provider)
        elif value is None:
            reason = f"external_accounts: {provider} account has neither email nor provider user id; not linked"
            notes.append(reason)
            dropped.append(SocialNotCarried(provider, reason))
        elif all(i.connection_id != connection or i.value.lower() != value.lower() for i in identities):
            identities.append(SocialIdentity(provider, connection, value))
    return tuple(identities), tuple(unmapped), tuple(dropped)


def mfa_enrolled(user: Mapping[str, Any], export: ExportRow | None) -> bool:
    """Enrolled in MFA in Clerk (TOTP in the export, or the API's flags): must enrol again in Kinde."""
    return bool(export is not None and export.has_totp) or any(
        user.get(flag) is True for flag in ("two_factor_enabled", "totp_enabled")
    )


# -- users ------------------------------------------------------------------------------------------


def plan_user(user: Mapping[str, Any], export: ExportRow | None, options: MappingOptions) -> UserPlan | Skip:
    """Map one Clerk user (API JSON) and its export row, if any, to a Kinde plan or a skip.

    Skip reasons: ``invalid_user`` (no id), ``banned`` (policy skip), ``no_identifier`` (no
    usable email, phone or username), ``password_not_importable`` (policy skip).
    Raises ValueError only when ``export`` belongs to another user (a caller bug).
    """
    clerk_id = _text(user.get("id"))
    if clerk_id is None:
        return Skip("", "invalid_user", "the Clerk user has no id")
    if export is not None and export.user_id != clerk_id:
        raise ValueError(f"export row {export.row_number} is for {export.user_id!r}, not {clerk_id!r}")

    banned = user.get("banned") is True
    if banned and options.banned_users == "skip":
        return Skip(clerk_id, "banned", "banned in Clerk (banned_users=skip)")

    notes: list[str] = []
    identities = [
        *_email_identities(user, notes),
        *_phone_identity(user, options, notes),
        *_username_identity(user),
    ]
    if not identities:
        detail = "no usable email, phone or username"
        return Skip(clerk_id, "no_identifier", f"{detail} ({'; '.join(notes)})" if notes else detail)

    password, problem = _password(user, export, options, notes)
    policy, lazy = password_policy(problem, identities, options)
    if policy == "skip" and problem is not None:
        return Skip(clerk_id, "password_not_importable", problem.reason)

    picture = _text(user.get("image_url")) if user.get("has_image") is True else None
    if picture is not None and not picture.startswith(("https://", "http://")):
        notes.append(f"image_url: {_shown(picture)} is not an http(s) URL; no picture")
        picture = None

    properties = property_values(user, options.properties, notes)
    social, unmapped, not_carried = social_identities(user, options, notes)
    return UserPlan(
        clerk_id=clerk_id,
        identities=tuple(identities),
        properties=properties,
        social=social,
        unmapped_providers=unmapped,
        social_not_carried=not_carried,
        given_name=_text(user.get("first_name")),
        family_name=_text(user.get("last_name")),
        picture=picture,
        password=password,
        password_problem=problem,
        request_password_reset=policy == "reset",
        lazy=lazy,
        suspended=banned,
        warnings=tuple(f"{clerk_id}: {note}" for note in notes),
    )


def password_policy(
    problem: PasswordUnimportable | None, identities: list[Identity], options: MappingOptions
) -> tuple[UnimportablePolicy | None, bool]:
    """(the policy that applies to a user whose password cannot travel, whether it joins the lazy cohort).

    None when the password is importable or there is none. Under ``lazy`` the cohort is whoever the workflow
    can find at sign-in: a verified email (Kinde's event carries only the email typed, and the workflow asks
    Clerk for a verified holder of it); everyone else gets ``lazy_fallback`` now."""
    if problem is None:
        return None, False
    if options.unimportable_passwords != "lazy":
        return options.unimportable_passwords, False
    if any(identity.type == "email" and identity.is_verified for identity in identities):
        return "lazy", True
    return options.lazy_fallback, False


def normalized_identity(kind: object, value: object) -> str:
    """An identity's value as Kinde compares it: emails and usernames ignoring case, phones as they are (E.164
    already). The one rule for every comparison of identities: lookups, conflicts, catch-up diffs, verify, undo."""
    text = value if isinstance(value, str) else str(value or "")
    return text if kind == "phone" else text.lower()


def identity_key(kind: object, value: object) -> str:
    """``type:value``, the value normalized: how an identity is named across users (conflicts), in the journal's
    ``user_writes`` and by the undo, whatever case Kinde answers it in."""
    return f"{kind}:{normalized_identity(kind, value)}"


def identity_keys(plan: UserPlan) -> dict[str, str]:
    """The plan's primary email, username and phone as Kinde compares them (case-insensitive)."""
    found = (("email", plan.email), ("username", plan.username), ("phone", plan.phone))
    return {kind: normalized_identity(kind, value) for kind, value in found if value}


def all_identity_keys(plan: UserPlan) -> tuple[tuple[str, str], ...]:
    """Every identity as (type, normalized value), extra verified emails included."""
    return tuple((identity.type, normalized_identity(identity.type, identity.value)) for identity in plan.identities)


# -- organizations, roles, memberships --------------------------------------------------------------


def kinde_role_key(clerk_role: str, options: MappingOptions) -> str:
    """The Kinde role key for a Clerk one: ``role_map`` (by full or bare key), else the bare key."""
    if clerk_role in options.role_map:
        return options.role_map[clerk_role]
    bare = clerk_role.removeprefix("org:")
    if bare in options.role_map:
        return options.role_map[bare]
    if not bare:
        raise ValueError(f"Clerk role key {clerk_role!r} has nothing after its prefix")
    return bare


def plan_membership(membership: Mapping[str, Any], options: MappingOptions) -> tuple[str, Membership]:
    """(Clerk user id, Membership) from a Clerk OrganizationMembership. ValueError if incomplete."""
    organization = _mapping(membership.get("organization"))
    user_id = _text(_mapping(membership.get("public_user_data")).get("user_id"))
    org_id = _text(organization.get("id")) or _text(membership.get("organization_id"))
    role = _text(membership.get("role"))
    if user_id is None or org_id is None or role is None:
        missing = [name for name, value in (("user id", user_id), ("org id", org_id), ("role", role)) if not value]
        raise ValueError(f"organization membership {membership.get('id')!r} has no {', '.join(missing)}")
    return user_id, Membership(clerk_org_id=org_id, role_key=kinde_role_key(role, options))


def organization_body(org: Mapping[str, Any]) -> dict[str, Any]:
    """Body of Kinde's ``POST /api/v1/organization``; the Clerk id goes in ``external_id``."""
    org_id = _text(org.get("id"))
    if org_id is None:
        raise ValueError("Clerk organization has no id")
    name = _text(org.get("name")) or _text(org.get("slug")) or org_id
    return {"name": name, "external_id": org_id}


def kinde_permission_key(clerk_permission: str) -> str:
    """The Kinde permission key for a Clerk one: ``org:invoices:read`` -> ``invoices:read``."""
    bare = clerk_permission.removeprefix("org:")
    if not bare:
        raise ValueError(f"Clerk permission key {clerk_permission!r} has nothing after its prefix")
    return bare


def role_permissions(role: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Bodies of ``POST /api/v1/permissions`` for a Clerk role's permissions (objects or bare keys)."""
    bodies: dict[str, dict[str, Any]] = {}
    permissions = role.get("permissions")
    for permission in permissions if isinstance(permissions, list) else ():
        entry = _mapping(permission) if not isinstance(permission, str) else {"key": permission}
        clerk_key = _text(entry.get("key"))
        if clerk_key is None:
            continue
        key = kinde_permission_key(clerk_key)
        body = {"key": key, "name": _text(entry.get("name")) or key}
        if description := _text(entry.get("description")):
            body["description"] = description
        bodies.setdefault(key, body)
    return [bodies[key] for key in sorted(bodies)]


def organization_properties(org: Mapping[str, Any], options: MappingOptions) -> dict[str, str]:
    """Kinde organization property key -> value, from a Clerk Organization (``[organization_properties]``)."""
    return property_values(org, options.organization_properties, [])


def role_body(role: Mapping[str, Any], options: MappingOptions | None = None) -> dict[str, Any]:
    """Body of Kinde's ``POST /api/v1/roles``, keyed as ``kinde_role_key`` keys memberships."""
    clerk_key = _text(role.get("key"))
    if clerk_key is None:
        raise ValueError(f"Clerk role {role.get('id')!r} has no key")
    body: dict[str, Any] = {
        "name": _text(role.get("name")) or clerk_key,
        "key": kinde_role_key(clerk_key, options or MappingOptions()),
    }
    description = _text(role.get("description"))
    if description:
        body["description"] = description
    return body
