"""Plain data that flows between the stages: Clerk export rows, mapped Kinde users, skips.

Everything here is immutable and free of I/O so the pure stages (`mapping`, `passwords`)
can be tested exhaustively. Password material is kept out of every ``repr`` so that a
digest can never leak through a log line, a traceback or a test failure message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

IdentityType = Literal["email", "phone", "username"]


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One user row of Clerk's dashboard CSV export, already cleaned.

    The formula-guard TAB is stripped, multi-value cells are split, empty cells are ``None``.
    """

    user_id: str
    row_number: int  # 1-based line number in the file (header is line 1)
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    primary_email: str | None = None
    primary_phone: str | None = None
    verified_emails: tuple[str, ...] = ()
    unverified_emails: tuple[str, ...] = ()
    verified_phones: tuple[str, ...] = ()
    unverified_phones: tuple[str, ...] = ()
    password_hasher: str | None = None
    password_digest: str | None = field(default=None, repr=False)
    # Whether the totp_secret cell is filled: the secret itself is never kept (users must re-enrol).
    has_totp: bool = False
    # "json": Clerk's JSON export, where row_number is the user's ordinal and the email and phone lists
    # (which it does not split by verification) are in the unverified_* fields.
    source: Literal["csv", "json"] = "csv"


@dataclass(frozen=True, slots=True)
class PasswordImport:
    """The body of Kinde's ``PUT /api/v1/users/{id}/password`` for one user.

    ``fields`` holds ``hashed_password``, ``hashing_method`` and whatever else the method needs
    (salt, salt_position, iterations, variant, firebase parameters). Never printed.
    """

    hasher: str  # the Clerk hasher it came from, e.g. "bcrypt"
    method: str  # Kinde's hashing_method, e.g. "bcrypt", "pbkdf2", "firebase-scrypt"
    fields: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class PasswordUnimportable:
    """A digest Kinde cannot verify, or one that is malformed: the user needs another path in."""

    hasher: str | None
    reason: str
    malformed: bool = False  # True when the digest does not match its hasher's format


@dataclass(frozen=True, slots=True)
class Identity:
    """One Kinde identity as sent in ``POST /api/v1/user``."""

    type: IdentityType
    value: str
    is_verified: bool = False
    phone_country_id: str | None = None

    def to_api(self) -> dict[str, Any]:
        details: dict[str, Any] = {self.type: self.value}
        if self.phone_country_id:
            details["phone_country_id"] = self.phone_country_id
        body: dict[str, Any] = {"type": self.type, "details": details}
        if self.type != "username":
            body["is_verified"] = self.is_verified
        return body


@dataclass(frozen=True, slots=True)
class SocialIdentity:
    """A Clerk external account as a Kinde social identity (``POST /api/v1/users/{id}/identities``)."""

    provider: str  # Clerk's, e.g. "oauth_google"
    connection_id: str  # the Kinde connection the operator mapped it to
    value: str  # the account's email (what Kinde matches a social sign-in on), else the provider's user id

    def to_api(self) -> dict[str, Any]:
        return {"type": "social", "value": self.value, "connection_id": self.connection_id}


@dataclass(frozen=True, slots=True)
class SocialNotCarried:
    """A Clerk external account that cannot become a Kinde identity (no usable value, unknown shape), and why."""

    provider: str  # canonical (``oauth_google``), or ``unknown`` when the account's shape names none
    reason: str


@dataclass(frozen=True, slots=True)
class Membership:
    """A Clerk organization membership, translated to Kinde role keys."""

    clerk_org_id: str
    role_key: str


@dataclass(frozen=True, slots=True)
class UserPlan:
    """Everything the loader needs to create one Kinde user, computed purely from Clerk data."""

    clerk_id: str
    identities: tuple[Identity, ...]
    given_name: str | None = None
    family_name: str | None = None
    picture: str | None = None
    password: PasswordImport | None = None
    # Why the user cannot sign in with the old password (None when password is set, or not needed).
    password_problem: PasswordUnimportable | None = None
    # True when the user must choose a new password at first sign-in (policy "reset").
    request_password_reset: bool = False
    # Policy "lazy": the user moves at sign-in through Kinde's workflow (the lazy cohort), not by this run.
    lazy: bool = False
    suspended: bool = False  # banned in Clerk
    properties: dict[str, str] = field(default_factory=dict)  # Kinde property key -> value (``[properties]``)
    social: tuple[SocialIdentity, ...] = ()
    unmapped_providers: tuple[str, ...] = ()  # Clerk providers of this user with no Kinde connection mapped
    social_not_carried: tuple[SocialNotCarried, ...] = ()  # mapped (or unreadable) accounts no identity carries
    warnings: tuple[str, ...] = ()  # per-user notes: dropped invalid phone, unverified extra email...

    @property
    def email(self) -> str | None:
        """The primary email, which is also the key used to find the user in Kinde."""
        return next((i.value for i in self.identities if i.type == "email"), None)

    @property
    def username(self) -> str | None:
        return next((i.value for i in self.identities if i.type == "username"), None)

    @property
    def phone(self) -> str | None:
        return next((i.value for i in self.identities if i.type == "phone"), None)

    def create_body(self) -> dict[str, Any]:
        """JSON body of ``POST /api/v1/user``."""
        profile = {
            k: v
            for k, v in (
                ("given_name", self.given_name),
                ("family_name", self.family_name),
                ("picture", self.picture),
            )
            if v
        }
        body: dict[str, Any] = {
            "provided_id": self.clerk_id,
            "identities": [i.to_api() for i in self.identities],
        }
        if profile:
            body["profile"] = profile
        return body


@dataclass(frozen=True, slots=True)
class Skip:
    """A Clerk user that will not be migrated, and why (shown to the operator)."""

    clerk_id: str
    reason: str  # a short stable code, e.g. "no_identifier", "duplicate_email"
    detail: str = ""


def plan_to_record(plan: UserPlan) -> dict[str, Any]:
    """The plan as JSON-able data for the journal: everything except password material."""
    return {
        "identities": [
            {
                "type": i.type,
                "value": i.value,
                "is_verified": i.is_verified,
                "phone_country_id": i.phone_country_id,
            }
            for i in plan.identities
        ],
        "given_name": plan.given_name,
        "family_name": plan.family_name,
        "picture": plan.picture,
        "request_password_reset": plan.request_password_reset,
        "suspended": plan.suspended,
        "properties": plan.properties,
        "social": [{"provider": s.provider, "connection_id": s.connection_id, "value": s.value} for s in plan.social],
        # Only when set, so the plans of users outside the cohort keep their earlier form.
        **({"lazy": True} if plan.lazy else {}),
        # Only when there are some, so the plans of users without them keep their earlier form.
        **(
            {"social_not_carried": [{"provider": d.provider, "reason": d.reason} for d in plan.social_not_carried]}
            if plan.social_not_carried
            else {}
        ),
    }


def plan_from_record(clerk_id: str, record: dict[str, Any]) -> UserPlan:
    """Rebuild a plan from the journal (its password is re-read from the export when needed)."""
    return UserPlan(
        clerk_id=clerk_id,
        identities=tuple(Identity(**identity) for identity in record["identities"]),
        given_name=record.get("given_name"),
        family_name=record.get("family_name"),
        picture=record.get("picture"),
        request_password_reset=bool(record.get("request_password_reset")),
        lazy=bool(record.get("lazy")),
        suspended=bool(record.get("suspended")),
        properties=dict(record.get("properties") or {}),
        social=tuple(SocialIdentity(**social) for social in record.get("social") or ()),
        social_not_carried=tuple(SocialNotCarried(**item) for item in record.get("social_not_carried") or ()),
    )
