"""Sandbox only: Kinde's dashboard import (Users > Import users; Organizations > Import), emulated.

``POST /_sandbox/import?format=kinde-ndjson|kinde-csv|fusionauth|organizations`` with the file as
the body ingests it the way ../shared/reference/kinde-management-api.md §8-9 says Kinde does:
``id`` becomes ``provided_id``; a record whose id or email is already in the business is skipped
as a duplicate (a later CSV row for a user this same file created only adds its organization);
an unknown organization or role is not assigned (and listed); ``$2b$`` is read as ``$2a$``; salt
rules per method. Imported passwords are stored as the body ``PUT /password`` would have been,
so ``/_sandbox/sign-in`` verifies them with the same code.

Readings the docs leave open are switches on ``KindeSandboxConfig``: ``import_role_header``
(``role_key`` or ``roles``), ``import_csv_requires`` (``email`` or ``email-or-phone``),
``import_password_verified`` (the CSV's ``password_verified`` column, or ``email_verified``, spares
the one-time code at first sign-in), ``import_ndjson_verified`` (an NDJSON password needs a verified
email identity, or not), ``import_ndjson_schema`` (the removed top-level ``email`` ignored, or read).
``oauth2:*`` identities are linked to the business's connection of their provider
(``import_connections``); a provider without one is listed as unassigned.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from migrator.sandbox.hashing import KINDE_PBKDF2_VARIANTS, validate_kinde_password_body

CUSTOM_METHODS = ("crypt", "bcrypt", "sha256", "md5", "wordpress")
SALT_POSITION_NEEDED = ("md5", "sha256")


class Rejected(Exception):
    """One record refused, with the reason the dashboard's error list would show."""


class Store(Protocol):
    """What the import needs of the emulator's store (kinde_app.KindeStore)."""

    def import_user(self, fields: Mapping[str, Any]) -> str: ...
    def user_id_by_provided_id(self, provided_id: str) -> str | None: ...
    def identity_taken(self, identity_type: str, value: str) -> bool: ...
    def organization_by_external_id(self, external_id: str) -> str | None: ...
    def role_exists(self, key: str) -> bool: ...
    def add_member(self, org_code: str, user_id: str, roles: list[str]) -> None: ...
    def import_organization(self, name: str, external_id: str) -> bool: ...


@dataclass
class ImportReport:
    imported: int = 0
    duplicates: list[str] = field(default_factory=list)  # record ids (or line numbers) skipped
    errors: list[dict[str, Any]] = field(default_factory=list)  # {"line", "id", "reason"}
    unassigned: list[dict[str, str]] = field(default_factory=list)  # {"id", "what", "key"}

    def to_json(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "duplicates": self.duplicates,
            "errors": self.errors,
            "unassigned": self.unassigned,
        }


@dataclass
class Importer:
    store: Store
    role_header: str = "role_key"
    csv_requires: str = "email"
    password_verified: str = "column"
    ndjson_verified: str = "identity"
    ndjson_schema: str = "current"
    connections: Mapping[str, str] = field(default_factory=dict)  # oauth2 provider -> connection id
    report: ImportReport = field(default_factory=ImportReport)
    created_here: dict[str, str] = field(default_factory=dict)  # provided id -> user id, this file only

    def ingest(self, kind: str, raw: bytes) -> ImportReport:
        handlers: dict[str, Callable[[bytes], None]] = {
            "kinde-ndjson": self._ndjson(self._custom_record),
            "fusionauth": self._ndjson(self._fusionauth_record),
            "kinde-csv": self._csv_users,
            "organizations": self._organizations,
        }
        if kind not in handlers:
            raise Rejected(f"unknown import format {kind!r}; one of: {', '.join(handlers)}")
        handlers[kind](raw)
        return self.report

    # ---- file shapes ---------------------------------------------------------------------

    def _ndjson(self, one: Callable[[dict[str, Any]], None]) -> Callable[[bytes], None]:
        def ingest(raw: bytes) -> None:
            for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise Rejected("a line must be a JSON object")
                    one(record)
                except (Rejected, ValueError) as exc:
                    self.report.errors.append({"line": number, "reason": str(exc)})

        return ingest

    def _csv_users(self, raw: bytes) -> None:
        for number, row in _csv_rows(raw):
            try:
                self._csv_row(row)
            except Rejected as exc:
                self.report.errors.append({"line": number, "id": row.get("id"), "reason": str(exc)})

    def _organizations(self, raw: bytes) -> None:
        for number, row in _csv_rows(raw):
            name, external_id = (row.get("name") or "").strip(), (row.get("id") or "").strip()
            if not name or not external_id:
                self.report.errors.append({"line": number, "reason": "name and id are required"})
            elif self.store.import_organization(name, external_id):
                self.report.imported += 1
            else:
                self.report.duplicates.append(external_id)

    # ---- records -------------------------------------------------------------------------

    def _custom_record(self, record: dict[str, Any]) -> None:
        listed = [i for i in record.get("identities") or [] if isinstance(i, dict)]
        identities: list[tuple[Any, ...]] = [
            (i.get("type"), i.get("identity"), i.get("is_verified") is True)
            for i in listed
            if i.get("type") in ("email", "phone", "username")
        ]
        legacy = self.ndjson_schema == "legacy" and record.get("email")
        if legacy and not any(t == "email" for t, *_ in identities):
            identities.insert(0, ("email", record["email"], bool(record.get("email_verified"))))
        identities += self._social(_text(record.get("id")) or "", listed)
        password = record.get("password")
        verified_email = any(t == "email" and verified for t, _, verified, *_ in identities)
        fields = {
            "provided_id": _text(record.get("id")),
            "given_name": _text(record.get("first_name")),
            "family_name": _text(record.get("last_name")),
            "identities": identities,
            "properties": {p["key"]: p["value"] for p in record.get("properties") or [] if isinstance(p, dict)},
            "password": _custom_password(password, "hashing_algorithm") if isinstance(password, dict) else None,
            "one_time_code": isinstance(password, dict) and self.ndjson_verified == "identity" and not verified_email,
        }
        orgs = [(o.get("external_id"), list(o.get("roles") or [])) for o in record.get("organizations") or []]
        self._create(fields, orgs)

    def _social(self, label: str, listed: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """``oauth2:*`` identities on the business's connection of their provider (none: not linked)."""
        found: list[tuple[Any, ...]] = []
        for item in listed:
            kind = item.get("type")
            if not (isinstance(kind, str) and kind.startswith("oauth2:")) or not _text(item.get("identity")):
                continue
            provider = _text(item.get("provider")) or kind.removeprefix("oauth2:")
            connection = self.connections.get(provider)
            if connection is None:
                self.report.unassigned.append({"id": label, "what": "connection", "key": kind})
                continue
            found.append(("social", item["identity"], item.get("is_verified") is True, connection))
        return found

    def _fusionauth_record(self, record: dict[str, Any]) -> None:
        def get(snake: str, camel: str | None = None) -> Any:
            return record.get(snake, record.get(camel)) if camel else record.get(snake)

        verified = bool(get("verified"))
        identities = [
            (kind, value, verified and kind != "username")
            for kind, value in (("email", get("email")), ("username", get("username")),
                                ("phone", get("mobile_phone", "mobilePhone")))
            if value
        ]  # fmt: skip
        scheme, password = get("encryption_scheme", "encryptionScheme"), get("password")
        fields: dict[str, Any] = {
            "provided_id": _text(get("id")),
            "given_name": _text(get("first_name", "firstName")),
            "family_name": _text(get("last_name", "lastName")),
            "identities": identities,
        }
        if scheme in KINDE_PBKDF2_VARIANTS and password:
            iterations = get("factor", "iterations")
            fields["password"] = _checked(
                {"hashed_password": password, "hashing_method": "pbkdf2", "salt": get("salt"),
                 "iterations": iterations, "variant": scheme}
            )  # fmt: skip
        elif scheme == "bcrypt" and password:
            fields["password"] = _checked({"hashed_password": _bcrypt_2a(password), "hashing_method": "bcrypt"})
        elif password:
            fields["reset"] = True  # FusionAuth doc: unsupported schemes import, then reset at first sign-in
        self._create(fields, [])

    def _csv_row(self, row: dict[str, str]) -> None:
        provided_id = _text(row.get("id"))
        email, phone, username = _text(row.get("email")), _text(row.get("phone")), _text(row.get("username"))
        orgs = [(org, _split(row.get(self.role_header))) for org in _split(row.get("external_organization_id"))]
        if provided_id and (provided_id in self.created_here or not (email or phone or username)):
            self._assign_existing(provided_id, orgs)  # a later row of this file, or the second-file form
            return
        if not email and (self.csv_requires == "email" or not phone):
            raise Rejected("email is required" if self.csv_requires == "email" else "email or phone is required")
        identities = [
            (kind, value, _csv_flag(row.get(flag)))
            for kind, value, flag in (("email", email, "email_verified"), ("phone", phone, "phone_verified"),
                                      ("username", username, ""))
            if value
        ]  # fmt: skip
        password = _custom_password(row, "hashing_method") if _text(row.get("hashed_password")) else None
        flag = "password_verified" if self.password_verified == "column" else "email_verified"
        fields = {
            "provided_id": provided_id,
            "given_name": _text(row.get("first_name")),
            "family_name": _text(row.get("last_name")),
            "identities": identities,
            "password": password,
            "one_time_code": password is not None and not _csv_flag(row.get(flag)),
        }
        self._create(fields, orgs)

    # ---- into the store ------------------------------------------------------------------

    def _create(self, fields: dict[str, Any], orgs: list[tuple[Any, list[str]]]) -> None:
        provided_id = fields.get("provided_id")
        if not fields["identities"]:
            raise Rejected("no email, phone or username")
        taken = provided_id and self.store.user_id_by_provided_id(provided_id)
        if taken or any(self.store.identity_taken(t, v) for t, v, *_ in fields["identities"] if t != "social"):
            self.report.duplicates.append(provided_id or fields["identities"][0][1])
            return
        user_id = self.store.import_user(fields)
        if provided_id:
            self.created_here[provided_id] = user_id
        self.report.imported += 1
        self._assign(user_id, provided_id or user_id, orgs)

    def _assign_existing(self, provided_id: str, orgs: list[tuple[Any, list[str]]]) -> None:
        user_id = self.created_here.get(provided_id) or self.store.user_id_by_provided_id(provided_id)
        if user_id is None:
            raise Rejected(f"no user with id {provided_id} to assign organizations to")
        self._assign(user_id, provided_id, orgs)

    def _assign(self, user_id: str, label: str, orgs: list[tuple[Any, list[str]]]) -> None:
        for external_id, roles in orgs:
            code = self.store.organization_by_external_id(external_id) if isinstance(external_id, str) else None
            if code is None:
                self.report.unassigned.append({"id": label, "what": "organization", "key": str(external_id)})
                continue
            known = [key for key in roles if self.store.role_exists(key)]
            for key in roles:
                if key not in known:
                    self.report.unassigned.append({"id": label, "what": "role", "key": key})
            self.store.add_member(code, user_id, known)


def _custom_password(source: Mapping[str, Any], method_key: str) -> dict[str, Any]:
    """A Custom CSV/NDJSON password as the ``PUT /password`` body it stands for, after the salt rules."""
    method = _text(source.get(method_key)) or "bcrypt"
    hashed = _text(source.get("hashed_password")) or ""
    if method not in CUSTOM_METHODS:
        raise Rejected(f"hashing method {method!r} is not supported by this import")
    salt = _text(source.get("salt"))
    position = _text(source.get("salt_position"))
    if salt and method == "bcrypt":
        raise Rejected("bcrypt takes no salt")
    if salt and method in SALT_POSITION_NEEDED and position not in ("prefix", "suffix"):
        raise Rejected(f"salt_position is required when a salt is given for {method}")
    if salt and (_text(source.get("salt_format")) or "string") == "hex":
        try:
            salt = bytes.fromhex(salt).decode("utf-8")
        except ValueError:
            raise Rejected("salt_format is hex but the salt is not hexadecimal UTF-8") from None
    body: dict[str, Any] = {"hashed_password": _bcrypt_2a(hashed) if method == "bcrypt" else hashed}
    body["hashing_method"] = method
    if salt:
        body["salt"] = salt
        if position in ("prefix", "suffix"):
            body["salt_position"] = position
    return _checked(body)


def _checked(body: dict[str, Any]) -> dict[str, Any]:
    problem = validate_kinde_password_body(body)
    if problem:
        raise Rejected(problem)
    return body


def _bcrypt_2a(hashed: str) -> str:
    """Kinde's docs: a ``$2b$`` hash is read as ``$2a$``."""
    return "$2a$" + hashed[4:] if hashed.startswith("$2b$") else hashed


def _csv_rows(raw: bytes) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))
    for row in reader:
        if any((value or "").strip() for value in row.values() if isinstance(value, str)):
            yield reader.line_num, row


def _split(cell: str | None) -> list[str]:
    return [part.strip() for part in (cell or "").split(",") if part.strip()]


def _csv_flag(cell: str | None) -> bool:
    return (cell or "").strip().upper() == "TRUE"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
