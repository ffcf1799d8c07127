"""A deterministic synthetic Clerk instance: users, organizations, roles, memberships, CSV export.

Why it looks like this: the sandbox must serve a million users with flat memory, so nothing is
stored per user. Every user is a pure function of ``(seed, index)``: its traits come from a
random generator seeded by a hash of both, its id is an invertible scrambling of the index (so
``index_of`` is O(1)), its ``created_at`` grows strictly with the index (so ``+created_at`` order
is index order and a time window is an index range), and its emails and phone numbers embed the
index (so an exact-match filter can find the owner without a scan). Memberships follow a fixed
10-user pattern, so the p-th membership is computed, not searched for.

Trait mix (fractions of users, each drawn independently per user unless nested):

* sign-in kind: 64% email + password, 8% email passwordless (code/link), 14% OAuth only
  (one external account, no password), 4% OAuth + password, 6% phone only (no email, no
  password), 4% username only (username + password, no email/phone).
* primary email (users with one): 90% verified (3/4 by email code, 1/4 admin/imported), 10%
  unverified (1/4 of those with an ``expired`` code, the rest ``unverified``); OAuth emails are verified
  ``from_oauth_<provider>``. 12% of email users have one extra address (half verified); for 30% of
  those the primary is not the first element of ``email_addresses``.
* phones: 20% of email/OAuth users also have a phone (85% verified); phone-only users have a
  verified one; 5% of phone holders have a second, unverified phone. 13 countries, all numbers
  valid E.164 built from ``phonenumbers`` example numbers.
* username: 25% of non-username-only users; 100% of username-only users.
* names: 8% none, 5% unicode (accents, CJK, Cyrillic, Arabic, Greek, apostrophes), 0.3% very
  long (over 150 characters), the rest plain ASCII. Email local parts are lowercase ASCII.
* password users (email + password, OAuth + password, username only, about 72%): hasher drawn
  from ``hasher_weights`` (default 80% bcrypt, 20% spread evenly over every other hasher in
  ``CLERK_HASHERS``); digests come from a pool of ``POOL_SIZE`` precomputed (plaintext, digest)
  pairs per hasher. 6% of password users have TOTP (half also backup codes).
* password history (``PasswordHistory``): the export is written at ``export_time_ms`` (a day after the
  last sign-up; ``write_export_csv`` gives the file that time). 3 in 10 password users changed their
  password between sign-up and then; ``changed_after_export`` users changed it after (their export
  digest is the old password, ``plaintext`` the new one, ``exported_plaintext`` the old one).
  ``password_last_updated_at`` is Unix ms by default, or per ``PasswordHistory.timestamps``.
  ``salted_order="hash-first"`` writes md5_salted / sha256_salted digests as ``hash$salt``.
* 2% banned, 1% locked (``lockout_expires_in_seconds`` 60..3600), 10% ``external_id``, 50% public,
  30% private, 10% unsafe metadata, 25% ``has_image``, 3% a passkey, 1% a web3 wallet besides
  their email, 10% never signed in, 30% a locale.
* organizations: ``max(1, min(n // 100, 5000))`` unless ``organizations`` names a count (up to one
  per 10 users: many small organizations); 60% of users belong to one organization, 10%
  to two (when there are at least two). The first user of each organization's first block
  (index ``10 * j``) created it and is ``org:admin``; other memberships are 12% ``org:admin``,
  73% ``org:member``, 15% one of three custom roles.

Deliberately problematic users at fixed indexes, present only when ``n >= 50``
(``PROBLEM_USERS``):

* 7: web3 wallet only (no email, phone or username) -> not migratable, ``no_identifier``.
* 11 and 12: share ``alex.morgan@example.com`` (11's primary, 12's verified secondary).
* 17: first name starts with ``=`` (formula guard in the CSV name column, quotes and commas).
* 17, 41, 43, 44: formula-leading and markup names, email, username (``HOSTILE_TEXT``; still eligible).
* 21 ``sam_taylor`` (email + password) and 22 ``Sam_Taylor`` (username only): equal ignoring case.
* 23: an invalid phone number (``+10995550123``) as primary phone, plus a valid email.
* 25 ``jordan_lee`` and 26 ``JORDAN_LEE``: equal ignoring case, both with an email.
* 29: ``password_enabled`` but no digest (empty cells) in the export.
* 31: very long first and last names. 33: CJK names. 37: banned. 38: locked.

``expected(i)`` describes a correct migration under the default settings
(``duplicate_identities="first"``, ``banned_users="suspend"``, as ``stages.conflicts.settle_shared``
applies them): the earliest-created user keeps a contested primary email or username and later
holders are skipped (``duplicate_email`` / ``duplicate_username``: 22 and 26); a contested extra
email is only dropped from its later holder (12 stays, with its own primary); banned users are
migrated (suspended); invalid phones are dropped (23 keeps its email). For a skipped user every
field that would reach Kinde is None; ``banned`` still reports Clerk's flag.
"""

from __future__ import annotations

import base64
import bisect
import csv
import hashlib
import json
import os
import random
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import phonenumbers

from migrator.clerk.export import EXPORT_COLUMNS  # Clerk's 13 columns, in Clerk's order
from migrator.sandbox.changes import ClerkChanges, now_ms
from migrator.sandbox.hashing import CLERK_HASHERS, make_clerk_digest

# The dashboard prefixes a TAB to any cell starting with one of these (clerk_go pkg/csvsafe).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
MULTI_VALUE_SEPARATOR = "|"

BASE_CREATED_AT_MS = 1_672_531_200_000  # 2023-01-01T00:00:00Z
USER_SPACING_MS = 60_000  # user i is created in [base + i*spacing, base + i*spacing + spacing/2)
DAY_MS = 86_400_000
POOL_SIZE = 8  # precomputed (plaintext, digest) pairs per hasher
MAX_USERS = 4_000_000  # phone numbers stay unique up to here (8M values in the +1 regions)
NEW_PASSWORD_SUFFIX = "~changed"  # a password changed after the export: the old one plus this
SALTED_HASHERS = frozenset({"md5_salted", "sha256_salted"})

TimestampReading = Literal["ms", "seconds", "null-until-changed", "absent"]
SaltedOrder = Literal["salt-first", "hash-first"]


@dataclass(frozen=True)
class PasswordHistory:
    """When passwords changed, and how Clerk's API says so: the sandbox's switches for stale digests.

    ``changed_after_export``: users whose password changed after the export was written (their digest
    in the export is the old one, ``password_last_updated_at`` is after the export's time, and their
    plaintext is the new one). An int is a number of users (the first digest holders by index), a
    float a fraction of digest holders (chosen by a hash of the index).
    ``timestamps``: how ``password_last_updated_at`` reads. Clerk's spec only says "Unix timestamp":
    ``ms`` (like every other Clerk timestamp; set at sign-up, the default), ``seconds``,
    ``null-until-changed`` (null unless changed since sign-up), ``absent`` (not in the JSON at all).
    """

    changed_after_export: int | float = 0
    timestamps: TimestampReading = "ms"

    def __post_init__(self) -> None:
        changed = self.changed_after_export
        if isinstance(changed, bool) or not isinstance(changed, int | float):
            raise ValueError("changed_after_export must be a number of users (int) or a fraction (float)")
        if isinstance(changed, float) and not 0.0 <= changed <= 1.0:
            raise ValueError(f"changed_after_export as a fraction must be within 0..1, got {changed}")
        if isinstance(changed, int) and changed < 0:
            raise ValueError(f"changed_after_export must not be negative, got {changed}")
        if self.timestamps not in get_args(TimestampReading):
            raise ValueError(f"timestamps must be one of {get_args(TimestampReading)}, got {self.timestamps!r}")


PROBLEM_USERS_MIN_N = 50
WEB3_ONLY_USER = 7
SHARED_EMAIL_OWNER = 11
SHARED_EMAIL_OTHER = 12
FORMULA_NAME_USER = 17
USERNAME_CASE_PAIR_A = (21, 22)  # 22 is username-only; skipped as duplicate_username
INVALID_PHONE_USER = 23
USERNAME_CASE_PAIR_B = (25, 26)  # both have an email; 26 is still skipped (username is primary)
NO_DIGEST_USER = 29
LONG_NAME_USER = 31
CJK_NAME_USER = 33
BANNED_USER = 37
LOCKED_USER = 38
PROBLEM_USERS: dict[int, str] = {
    WEB3_ONLY_USER: "web3 wallet only: no email, phone or username",
    SHARED_EMAIL_OWNER: "primary email shared with user 12 (as 12's secondary)",
    SHARED_EMAIL_OTHER: "secondary email is user 11's primary",
    FORMULA_NAME_USER: "first name starts with '=' (CSV formula guard)",
    USERNAME_CASE_PAIR_A[0]: "username equal ignoring case to user 22's",
    USERNAME_CASE_PAIR_A[1]: "username-only, username equal ignoring case to user 21's",
    INVALID_PHONE_USER: "invalid phone number as primary phone",
    USERNAME_CASE_PAIR_B[0]: "username equal ignoring case to user 26's",
    USERNAME_CASE_PAIR_B[1]: "username equal ignoring case to user 25's, has an email",
    NO_DIGEST_USER: "password_enabled but no digest in the export",
    LONG_NAME_USER: "very long first and last names",
    CJK_NAME_USER: "CJK names",
    BANNED_USER: "banned",
    LOCKED_USER: "locked",
}
SHARED_EMAIL = "alex.morgan@example.com"
INVALID_PHONE = "+10995550123"

# Text a spreadsheet would run, and markup, in the values people read in our reports (present with the
# problem users, n >= 50; eligible, kinds drawn as usual, so every count above holds). User 17 (an
# email + password problem user) gets a formula-leading primary email (``=`` is valid before the @),
# a markup last name and a username beginning with ``-`` (whether Clerk accepts one is not in our
# reference notes: a plausible form, which the migrator passes through as it is).
FORMULA_EMAIL = "=hyperlink17@example.com"
HOSTILE_TEXT: dict[int, dict[str, str]] = {
    FORMULA_NAME_USER: {"last_name": "<script>alert(1)</script>", "email": FORMULA_EMAIL, "username": "-u17"},
    41: {"first_name": "+Plus", "last_name": "@Mention"},
    43: {"first_name": "-Dash", "last_name": "<b>Bold</b>"},
    44: {"first_name": "@Handle", "last_name": "=1+1"},
}

# Memberships: user i has MEMBERSHIP_PATTERN[i % 10] memberships (the second one only when there
# are at least two organizations), so membership positions map to users arithmetically.
MEMBERSHIP_PATTERN = (1, 1, 0, 2, 1, 0, 1, 0, 1, 0)
MEMBERSHIP_PATTERN_SINGLE_ORG = (1, 1, 0, 1, 1, 0, 1, 0, 1, 0)
MAX_ORGANIZATIONS = 5000

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE62_INDEX = {c: k for k, c in enumerate(_BASE62)}
_ID_BODY_LEN = 26  # Clerk ids: prefix, "_", then 27 base62 characters starting with "2"
_ID_BITS = 154  # 2**154 < 62**26: the scrambled value fills the id body
_ID_MASK = (1 << _ID_BITS) - 1
_TAG_BITS = 90  # seed check below the index: a random-looking id is rejected, not misread
_TAG_MASK = (1 << _TAG_BITS) - 1
_DIGITS = re.compile(r"\d+")

KIND_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("email_password", 0.64),
    ("email_passwordless", 0.08),
    ("oauth_only", 0.14),
    ("oauth_password", 0.04),
    ("phone_only", 0.06),
    ("username_only", 0.04),
)
# Older shapes Clerk has served external accounts in (../shared/reference/clerk-backend-api.md, ExternalAccount):
# a legacy ``<name>_account`` object (``<name>_id``, no provider), a bare provider name, both at once, a legacy
# object with neither email nor id (cannot be carried), and an entry naming no provider.
AccountShape = Literal["legacy", "bare", "legacy_bare", "no_identity", "unknown"]
ACCOUNT_SHAPES: tuple[AccountShape, ...] = get_args(AccountShape)
JsonExportShape = Literal["list", "joined"]
PASSWORD_KINDS = frozenset({"email_password", "oauth_password", "username_only"})
EMAIL_KINDS = frozenset({"email_password", "email_passwordless", "oauth_only", "oauth_password"})
OAUTH_PROVIDERS: tuple[tuple[str, float, str], ...] = (
    ("oauth_google", 0.6, "email https://www.googleapis.com/auth/userinfo.email openid profile"),
    ("oauth_github", 0.2, "read:user user:email"),
    ("oauth_microsoft", 0.1, "email offline_access openid profile User.Read"),
    ("oauth_apple", 0.1, "email name"),
)
# (region, share): phone countries; their example mobile numbers with the last 7 digits varied.
PHONE_REGIONS: tuple[tuple[str, float], ...] = (
    ("US", 0.30),
    ("GB", 0.10),
    ("IN", 0.10),
    ("DE", 0.08),
    ("FR", 0.08),
    ("BR", 0.08),
    ("JP", 0.05),
    ("AU", 0.05),
    ("CA", 0.05),
    ("MX", 0.04),
    ("ES", 0.03),
    ("NG", 0.02),
    ("ZA", 0.02),
)
_NANP_REGIONS = frozenset({"US", "CA"})  # exchange codes cannot start with 0 or 1

FIRST_NAMES = (
    "james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda", "william",
    "elizabeth", "david", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah",
    "charles", "karen", "daniel", "nancy", "matthew", "lisa", "anthony", "betty", "mark", "sandra",
    "olivia", "liam", "emma", "noah", "ava", "ethan", "mia", "lucas", "amelia", "mateo", "aisha",
    "wei", "priya", "kenji", "fatima", "omar", "ingrid", "pierre", "giulia", "hana",
)  # fmt: skip
LAST_NAMES = (
    "smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez",
    "martinez", "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor",
    "moore", "jackson", "martin", "lee", "perez", "thompson", "white", "harris", "sanchez",
    "clark", "ramirez", "lewis", "robinson", "walker", "young", "allen", "king", "wright",
    "nguyen", "patel", "kim", "chen", "muller", "rossi", "dubois", "tanaka", "okafor", "silva",
)  # fmt: skip
UNICODE_NAMES = (
    ("José", "Núñez"), ("Zoë", "Ødegård"), ("Łukasz", "Wójcik"), ("Søren", "Kierkegård"),
    ("François", "Lefèvre"), ("Þóra", "Sigurðardóttir"), ("美咲", "佐藤"), ("Дмитрий", "Иванов"),
    ("محمد", "العلي"), ("Αλέξανδρος", "Παπαδόπουλος"), ("İlkay", "Gündoğan"), ("Thị Minh", "Nguyễn"),
    ("Renée", "O'Connor"), ("Anne-Marie", "D'Souza"), ("Ngozi", "Okonjo-Iweala"), ("Chloé", "Brontë"),
)  # fmt: skip
LONG_FIRST_NAME = (
    "Adolph Blaine Charles David Earl Frederick Gerald Hubert Irvin John Kenneth Lloyd Martin "
    "Nero Oliver Paul Quincy Randolph Sherman Thomas Uncas Victor William Xerxes Yancy Zeus"
)
LONG_LAST_NAME = (
    "Wolfeschlegelsteinhausenbergerdorffwelchevoralternwarengewissenhaftschaferswessenschafe"
    "warenwohlgepflegeundsorgfaltigkeitbeschutzenvonangreifendurchihrraubgierigfeindewelchevor"
    "alternzwolftausendjahresvorandieerscheinenvanderersteerdemenschderraumschiffgebrauchlicht"
)
EMAIL_DOMAINS = (
    "example.com", "example.org", "example.net", "mail.example.com", "corp.example.org",
    "inbox.example.net",
)  # fmt: skip
WORK_DOMAINS = ("work.example.com", "staff.example.org", "team.example.net")
PLUS_TAGS = ("news", "shop", "dev", "signup")
PASSWORD_WORDS = (
    "orange", "Falcon", "river", "Quartz", "maple", "Nebula", "copper", "Tundra", "velvet",
    "Harbor", "pixel", "Summit", "lantern", "Cobalt", "meadow", "Zephyr",
)  # fmt: skip
LOCALES = ("en-US", "en-GB", "fr-FR", "de-DE", "es-ES", "pt-BR", "ja-JP")
ORG_NAMES = (
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises",
    "Wonka Industries", "Cyberdyne", "Tyrell", "Massive Dynamic", "Vandelay Industries",
    "Pied Piper", "Aperture Science", "Oscorp", "Société Générale d'Essai", "株式会社テスト",
)  # fmt: skip

SYSTEM_PERMISSIONS = (
    "org:sys_profile:manage", "org:sys_profile:delete", "org:sys_memberships:read",
    "org:sys_memberships:manage", "org:sys_domains:read", "org:sys_domains:manage",
    "org:sys_billing:read", "org:sys_billing:manage",
)  # fmt: skip
CUSTOM_PERMISSIONS = ("org:invoices:read", "org:tickets:manage", "org:reports:read")
# (key, name, description, permissions, share of non-creator memberships)
ROLE_DEFINITIONS: tuple[tuple[str, str, str | None, tuple[str, ...], float], ...] = (
    ("org:admin", "Admin", "Role with elevated permissions", SYSTEM_PERMISSIONS, 0.12),
    (
        "org:member",
        "Member",
        "Role with non-elevated permissions",
        ("org:sys_memberships:read", "org:sys_billing:read"),
        0.73,
    ),
    (
        "org:billing_manager",
        "Billing manager",
        "Custom role: manages invoices",
        ("org:sys_billing:read", "org:sys_billing:manage", "org:invoices:read"),
        0.05,
    ),
    (
        "org:support_agent",
        "Support agent",
        None,
        ("org:sys_memberships:read", "org:tickets:manage"),
        0.05,
    ),
    ("org:viewer", "Viewer", "Custom role: read-only", ("org:reports:read",), 0.05),
)
_ROLE_ROWS = tuple((role, role[4]) for role in ROLE_DEFINITIONS)  # rows for _pick, by share


def _hash_int(*parts: object) -> int:
    """A stable 128-bit hash of the parts (Python's hash() is salted per process)."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=16).digest(), "big")


def _rng(*parts: object) -> random.Random:
    return random.Random(_hash_int(*parts))


def _base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        chars.append(_BASE62[digit])
    return "".join(reversed(chars))


def _clerk_id(prefix: str, *parts: object) -> str:
    """A Clerk-shaped id (``idn_2...``, 27 base62 characters), stable for the given parts."""
    text = "\x1f".join(str(p) for p in (prefix, *parts)).encode()
    wide = int.from_bytes(hashlib.blake2b(text, digest_size=24).digest(), "big")  # > 62**26
    return f"{prefix}_2" + _base62(wide % 62**_ID_BODY_LEN, _ID_BODY_LEN)


def _pick(rng: random.Random, weighted: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    """Choose one row of (value, weight, ...) rows by its weight."""
    roll = rng.random() * sum(row[1] for row in weighted)
    for row in weighted:
        roll -= row[1]
        if roll < 0:
            return row
    return weighted[-1]


def _ascii_fold(text: str | None, limit: int = 20) -> str:
    """Lowercase ASCII letters of a name, for email local parts and usernames."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "".join(c for c in folded if c.isalpha())[:limit]


def formula_guard(value: str) -> str:
    """The dashboard's spreadsheet-safety rule: a TAB before a cell that could run as a formula."""
    return "\t" + value if value.startswith(FORMULA_PREFIXES) else value


@cache
def _phone_prefix(region: str) -> tuple[str, str]:
    """(``+<country code>``, national prefix) for a region: its example mobile minus 7 digits."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None, region
    national = str(example.national_number)
    return f"+{example.country_code}", national[:-7]


def phone_number_for(region: str, value: int) -> str:
    """A valid E.164 number of ``region`` that encodes ``value`` (< 8M) in its last 7 digits."""
    code, prefix = _phone_prefix(region)
    if region in _NANP_REGIONS:
        suffix = f"{2 + (value // 1_000_000) % 8}{value % 1_000_000:06d}"
    else:
        suffix = f"{value % 10_000_000:07d}"
    return code + prefix + suffix


def _phone_value(number: str) -> int | None:
    """Invert ``phone_number_for``: the encoded value, or None when no region prefix matches."""
    for region, _share in PHONE_REGIONS:
        code, prefix = _phone_prefix(region)
        head = code + prefix
        if number.startswith(head) and len(number) == len(head) + 7 and number[len(head) :].isdigit():
            suffix = number[len(head) :]
            if region in _NANP_REGIONS:
                return (int(suffix[0]) - 2) * 1_000_000 + int(suffix[1:])
            return int(suffix)
    return None


@dataclass(slots=True)
class _Email:
    address: str
    verified: bool
    strategy: str  # email_code | admin | email_link | from_oauth_<provider> | expired (email code)
    created_at: int
    linked_provider: str | None = None


@dataclass(slots=True)
class _Phone:
    number: str
    verified: bool
    strategy: str  # phone_code | admin
    created_at: int


@dataclass(slots=True)
class _Profile:
    """Everything that varies between users; the JSON, CSV row and expectations derive from it."""

    index: int
    user_id: str
    kind: str
    created_at: int
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    emails: list[_Email] = field(default_factory=list)
    primary_email: int | None = None
    phones: list[_Phone] = field(default_factory=list)
    primary_phone: int | None = None
    web3_wallet: str | None = None
    web3_primary: bool = False
    oauth_provider: str | None = None
    password: tuple[str, int] | None = None  # (hasher, pool slot)
    password_enabled: bool = False
    digest_exported: bool = True
    totp_secret: str | None = None
    backup_codes: bool = False
    passkey: bool = False
    banned: bool = False
    locked: bool = False
    lockout_seconds: int | None = None
    external_id: str | None = None
    locale: str | None = None
    has_image: bool = False
    public_metadata: dict[str, Any] = field(default_factory=dict)
    private_metadata: dict[str, Any] = field(default_factory=dict)
    unsafe_metadata: dict[str, Any] = field(default_factory=dict)
    last_sign_in_at: int | None = None
    legal_accepted_at: int | None = None
    updated_at: int = 0

    @property
    def primary_email_address(self) -> str | None:
        return None if self.primary_email is None else self.emails[self.primary_email].address

    @property
    def primary_phone_number(self) -> str | None:
        return None if self.primary_phone is None else self.phones[self.primary_phone].number


def _apply_hostile_text(p: _Profile, values: Mapping[str, str]) -> None:
    """Overwrite names, the primary email's address and the username of a HOSTILE_TEXT user."""
    p.first_name = values.get("first_name", p.first_name)
    p.last_name = values.get("last_name", p.last_name)
    p.username = values.get("username", p.username)
    if "email" in values and p.primary_email is not None:
        p.emails[p.primary_email].address = values["email"]


class Dataset:
    """A synthetic Clerk instance of ``users`` users, identical for identical arguments.

    See the module docstring for the trait mix and the fixed problem users.
    """

    def __init__(
        self,
        users: int = 1000,
        seed: int = 1,
        *,
        hasher_weights: Mapping[str, float] | None = None,
        password_history: PasswordHistory | None = None,
        salted_order: SaltedOrder = "salt-first",
        account_shapes: float = 0.0,
        organizations: int | None = None,
    ) -> None:
        if not 1 <= users <= MAX_USERS:
            raise ValueError(f"users must be between 1 and {MAX_USERS}, got {users}")
        if salted_order not in get_args(SaltedOrder):
            raise ValueError(f"salted_order must be one of {get_args(SaltedOrder)}, got {salted_order!r}")
        self.n = users
        self.seed = seed
        self.password_history = password_history or PasswordHistory()
        self.salted_order = salted_order
        if not 0.0 <= account_shapes <= 1.0:
            raise ValueError(f"account_shapes must be a share between 0 and 1, got {account_shapes}")
        # Share of users with an external account served in an older shape (see account_shape).
        self.account_shapes = account_shapes
        # The export is written a day after the last sign-up, a whole second (so either unit compares right).
        self.export_time_ms = BASE_CREATED_AT_MS + users * USER_SPACING_MS + DAY_MS
        self._changed_first: frozenset[int] | None = None  # for a count: the chosen indexes (that many ints)
        self.hasher_weights = self._normalised_weights(hasher_weights)
        self._hasher_rows = tuple((h, w) for h, w in self.hasher_weights.items() if w > 0)
        self._id_mul = ((_hash_int(seed, "user-id-mul") << 32) | 1) & _ID_MASK
        self._id_mul_inverse = pow(self._id_mul, -1, 1 << _ID_BITS)
        self._id_add = (_hash_int(seed, "user-id-add") << 30) & _ID_MASK
        self._problems_enabled = users >= PROBLEM_USERS_MIN_N
        # ``organizations``: how many instead of the default (many small ones, as a B2B tenant with an
        # organization per customer has); at most one per 10-user block, whose first user creates it
        blocks = -(-users // len(MEMBERSHIP_PATTERN))
        if organizations is not None and not 1 <= organizations <= blocks:
            raise ValueError(f"organizations must be between 1 and {blocks} (one per 10 users), got {organizations}")
        self.n_organizations = organizations or max(1, min(users // 100, MAX_ORGANIZATIONS))
        self._pattern = MEMBERSHIP_PATTERN if self.n_organizations > 1 else MEMBERSHIP_PATTERN_SINGLE_ORG
        self._pattern_prefix = [0]
        for count in self._pattern:
            self._pattern_prefix.append(self._pattern_prefix[-1] + count)
        # position within a 10-user block -> (user offset in block, k-th membership of that user)
        self._pattern_slots = [(off, k) for off, c in enumerate(self._pattern) for k in range(c)]
        self._pool: dict[tuple[str, int], tuple[str, str]] = {}
        self._member_counts: list[int] | None = None
        self._generated_profile = lru_cache(maxsize=4096)(self._build_profile)
        self.changes = ClerkChanges()  # what changed while serving (sandbox-only endpoints)
        self._updated_order: list[int] | None = None  # generated users, newest updated_at first

    # ----------------------------------------------------------------------------- ids

    @staticmethod
    def _normalised_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
        if weights is None:
            others = [h for h in CLERK_HASHERS if h != "bcrypt"]
            if "bcrypt" not in CLERK_HASHERS:
                return {h: 1 / len(CLERK_HASHERS) for h in CLERK_HASHERS}
            if not others:
                return {"bcrypt": 1.0}
            return {"bcrypt": 0.8, **{h: 0.2 / len(others) for h in others}}
        unknown = sorted(set(weights) - set(CLERK_HASHERS))
        if unknown:
            raise ValueError(f"unknown hasher(s) {unknown}; known: {list(CLERK_HASHERS)}")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("hasher weights must be non-negative and not all zero")
        total = sum(weights.values())
        return {h: w / total for h, w in weights.items()}

    def _id_tag(self, i: int) -> int:
        return _hash_int(self.seed, "user-id-tag", i) & _TAG_MASK

    def user_id(self, i: int) -> str:
        """``user_2`` + 26 base62 characters: the index and a seed check, scrambled invertibly."""
        self._check_index(i)
        scrambled = (((i << _TAG_BITS) | self._id_tag(i)) * self._id_mul + self._id_add) & _ID_MASK
        return "user_2" + _base62(scrambled, _ID_BODY_LEN)

    def index_of(self, user_id: str) -> int | None:
        """The index of a user id of this dataset, or None for anything else (O(1))."""
        if not isinstance(user_id, str) or len(user_id) != 6 + _ID_BODY_LEN:
            return None
        if not user_id.startswith("user_2"):
            return None
        value = 0
        for char in user_id[6:]:
            digit = _BASE62_INDEX.get(char)
            if digit is None:
                return None
            value = value * 62 + digit
        if value > _ID_MASK:
            return None
        plain = ((value - self._id_add) * self._id_mul_inverse) & _ID_MASK
        index, tag = plain >> _TAG_BITS, plain & _TAG_MASK
        if index >= self.n or tag != self._id_tag(index):
            return None
        return index

    def _check_index(self, i: int) -> None:
        if not 0 <= i < self.n:
            raise IndexError(f"user index {i} out of range 0..{self.n - 1}")

    def created_at(self, i: int) -> int:
        """Unix ms; strictly increasing with ``i`` (spacing 60 s, jitter below 30 s; sign-ups: when added)."""
        added = self.changes.created.get(i)
        if added is not None:
            return added
        return BASE_CREATED_AT_MS + i * USER_SPACING_MS + _hash_int(self.seed, "t", i) % 30_000

    def index_range(self, after_ms: int | None = None, before_ms: int | None = None) -> range:
        """Indexes whose ``created_at`` is strictly after/before the bounds (a binary search)."""
        everyone = range(self.n)
        lo = 0 if after_ms is None else bisect.bisect_right(everyone, after_ms, key=self.created_at)
        hi = self.n if before_ms is None else bisect.bisect_left(everyone, before_ms, key=self.created_at)
        return range(lo, max(lo, hi))

    # ----------------------------------------------------------------------------- changes (sandbox)

    def _profile(self, i: int) -> _Profile:
        profile = self._generated_profile(i)
        patch = self.changes.patches.get(i)
        return replace(profile, **patch) if patch else profile

    def add_users(self, count: int, at_ms: int | None = None) -> list[str]:
        """Sign ``count`` new users up now (the next indexes); their ids."""
        if count < 1 or self.n + count > MAX_USERS:
            raise ValueError(f"count must be at least 1 and keep the dataset under {MAX_USERS} users")
        at_ms = max(at_ms or now_ms(), self.created_at(self.n - 1) + 1)
        first = self.n
        self.n += count
        for k, i in enumerate(range(first, self.n)):
            self.changes.created[i] = at_ms + k
            self.changes.patch(i, {}, at_ms + k)
        self._member_counts = None
        return [self.user_id(i) for i in range(first, self.n)]

    def change_user(self, i: int, fields: dict[str, Any], at_ms: int | None = None, *, bump: bool = True) -> None:
        """Change first/last name or ban flag of user i, as if edited in Clerk's dashboard now."""
        self._check_index(i)
        self.changes.patch(i, fields, at_ms or now_ms(), bump=bump)

    def change_password(self, i: int, at_ms: int | None = None, *, bump: bool = True) -> None:
        """User i sets a new password now (another pool entry of the same hasher)."""
        p = self._profile(i)
        if p.password is None:
            raise ValueError(f"user {p.user_id} has no password to change")
        at_ms = at_ms or now_ms()
        hasher, slot = p.password
        self.changes.patches.setdefault(i, {})["password"] = (hasher, (slot + 1) % POOL_SIZE)
        self.changes.patches[i]["digest_exported"] = True
        self.changes.patch(i, {}, at_ms, bump=bump)
        self.changes.password_changed[i] = self.changes.last_ms

    def add_email(self, i: int, address: str, *, primary: bool = False, at_ms: int | None = None) -> None:
        """User i adds a verified email now (made primary with ``primary``): a sign-up or an edit can share
        an identity with another user, as Clerk data imported from elsewhere can."""
        p = self._profile(i)
        emails = [*p.emails, _Email(address, True, "admin", at_ms or now_ms())]
        fields: dict[str, Any] = {"emails": emails}
        if primary or p.primary_email is None:
            fields["primary_email"] = len(emails) - 1
        self.changes.patches.setdefault(i, {}).update(fields)
        self.changes.identities_changed.add(i)
        self.changes.patch(i, {}, at_ms or now_ms())

    def remove_email(self, i: int, address: str, *, at_ms: int | None = None) -> None:
        """User i removes an email now; a removed primary passes to the first email left (none: no primary)."""
        p = self._profile(i)
        kept = [e for e in p.emails if e.address.lower() != address.lower()]
        if len(kept) == len(p.emails):
            raise ValueError(f"user {self.user_id(i)} has no email {address}")
        primary = p.primary_email_address
        still = next((n for n, e in enumerate(kept) if e.address == primary), None)
        fields = {"emails": kept, "primary_email": still if still is not None else (0 if kept else None)}
        self.changes.patches.setdefault(i, {}).update(fields)
        self.changes.identities_changed.add(i)
        self.changes.patch(i, {}, at_ms or now_ms())

    def delete_user(self, i: int) -> None:
        self._check_index(i)
        self.changes.deleted.add(i)

    def updated_order(self) -> list[int]:
        """Every live user, newest ``updated_at`` first: touched users, then the generated order (sorted once)."""
        touched = self.changes.touched()
        if self._updated_order is None:
            everyone = range(self.n - len(self.changes.created))
            self._updated_order = sorted(everyone, key=lambda i: self._generated_profile(i).updated_at, reverse=True)
        first = sorted(touched, key=lambda i: touched[i], reverse=True)
        rest = [i for i in self._updated_order if i not in touched and i not in self.changes.deleted]
        return first + rest

    # ----------------------------------------------------------------------------- traits

    def _build_profile(self, i: int) -> _Profile:
        self._check_index(i)
        rng = _rng(self.seed, "user", i)
        created = self.created_at(i)
        kind = _pick(rng, KIND_WEIGHTS)[0]
        if self._problems_enabled and i in PROBLEM_USERS:
            kind = self._problem_kind(i, kind)
        p = _Profile(index=i, user_id=self.user_id(i), kind=kind, created_at=created)

        self._draw_names(p, rng)
        if kind in EMAIL_KINDS:
            self._draw_emails(p, rng)
        if kind == "phone_only" or (kind in EMAIL_KINDS and rng.random() < 0.20):
            self._draw_phones(p, rng)
        if kind == "username_only" or rng.random() < 0.25:
            first, last = _ascii_fold(p.first_name, 12), _ascii_fold(p.last_name, 12)
            style = rng.randrange(3)
            if style == 0 and first and last:
                p.username = f"{first}_{last}{i}"
            elif style == 1 and first:
                p.username = f"{first}{i}"
            else:
                p.username = f"user_{i}"
        if kind in PASSWORD_KINDS:
            p.password_enabled = True
            p.password = (_pick(rng, self._hasher_rows)[0], rng.randrange(POOL_SIZE))
            if rng.random() < 0.06:
                secret = _hash_int(self.seed, "totp", i).to_bytes(16, "big")
                p.totp_secret = base64.b32encode(secret).decode().rstrip("=")  # 26 base32 characters
                p.backup_codes = rng.random() < 0.5
        p.banned = rng.random() < 0.02
        if rng.random() < 0.01:
            p.locked, p.lockout_seconds = True, rng.randrange(60, 3601)
        p.passkey = rng.random() < 0.03
        if kind in EMAIL_KINDS and rng.random() < 0.01:
            p.web3_wallet = "0x" + f"{_hash_int(self.seed, 'wallet', i):032x}" + f"{i:08x}"
        if rng.random() < 0.10:
            p.external_id = f"ext-{_hash_int(self.seed, 'ext', i) % 10**8:08d}"
        if rng.random() < 0.30:
            p.locale = rng.choice(LOCALES)
        p.has_image = rng.random() < (0.8 if p.oauth_provider else 0.25)
        if rng.random() < 0.50:
            p.public_metadata = {"plan": rng.choice(("free", "pro", "team")), "signup_source": "web"}
        if rng.random() < 0.30:
            p.private_metadata = {"stripe_customer_id": f"cus_{_hash_int(self.seed, 'cus', i) % 10**12}"}
        if rng.random() < 0.10:
            p.unsafe_metadata = {"theme": rng.choice(("dark", "light")), "onboarded": rng.random() < 0.5}
        if rng.random() >= 0.10:
            p.last_sign_in_at = created + rng.randrange(60_000, 400 * DAY_MS)
        if rng.random() < 0.30:
            p.legal_accepted_at = created
        p.updated_at = max(created + rng.randrange(0, 30 * DAY_MS), p.last_sign_in_at or 0)
        if self._problems_enabled and i in PROBLEM_USERS:
            self._apply_problem(p)
        if self._problems_enabled and i in HOSTILE_TEXT:
            _apply_hostile_text(p, HOSTILE_TEXT[i])
        return p

    @staticmethod
    def _problem_kind(i: int, drawn: str) -> str:
        if i == WEB3_ONLY_USER:
            return "web3_only"
        if i == USERNAME_CASE_PAIR_A[1]:
            return "username_only"
        return "email_password"

    def _draw_names(self, p: _Profile, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.08:
            return
        if roll < 0.13:
            p.first_name, p.last_name = rng.choice(UNICODE_NAMES)
        elif roll < 0.133:
            p.first_name, p.last_name = LONG_FIRST_NAME, LONG_LAST_NAME
        else:
            p.first_name = rng.choice(FIRST_NAMES).capitalize()
            p.last_name = rng.choice(LAST_NAMES).capitalize()

    def _draw_emails(self, p: _Profile, rng: random.Random) -> None:
        i = p.index
        first, last = _ascii_fold(p.first_name), _ascii_fold(p.last_name)
        domain = rng.choice(EMAIL_DOMAINS)
        style = rng.randrange(5)
        if not first:
            local = f"user{i}"
        elif style == 0 and last:
            local = f"{first}.{last}{i}"
        elif style == 1 and last:
            local = f"{first[0]}{last}{i}"
        elif style == 2:
            local = f"{first}{i}"
        elif style == 3 and last:
            local = f"{last}_{first}{i}"
        else:
            local = f"{first}+{rng.choice(PLUS_TAGS)}{i}"
        if p.kind in ("oauth_only", "oauth_password"):
            provider = _pick(rng, OAUTH_PROVIDERS)[0]
            p.oauth_provider = provider
            primary = _Email(f"{local}@{domain}", True, f"from_{provider}", p.created_at - 40, provider)
        else:
            verified = rng.random() < 0.90
            if verified:
                strategy = "email_code" if rng.random() < 0.75 else "admin"
                if p.kind == "email_passwordless" and strategy == "email_code" and rng.random() < 0.5:
                    strategy = "email_link"
            else:
                strategy = "expired" if rng.random() < 0.25 else "email_code"
            primary = _Email(f"{local}@{domain}", verified, strategy, p.created_at - 40)
        p.emails = [primary]
        p.primary_email = 0
        if rng.random() < 0.12:
            extra_verified = rng.random() < 0.5
            extra = _Email(
                f"{first or 'user'}{i}.alt@{rng.choice(WORK_DOMAINS)}",
                extra_verified,
                "email_code",
                p.created_at + rng.randrange(1, 200) * DAY_MS,
            )
            if rng.random() < 0.30 and primary.linked_provider is None:
                # The user added a work address and made it primary later: primary is not first.
                extra.verified, extra.strategy = True, "email_code"
                p.emails = [primary, extra]
                p.primary_email = 1
            else:
                p.emails.append(extra)

    def _draw_phones(self, p: _Profile, rng: random.Random) -> None:
        region = _pick(rng, PHONE_REGIONS)[0]
        verified = p.kind == "phone_only" or rng.random() < 0.85
        strategy = "phone_code" if rng.random() < 0.8 else "admin"
        if not verified:
            strategy = "phone_code"
        p.phones = [_Phone(phone_number_for(region, 2 * p.index), verified, strategy, p.created_at - 30)]
        p.primary_phone = 0
        if rng.random() < 0.05:
            second_region = _pick(rng, PHONE_REGIONS)[0]
            number = phone_number_for(second_region, 2 * p.index + 1)
            p.phones.append(_Phone(number, False, "phone_code", p.created_at + DAY_MS))

    def _apply_problem(self, p: _Profile) -> None:
        """Overwrite the drawn traits of a fixed problem user (see PROBLEM_USERS)."""
        i = p.index
        if i == WEB3_ONLY_USER:
            p.first_name = p.last_name = p.username = None
            p.emails, p.primary_email, p.phones, p.primary_phone = [], None, [], None
            p.web3_wallet = "0x52908400098527886e0f7030069857d2e4169ee7"
            p.web3_primary = True
            p.password, p.password_enabled, p.totp_secret, p.oauth_provider = None, False, None, None
        elif i == SHARED_EMAIL_OWNER:
            p.first_name, p.last_name, p.username = "Alex", "Morgan", None
            p.emails = [_Email(SHARED_EMAIL, True, "email_code", p.created_at - 40)]
            p.primary_email = 0
        elif i == SHARED_EMAIL_OTHER:
            p.first_name, p.last_name, p.username = "Alexandra", "Morgan", None
            p.emails = [
                _Email(f"alexandra.morgan{i}@example.org", True, "email_code", p.created_at - 40),
                _Email(SHARED_EMAIL, True, "admin", p.created_at + 3 * DAY_MS),
            ]
            p.primary_email = 0
        elif i == FORMULA_NAME_USER:
            p.first_name, p.last_name = '=HYPERLINK("https://evil.example","click")', "Formula"
        elif i in USERNAME_CASE_PAIR_A:
            p.first_name, p.last_name = "Sam", "Taylor"
            p.username = "sam_taylor" if i == USERNAME_CASE_PAIR_A[0] else "Sam_Taylor"
            if i == USERNAME_CASE_PAIR_A[1]:
                p.emails, p.primary_email, p.phones, p.primary_phone = [], None, [], None
                p.web3_wallet, p.oauth_provider = None, None
        elif i == INVALID_PHONE_USER:
            p.phones = [_Phone(INVALID_PHONE, True, "admin", p.created_at - 30)]
            p.primary_phone = 0
        elif i in USERNAME_CASE_PAIR_B:
            p.first_name, p.last_name = "Jordan", "Lee"
            p.username = "jordan_lee" if i == USERNAME_CASE_PAIR_B[0] else "JORDAN_LEE"
        elif i == NO_DIGEST_USER:
            p.digest_exported = False
        elif i == LONG_NAME_USER:
            p.first_name, p.last_name = LONG_FIRST_NAME, LONG_LAST_NAME
        elif i == CJK_NAME_USER:
            p.first_name, p.last_name = "美咲", "佐藤"
        elif i == BANNED_USER:
            p.banned = True
        elif i == LOCKED_USER:
            p.locked, p.lockout_seconds = True, 1800

    # ----------------------------------------------------------------------------- passwords

    def _pool_entry(self, hasher: str, slot: int) -> tuple[str, str]:
        """One precomputed (plaintext, digest) pair; computed on first use, shared by many users."""
        key = (hasher, slot)
        entry = self._pool.get(key)
        if entry is None:
            rng = _rng(self.seed, "password", hasher, slot)
            word_a, word_b = rng.choice(PASSWORD_WORDS), rng.choice(PASSWORD_WORDS)
            number, symbol = rng.randrange(10, 100), rng.choice("!#$%&*?@")
            if slot == POOL_SIZE - 1:
                plaintext = f"Grüße-{word_a}{number}{symbol}"  # non-ASCII: UTF-8 handling matters
            else:
                plaintext = f"{word_a}{word_b}{number}{symbol}"
            salt = _hash_int(self.seed, "salt", hasher, slot).to_bytes(16, "big")
            digest = make_clerk_digest(hasher, plaintext, salt=salt)
            if hasher in SALTED_HASHERS and self.salted_order == "hash-first":
                salt_text, _, hash_hex = digest.rpartition("$")
                digest = f"{hash_hex}${salt_text}"  # the field order of Clerk's older spec
            entry = (plaintext, digest)
            self._pool[key] = entry
        return entry

    def password(self, i: int) -> tuple[str, str] | None:
        """(hasher, digest) as the export carries it, or None when the export has no digest."""
        p = self._profile(i)
        if p.password is None or not p.digest_exported:
            return None
        hasher, slot = p.password
        return hasher, self._pool_entry(hasher, slot)[1]

    def exported_plaintext(self, user_id: str) -> str | None:
        """The password that verifies against the user's exported digest (None: no digest)."""
        i = self.index_of(user_id)
        if i is None:
            return None
        p = self._profile(i)
        if p.password is None or not p.digest_exported:
            return None
        return self._pool_entry(*p.password)[0]

    def clerk_password(self, user_id: str) -> str | None:
        """The password the user signs in to Clerk with now, also when the export lacks its digest
        (what ``verify_password`` checks); None: the user has no password."""
        i = self.index_of(user_id)
        if i is None:
            return None
        p = self._profile(i)
        if p.password is None:
            return None
        if not p.digest_exported:
            return self._pool_entry(*p.password)[0]
        return self.plaintext(user_id)

    def plaintext(self, user_id: str) -> str | None:
        """The user's password in Clerk now: the exported one, unless it changed after the export."""
        exported = self.exported_plaintext(user_id)
        if exported is None:
            return None
        i = self.index_of(user_id)
        if i is None or i in self.changes.password_changed:
            return exported  # changed in the sandbox: the new password is the pool entry itself
        return exported + NEW_PASSWORD_SUFFIX if self.changed_after_export(i) else exported

    # ----------------------------------------------------------------------------- password history

    def changed_after_export(self, i: int) -> bool:
        """True when user i changed their password after the export was written (see PasswordHistory)."""
        p = self._profile(i)
        if p.password is None or not p.digest_exported:
            return False
        changed = self.password_history.changed_after_export
        if isinstance(changed, float):
            return _hash_int(self.seed, "changed-after-export", i) % 1_000_000 < changed * 1_000_000
        if self._changed_first is None:
            chosen: set[int] = set()
            for index in range(self.n):
                if len(chosen) >= changed:
                    break
                q = self._profile(index)
                if q.password is not None and q.digest_exported:
                    chosen.add(index)
            self._changed_first = frozenset(chosen)
        return i in self._changed_first

    def password_updated_at(self, i: int) -> int | None:
        """When user i last set a password, Unix ms; None when never changed since sign-up.

        3 in 10 password users changed it between sign-up and the export; the users of
        ``changed_after_export`` changed it 1 s to 30 days after the export.
        """
        p = self._profile(i)
        if not p.password_enabled:
            return None
        if i in self.changes.password_changed:
            return self.changes.password_changed[i]
        if self.changed_after_export(i):
            return self.export_time_ms + 1000 + _hash_int(self.seed, "changed-at", i) % (30 * DAY_MS)
        roll = _hash_int(self.seed, "password-updated", i)
        if roll % 10 < 3:
            return p.created_at + (roll >> 8) % max(1, self.export_time_ms - p.created_at)
        return None

    def _password_last_updated_json(self, i: int) -> int | None:
        """``password_last_updated_at`` as the API serves it under the chosen reading."""
        p = self._profile(i)
        if not p.password_enabled:
            return None
        changed = self.password_updated_at(i)
        reading = self.password_history.timestamps
        if reading == "null-until-changed":
            return changed
        value = p.created_at if changed is None else changed
        return value // 1000 if reading == "seconds" else value

    # ----------------------------------------------------------------------------- user JSON

    def _image_url(self, p: _Profile) -> str:
        if p.has_image:
            payload = {"type": "proxy", "src": f"https://images.clerk.dev/uploaded/img_{p.user_id[5:]}"}
        else:
            initials = "".join(n[0] for n in (p.first_name, p.last_name) if n)
            payload = {"type": "default", "iid": f"ins_{self.seed}", "rid": p.user_id, "initials": initials}
        encoded = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
        return "https://img.clerk.com/" + encoded.decode().rstrip("=")

    @staticmethod
    def _email_verification(email: _Email) -> dict[str, Any]:
        """Never null: the spec marks it nullable, but its ``oneOf`` rejects null (openapi-core
        agrees), so an unverified address carries an ``unverified`` or ``expired`` code instead."""
        if email.strategy == "expired":
            return {
                "object": "verification_otp",
                "status": "expired",
                "strategy": "email_code",
                "attempts": 0,
                "expire_at": email.created_at + 600_000,
            }
        if email.strategy == "admin":
            return {
                "object": "verification_admin",
                "status": "verified",
                "strategy": "admin",
                "attempts": None,
                "expire_at": None,
            }
        if email.strategy.startswith("from_oauth_"):
            return {
                "object": "verification_from_oauth",
                "status": "verified",
                "strategy": email.strategy,
                "attempts": None,
                "expire_at": None,
            }
        if email.strategy == "email_link":
            return {
                "object": "verification_email_link",
                "status": "verified",
                "strategy": "email_link",
                "attempts": 1,
                "expire_at": email.created_at + 600_000,
            }
        return {
            "object": "verification_otp",
            "status": "verified" if email.verified else "unverified",
            "strategy": "email_code",
            "attempts": 1 if email.verified else 0,
            "expire_at": email.created_at + 600_000,
        }

    @staticmethod
    def _phone_verification(phone: _Phone) -> dict[str, Any]:
        if phone.strategy == "admin":
            return {
                "object": "verification_admin",
                "status": "verified",
                "strategy": "admin",
                "attempts": None,
                "expire_at": None,
            }
        return {
            "object": "verification_otp",
            "status": "verified" if phone.verified else "unverified",
            "strategy": "phone_code",
            "attempts": 1 if phone.verified else 0,
            "expire_at": phone.created_at + 600_000,
        }

    def user(self, i: int) -> dict[str, Any]:
        """The full Clerk User JSON: every property of the spec's User schema except the optional
        ``organization_memberships`` (``GET /v1/users`` does not fill it in) and ``scim``."""
        p = self._profile(i)
        seed, idx = self.seed, p.index
        oauth_idn = _clerk_id("idn", seed, "oauth", idx) if p.oauth_provider else None
        email_ids = [_clerk_id("idn", seed, "email", idx, k) for k in range(len(p.emails))]
        phone_ids = [_clerk_id("idn", seed, "phone", idx, k) for k in range(len(p.phones))]
        wallet_id = _clerk_id("idn", seed, "web3", idx) if p.web3_wallet else None
        email_addresses = [
            {
                "id": email_ids[k],
                "object": "email_address",
                "email_address": e.address,
                "reserved": False,
                "verification": self._email_verification(e),
                "linked_to": [{"type": e.linked_provider, "id": oauth_idn}] if e.linked_provider else [],
                "matches_sso_connection": False,
                "created_at": e.created_at,
                "updated_at": max(e.created_at, p.created_at),
            }
            for k, e in enumerate(p.emails)
        ]
        phone_numbers = [
            {
                "id": phone_ids[k],
                "object": "phone_number",
                "phone_number": ph.number,
                "reserved_for_second_factor": False,
                "default_second_factor": False,
                "reserved": False,
                "verification": self._phone_verification(ph),
                "linked_to": [],
                "backup_codes": None,
                "created_at": ph.created_at,
                "updated_at": max(ph.created_at, p.created_at),
            }
            for k, ph in enumerate(p.phones)
        ]
        web3_wallets = []
        if p.web3_wallet:
            web3_wallets.append(
                {
                    "id": wallet_id,
                    "object": "web3_wallet",
                    "web3_wallet": p.web3_wallet,
                    "verification": {
                        "object": "verification_web3",
                        "status": "verified",
                        "strategy": "web3_metamask_signature",
                        "nonce": None,
                        "message": None,
                        "attempts": 1,
                        "expire_at": p.created_at + 600_000,
                    },
                    "created_at": p.created_at - 20,
                    "updated_at": p.created_at,
                }
            )
        passkeys = []
        if p.passkey:
            passkeys.append(
                {
                    "id": _clerk_id("idn", seed, "passkey", idx),
                    "object": "passkey",
                    "name": "iCloud Keychain",
                    "last_used_at": p.last_sign_in_at or p.created_at,
                    "verification": {
                        "object": "verification_passkey",
                        "status": "verified",
                        "strategy": "passkey",
                        "attempts": None,
                        "expire_at": None,
                    },
                }
            )
        external_accounts = []
        image_url = self._image_url(p)
        if p.oauth_provider:
            email = p.emails[0]
            external_accounts.append(
                {
                    "object": "external_account",
                    "id": _clerk_id("eac", seed, idx),
                    "provider": p.oauth_provider,
                    "identification_id": oauth_idn,
                    "provider_user_id": str(10**20 + _hash_int(seed, "provider-user", idx) % 10**20),
                    "approved_scopes": next(s for pr, _w, s in OAUTH_PROVIDERS if pr == p.oauth_provider),
                    "email_address": email.address,
                    "email_address_verified": True,
                    "first_name": p.first_name or "",
                    "last_name": p.last_name or "",
                    "image_url": image_url if p.has_image else None,
                    "username": email.address.split("@")[0] if p.oauth_provider == "oauth_github" else None,
                    "phone_number": None,
                    "public_metadata": {},
                    "label": None,
                    "created_at": email.created_at - 5,
                    "updated_at": email.created_at - 5,
                    "verification": {
                        "object": "verification_oauth",
                        "status": "verified",
                        "strategy": p.oauth_provider,
                        "attempts": None,
                        "expire_at": email.created_at + 600_000,
                    },
                }
            )
        external_accounts = [self._shaped_account(i, account) for account in external_accounts]
        mfa_at = p.created_at + DAY_MS if p.totp_secret else None
        last_active = None if p.last_sign_in_at is None else p.last_sign_in_at - p.last_sign_in_at % DAY_MS
        user = {
            "id": p.user_id,
            "object": "user",
            "external_id": p.external_id,
            "primary_email_address_id": None if p.primary_email is None else email_ids[p.primary_email],
            "primary_phone_number_id": None if p.primary_phone is None else phone_ids[p.primary_phone],
            "primary_web3_wallet_id": wallet_id if p.web3_wallet else None,
            "username": p.username,
            "first_name": p.first_name,
            "last_name": p.last_name,
            "locale": p.locale,
            "profile_image_url": image_url,
            "image_url": image_url,
            "has_image": p.has_image,
            "public_metadata": p.public_metadata,
            "private_metadata": p.private_metadata,
            "unsafe_metadata": p.unsafe_metadata,
            "email_addresses": email_addresses,
            "phone_numbers": phone_numbers,
            "web3_wallets": web3_wallets,
            "passkeys": passkeys,
            "password_enabled": p.password_enabled,
            "two_factor_enabled": p.totp_secret is not None,
            "totp_enabled": p.totp_secret is not None,
            "backup_code_enabled": p.backup_codes,
            "mfa_enabled_at": mfa_at,
            "mfa_disabled_at": None,
            "password_last_updated_at": self._password_last_updated_json(i),
            "external_accounts": external_accounts,
            "saml_accounts": [],
            "enterprise_accounts": [],
            "last_sign_in_at": p.last_sign_in_at,
            "banned": p.banned,
            "locked": p.locked,
            "deprovisioned": False,
            "lockout_expires_in_seconds": p.lockout_seconds if p.locked else None,
            "verification_attempts_remaining": 0 if p.locked else 100,
            "updated_at": p.updated_at,
            "created_at": p.created_at,
            "delete_self_enabled": True,
            "create_organization_enabled": True,
            "create_organizations_limit": None,
            "last_active_at": last_active,
            "legal_accepted_at": p.legal_accepted_at,
            "bypass_client_trust": False,
            # "scim" is left out: the spec's ``nullable`` + ``allOf`` does not admit null, and the
            # spec says the object only comes with directory-provisioned users on webhooks.
        }
        if self.password_history.timestamps == "absent":
            del user["password_last_updated_at"]
        return user

    def identifiers(self, i: int) -> dict[str, Any]:
        """Cheap lookup data for filters and sorting: every email, phone, the username, ..."""
        p = self._profile(i)
        return {
            "emails": [e.address for e in p.emails],
            "phones": [ph.number for ph in p.phones],
            "username": p.username,
            "web3_wallet": p.web3_wallet,
            "primary_email": p.primary_email_address,
            "primary_phone": p.primary_phone_number,
            "first_name": p.first_name,
            "last_name": p.last_name,
        }

    def candidate_indexes(self, value: str) -> set[int]:
        """Indexes that might own an email/username/phone ``value``: the numbers it embeds, the
        phone value it encodes, and every fixed problem user. Callers confirm each candidate."""
        found = {int(run) for run in _DIGITS.findall(value) if len(run) <= 10 and int(run) < self.n}
        phone_value = _phone_value(value)
        if phone_value is not None and phone_value // 2 < self.n:
            found.add(phone_value // 2)
        if self._problems_enabled:
            found.update(PROBLEM_USERS)
        found.update(i for i in self.changes.identities_changed if i < self.n)  # an email added while serving
        return found

    # ----------------------------------------------------------------------------- older account shapes

    def account_shape(self, i: int) -> AccountShape | None:
        """The older shape user i's external account is served in (None: the current one, or no account).

        Deterministic per (seed, index) for a share ``account_shapes`` of users; 0 (the default) keeps
        every account current, so the documented population is unchanged.
        """
        if self.account_shapes <= 0 or not self._profile(i).oauth_provider:
            return None
        if _hash_int(self.seed, "account-shape", i) % 10_000 >= self.account_shapes * 10_000:
            return None
        return ACCOUNT_SHAPES[_hash_int(self.seed, "account-shape-kind", i) % len(ACCOUNT_SHAPES)]

    def _shaped_account(self, i: int, account: dict[str, Any]) -> dict[str, Any]:
        """An ``external_account`` rewritten into the shape ``account_shape(i)`` says (Clerk's older forms)."""
        shape = self.account_shape(i)
        if shape is None:
            return account
        name = account["provider"].removeprefix("oauth_")
        if shape == "bare":
            return {**account, "provider": name}
        if shape == "unknown":  # an entry naming no provider at all: the migrator can only name it
            return {key: value for key, value in account.items() if key != "provider"}
        legacy = {
            "object": f"{name}_account",
            "id": account["identification_id"],
            f"{name}_id": account["provider_user_id"],
            "approved_scopes": account["approved_scopes"],
            "email_address": account["email_address"],
            "given_name": account["first_name"],
            "family_name": account["last_name"],
            "picture": account["image_url"] or "",
            "public_metadata": {},
            "verification": account["verification"],
        }
        if shape == "legacy_bare":  # Clerk's backend fixtures: a legacy object with a bare provider name
            legacy |= {"provider": name, "provider_user_id": legacy.pop(f"{name}_id")}
        if shape == "no_identity":  # nothing Kinde could match a sign-in on: named, never carried
            legacy.pop(f"{name}_id")
            legacy["email_address"] = None
        return legacy

    # ----------------------------------------------------------------------------- JSON export

    def export_json_user(self, i: int, shape: JsonExportShape = "list") -> dict[str, Any]:
        """User i as Clerk's JSON export has it: ``list`` (clerk/migration-tool's sample: lists and primary
        fields) or ``joined`` (WorkOS's example: emails and phones joined by ``|``, no primary fields)."""
        p = self._profile(i)
        secret = self.password(i)
        emails = [e.address for e in p.emails]
        phones = [ph.number for ph in p.phones]
        user: dict[str, Any] = {"id": p.user_id, "first_name": p.first_name, "last_name": p.last_name}
        user["username"] = p.username
        if shape == "joined":
            user |= {"email_addresses": "|".join(emails), "phone_numbers": "|".join(phones)}
        else:
            user |= {
                "primary_email_address": p.primary_email_address,
                "email_addresses": emails,
                "primary_phone_number": p.primary_phone_number,
                "phone_numbers": phones or None,
            }
        user |= {
            "password_digest": secret[1] if secret else None,
            "password_hasher": secret[0] if secret else None,
            "totp_secret": p.totp_secret,
            "backup_codes_enabled": False,
            "public_metadata": {},
            "private_metadata": {},
            "unsafe_metadata": {},
        }
        return user

    def write_export_json(self, path: str | Path, shape: JsonExportShape | Literal["ndjson"] = "list") -> int:
        """Clerk's JSON export, one user at a time: a JSON array (``list``/``joined``), or one user per line
        (``ndjson``, the list shape). Its modification time is ``export_time_ms``, as the CSV's."""
        with open(path, "w", encoding="utf-8") as handle:
            if shape == "ndjson":
                for i in range(self.n):
                    handle.write(json.dumps(self.export_json_user(i), ensure_ascii=False) + "\n")
            else:
                handle.write("[\n")
                for i in range(self.n):
                    text = json.dumps(self.export_json_user(i, shape), ensure_ascii=False, indent=2)
                    handle.write(text + (",\n" if i < self.n - 1 else "\n"))
                handle.write("]\n")
        export_ns = self.export_time_ms * 1_000_000
        os.utime(path, ns=(export_ns, export_ns))
        return self.n

    # ----------------------------------------------------------------------------- CSV export

    def export_row(self, i: int) -> dict[str, str]:
        """The 13 dashboard CSV cells of user i, raw: TAB-guarded, multi-value cells joined by ``|``."""
        p = self._profile(i)
        verified_emails = [e.address for e in p.emails if e.verified]
        unverified_emails = [e.address for e in p.emails if not e.verified]
        verified_phones = [ph.number for ph in p.phones if ph.verified]
        unverified_phones = [ph.number for ph in p.phones if not ph.verified]
        secret = self.password(i)
        cells = {
            "id": p.user_id,
            "first_name": p.first_name or "",
            "last_name": p.last_name or "",
            "username": p.username or "",
            "primary_email_address": p.primary_email_address or "",
            "primary_phone_number": p.primary_phone_number or "",
            "verified_email_addresses": MULTI_VALUE_SEPARATOR.join(verified_emails),
            "unverified_email_addresses": MULTI_VALUE_SEPARATOR.join(unverified_emails),
            "verified_phone_numbers": MULTI_VALUE_SEPARATOR.join(verified_phones),
            "unverified_phone_numbers": MULTI_VALUE_SEPARATOR.join(unverified_phones),
            "totp_secret": p.totp_secret or "",
            "password_digest": secret[1] if secret else "",
            "password_hasher": secret[0] if secret else "",
        }
        return {column: formula_guard(cells[column]) for column in EXPORT_COLUMNS}

    def write_export_csv(self, path: str | Path) -> int:
        """Write the dashboard export (header in Clerk's order), one user at a time; rows written.

        The file's modification time is set to ``export_time_ms``: the time the migrator reads as
        the export's by default, which ``password_last_updated_at`` values are placed around.
        """
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
            writer.writeheader()
            for i in range(self.n):
                writer.writerow(self.export_row(i))
        export_ns = self.export_time_ms * 1_000_000
        os.utime(path, ns=(export_ns, export_ns))
        return self.n

    # ----------------------------------------------------------------------------- expectations

    def expected(self, i: int) -> dict[str, Any]:
        """What a correct migration produces for user i under the default settings (module doc)."""
        p = self._profile(i)
        primary_email = None if p.primary_email is None else p.emails[p.primary_email]
        phone = p.primary_phone_number
        if self._problems_enabled and i == INVALID_PHONE_USER:
            phone = None
        username = p.username
        email = primary_email.address if primary_email else None
        skip_reason = None
        if self._problems_enabled and i in (USERNAME_CASE_PAIR_A[1], USERNAME_CASE_PAIR_B[1]):
            skip_reason = "duplicate_username"
        elif not (email or phone or username):
            skip_reason = "no_identifier"
        hasher = self.password(i)
        if skip_reason is not None:
            return {
                "eligible": False,
                "skip_reason": skip_reason,
                "email": None,
                "email_verified": None,
                "username": None,
                "phone": None,
                "hasher": None,
                "banned": p.banned,
            }
        return {
            "eligible": True,
            "skip_reason": None,
            "email": email,
            "email_verified": primary_email.verified if primary_email else None,
            "username": username,
            "phone": phone,
            "hasher": hasher[0] if hasher else None,
            "banned": p.banned,
        }

    # ----------------------------------------------------------------------------- organizations

    def roles(self) -> list[dict[str, Any]]:
        """Clerk Role objects: the two defaults and three custom roles, permissions as objects."""
        created = BASE_CREATED_AT_MS - 30 * DAY_MS
        permissions = {key: self._permission(key, created) for key in SYSTEM_PERMISSIONS + CUSTOM_PERMISSIONS}
        return [
            {
                "object": "role",
                "id": _clerk_id("role", self.seed, key),
                "name": name,
                "key": key,
                "description": description,
                "is_creator_eligible": key == "org:admin",
                "permissions": [permissions[k] for k in keys],
                "created_at": created + k * 1000,
                "updated_at": created + k * 1000,
            }
            for k, (key, name, description, keys, _share) in enumerate(ROLE_DEFINITIONS)
        ]

    def _permission(self, key: str, created: int) -> dict[str, Any]:
        words = key.split(":")[1:]
        return {
            "object": "permission",
            "id": _clerk_id("perm", self.seed, key),
            "name": " ".join(words).replace("sys_", "").replace("_", " ").capitalize(),
            "key": key,
            "description": f"Permission {key}",
            "type": "system" if key.startswith("org:sys_") else "user",
            "created_at": created,
            "updated_at": created,
        }

    def organization_creator(self, j: int) -> int:
        """Index of the user who created organization j (its first admin)."""
        return 10 * j

    def organization(self, j: int) -> dict[str, Any]:
        """Clerk Organization JSON of organization j (0 <= j < n_organizations)."""
        if not 0 <= j < self.n_organizations:
            raise IndexError(f"organization index {j} out of range")
        rng = _rng(self.seed, "org", j)
        base = ORG_NAMES[j % len(ORG_NAMES)]
        name = base if j < len(ORG_NAMES) else f"{base} {j // len(ORG_NAMES) + 1}"
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
        slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-") or "org"
        created = self.created_at(self.organization_creator(j)) + 5_000
        has_image = rng.random() < 0.3
        return {
            "object": "organization",
            "id": _clerk_id("org", self.seed, j),
            "name": name,
            "slug": f"{slug}-{j}",
            "image_url": f"https://img.clerk.com/org-{j}" if has_image else "https://img.clerk.com/default",
            "has_image": has_image,
            "pending_invitations_count": rng.randrange(3),
            "max_allowed_memberships": rng.choice((0, 0, 5, 100)),
            "admin_delete_enabled": True,
            "public_metadata": {"tier": rng.choice(("startup", "enterprise"))} if rng.random() < 0.4 else {},
            "private_metadata": {"crm_id": f"crm-{j}"} if rng.random() < 0.3 else {},
            "created_by": self.user_id(self.organization_creator(j)),
            "created_at": created,
            "updated_at": created + rng.randrange(0, 30 * DAY_MS),
            "last_active_at": created + rng.randrange(0, 300) * DAY_MS,
            "role_set_key": None,
        }

    def organizations(self) -> list[dict[str, Any]]:
        """Every organization, oldest first."""
        return [self.organization(j) for j in range(self.n_organizations)]

    @property
    def membership_count(self) -> int:
        """Total memberships, from the 10-user pattern (no iteration)."""
        blocks, rest = divmod(self.n, len(self._pattern))
        return blocks * self._pattern_prefix[-1] + self._pattern_prefix[rest]

    def _membership_slot(self, position: int) -> tuple[int, int]:
        """(user index, k-th membership of that user) of the membership at ``position``."""
        block, within = divmod(position, self._pattern_prefix[-1])
        offset, k = self._pattern_slots[within]
        return block * len(self._pattern) + offset, k

    def _membership_org(self, i: int, k: int) -> int:
        home = (i // len(self._pattern)) % self.n_organizations
        if k == 0:
            return home
        step = 1 + _hash_int(self.seed, "second-org", i) % (self.n_organizations - 1)
        return (home + step) % self.n_organizations

    def _membership_role(self, i: int, k: int, org: int) -> tuple[str, str, tuple[str, ...]]:
        if k == 0 and i == self.organization_creator(org):
            key, name, _d, perms, _s = ROLE_DEFINITIONS[0]
            return key, name, perms
        key, name, _d, perms, _s = _pick(_rng(self.seed, "role", i, k), _ROLE_ROWS)[0]
        return key, name, perms

    def membership(self, position: int) -> dict[str, Any]:
        """Clerk OrganizationMembership JSON; ``created_at`` grows strictly with ``position``."""
        if not 0 <= position < self.membership_count:
            raise IndexError(f"membership position {position} out of range")
        i, k = self._membership_slot(position)
        org = self._membership_org(i, k)
        role, role_name, permissions = self._membership_role(i, k, org)
        p = self._profile(i)
        created = p.created_at + 40_000 + k * 1000
        image_url = self._image_url(p)
        identifier = p.primary_email_address or p.primary_phone_number or p.username or p.web3_wallet
        return {
            "object": "organization_membership",
            "id": _clerk_id("orgmem", self.seed, i, k),
            "role": role,
            "role_name": role_name,
            "permissions": list(permissions),
            "public_metadata": {},
            "private_metadata": {},
            "organization": self.organization(org),
            "public_user_data": {
                "user_id": p.user_id,
                "first_name": p.first_name,
                "last_name": p.last_name,
                "profile_image_url": image_url,
                "image_url": image_url,
                "has_image": p.has_image,
                "identifier": identifier,
                "username": p.username,
                "banned": p.banned,
                "deprovisioned": False,
            },
            "created_at": created,
            "updated_at": created,
        }

    def memberships(self) -> Iterator[dict[str, Any]]:
        """Every membership, oldest first, computed one at a time."""
        for position in range(self.membership_count):
            yield self.membership(position)

    def organization_member_counts(self) -> list[int]:
        """Members per organization (for ``include_members_count``); one pass, then cached."""
        if self._member_counts is None:
            counts = [0] * self.n_organizations
            for position in range(self.membership_count):
                counts[self._membership_org(*self._membership_slot(position))] += 1
            self._member_counts = counts
        return self._member_counts
