"""Pure shapes of Kinde's import files, which file carries a user, and the size-limited parts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from migrator import passwords
from migrator.errors import InputError
from migrator.file_parts import FileParts
from migrator.kinde.import_files import (
    FileFormat,
    OrgRoles,
    Target,
    csv_rows,
    fusionauth_record,
    ndjson_record,
    place,
)
from migrator.models import Identity, PasswordImport, UserPlan

BCRYPT_2B = "$2b$10$" + "a" * 53
PBKDF2 = "pbkdf2_sha256$1000$c2FsdHNhbHQ=$" + "A" * 43 + "="


def plan(*identities: Identity, **extra: object) -> UserPlan:
    return UserPlan(clerk_id="user_1", identities=identities or (Identity("email", "a@b.co", True),), **extra)  # type: ignore[arg-type]


def translated(hasher: str, digest: str) -> PasswordImport:
    result = passwords.translate(hasher, digest)
    assert isinstance(result, PasswordImport)
    return result


def test_bcrypt_goes_to_the_custom_file_as_2a() -> None:
    password = translated("bcrypt", BCRYPT_2B)
    assert place(plan(), password, FileFormat.KINDE_NDJSON).target == Target.KINDE_NDJSON
    record = ndjson_record(plan(), password, [OrgRoles("org_1", ("admin",))])
    assert record["password"] == {"hashed_password": "$2a$" + BCRYPT_2B[4:], "hashing_algorithm": "bcrypt"}
    assert record["organizations"] == [{"external_id": "org_1", "roles": ["admin"]}]
    assert record["identities"] == [{"type": "email", "identity": "a@b.co", "is_verified": True}]


def test_pbkdf2_goes_to_fusionauth_with_its_variant_and_factor() -> None:
    password = translated("pbkdf2_sha256", PBKDF2)
    assert place(plan(), password, FileFormat.KINDE_CSV).target == Target.FUSIONAUTH
    record = fusionauth_record(plan(), password)
    assert (record["encryption_scheme"], record["factor"], record["verified"]) == (
        "salted-pbkdf2-hmac-sha256",
        1000,
        True,
    )


@pytest.mark.parametrize(
    ("user", "fmt", "reason"),
    [
        (plan(suspended=True), FileFormat.KINDE_NDJSON, "cannot suspend"),
        (plan(request_password_reset=True), FileFormat.KINDE_NDJSON, "reset request"),
        (plan(Identity("phone", "+15555550100", True)), FileFormat.KINDE_CSV, "requires one"),
        (plan(Identity("email", "a@b.co"), Identity("email", "c@d.co")), FileFormat.KINDE_CSV, "kinde-ndjson"),
        (plan(properties={"k": "v"}), FileFormat.KINDE_CSV, "properties"),
    ],
)
def test_what_no_file_carries_is_routed_to_the_api_with_a_reason(user: UserPlan, fmt: FileFormat, reason: str) -> None:
    placement = place(user, None, fmt)
    assert placement.target == Target.API and placement.reason and reason in placement.reason


def test_phone_only_and_properties_fit_ndjson() -> None:
    user = plan(Identity("phone", "+15555550100", True), properties={"k": "v"})
    assert place(user, None, FileFormat.KINDE_NDJSON).target == Target.KINDE_NDJSON


def test_csv_has_one_row_per_organization_with_both_role_headers() -> None:
    rows = csv_rows(plan(given_name="Ann"), None, [OrgRoles("org_1", ("a", "b")), OrgRoles("org_2", ("c",))])
    assert [(r["external_organization_id"], r["role_key"], r["roles"]) for r in rows] == [
        ("org_1", "a,b", "a,b"),
        ("org_2", "c", "c"),
    ]
    assert all(r["email_verified"] == "TRUE" and r["first_name"] == "Ann" for r in rows)


def test_parts_stay_under_the_limit_repeat_the_header_and_are_owner_only(tmp_path: Path) -> None:
    parts = FileParts(tmp_path, "users", "csv", max_bytes=30, header=b"h\n")
    for n in range(10):
        parts.write(f"row{n:05d}\n".encode())
    parts.close()
    assert [p.users for p in parts.parts] == [3, 3, 3, 1]
    for part in parts.parts:
        path = tmp_path / part.name
        assert path.read_bytes().startswith(b"h\n") and path.stat().st_size == part.bytes <= 30
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(InputError, match="larger than the file size limit"):
        parts.write(b"x" * 40)
