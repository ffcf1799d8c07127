"""Pure shapes of Kinde's import files, which file carries a user, and the size-limited parts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from migrator import passwords
from migrator.errors import InputError
from migrator.file_parts import FileParts
from migrator.kinde.import_files import (
    CSV_COLUMNS,
    FileFormat,
    OrgRoles,
    Target,
    csv_rows,
    fusionauth_record,
    ndjson_record,
    oauth2_provider,
    place,
)
from migrator.models import Identity, PasswordImport, SocialIdentity, UserPlan

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
    assert "email" not in record and "email_verified" not in record  # the removed schema's top-level fields


GOOGLE = SocialIdentity("oauth_google", "conn_g", "a@gmail.com")
GITHUB = SocialIdentity("oauth_github", "conn_h", "4567")


def test_mapped_social_accounts_are_oauth2_identities_of_the_ndjson() -> None:
    user = plan(social=(GOOGLE, GITHUB))
    assert place(user, None, FileFormat.KINDE_NDJSON).target == Target.KINDE_NDJSON
    assert ndjson_record(user, None, [])["identities"][1:] == [
        {"type": "oauth2:google", "identity": "a@gmail.com", "provider": "google", "is_verified": True},
        {"type": "oauth2:github", "identity": "4567", "provider": "github", "is_verified": True},
    ]


@pytest.mark.parametrize(
    ("provider", "expected"),
    [("oauth_google", "google"), ("google", "google"), ("oauth_linkedin_oidc", "linkedin"), ("oauth_x", "twitter"),
     ("oauth_microsoft", "microsoft"), ("oauth_custom_okta", None), ("oauth_notion", None)],
)  # fmt: skip
def test_kinde_provider_of_a_clerk_provider(provider: str, expected: str | None) -> None:
    assert oauth2_provider(SocialIdentity(provider, "conn_1", "v")) == expected


@pytest.mark.parametrize(
    ("fmt", "password", "reason"),
    [
        (FileFormat.KINDE_CSV, None, "social identities (oauth_github, oauth_google) are not carried by the Custom CSV"),
        (FileFormat.KINDE_NDJSON, PBKDF2, "social identities (oauth_github, oauth_google) are not carried by a FusionAuth"),
    ],
)  # fmt: skip
def test_files_without_social_identities_send_their_users_to_the_api(
    fmt: FileFormat, password: str | None, reason: str
) -> None:
    translated_password = translated("pbkdf2_sha256", password) if password else None
    placement = place(plan(social=(GOOGLE, GITHUB)), translated_password, fmt)
    assert placement.target == Target.API and placement.reason and reason in placement.reason


def test_a_provider_without_an_oauth2_type_sends_its_user_to_the_api() -> None:
    user = plan(social=(GOOGLE, SocialIdentity("oauth_custom_okta", "conn_o", "o@x.co")))
    placement = place(user, None, FileFormat.KINDE_NDJSON)
    assert placement.target == Target.API
    assert placement.reason == "social identities of oauth_custom_okta: the Custom NDJSON has no oauth2 type for them"


def test_csv_marks_imported_passwords_verified_and_only_those() -> None:
    [with_password] = csv_rows(plan(), translated("bcrypt", BCRYPT_2B), [])
    [without] = csv_rows(plan(), None, [])
    assert (with_password["password_verified"], without["password_verified"]) == ("TRUE", "")
    assert set(with_password) <= set(CSV_COLUMNS)


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
