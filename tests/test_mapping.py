"""The pure mapping from Clerk users (API JSON + export row) to Kinde plans, rule by rule."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator import mapping, passwords
from migrator.mapping import (
    NO_DIGEST_REASON,
    STALE_DIGEST_REASON,
    MappingOptions,
    ParsedPhone,
    PropertySpec,
    all_identity_keys,
    email_problem,
    identity_keys,
    kinde_permission_key,
    kinde_role_key,
    mfa_enrolled,
    organization_body,
    parse_phone,
    plan_membership,
    plan_user,
    property_text,
    role_body,
    role_permissions,
    social_identities,
)
from migrator.models import (
    ExportRow,
    Identity,
    Membership,
    PasswordImport,
    PasswordUnimportable,
    Skip,
    UserPlan,
)

USER_ID = "user_2yE06IFCFf4o90ue0Z6PYeWvgGv"
BCRYPT = "$2b$10$U4C0ZY8OG8y41F9LusfKyu3HRMBL0rCZcKBVsXhgr.n8Ou6FPhzO2"
DEFAULT = MappingOptions()


def verification(status: str | None) -> dict[str, Any] | None:
    if status is None:
        return None
    return {"status": status, "strategy": "email_code", "attempts": None, "expire_at": None}


def email(ident: str, address: str, status: str | None = "verified") -> dict[str, Any]:
    return {
        "id": ident,
        "object": "email_address",
        "email_address": address,
        "reserved": False,
        "verification": verification(status),
        "linked_to": [],
    }


def phone(ident: str, number: str, status: str | None = "verified") -> dict[str, Any]:
    return {
        "id": ident,
        "object": "phone_number",
        "phone_number": number,
        "reserved_for_second_factor": False,
        "verification": verification(status),
    }


def clerk_user(**overrides: Any) -> dict[str, Any]:
    """A Clerk API user shaped like the example in the notes; overrides replace keys."""
    user: dict[str, Any] = {
        "id": USER_ID,
        "object": "user",
        "external_id": None,
        "primary_email_address_id": "idn_primary",
        "primary_phone_number_id": None,
        "primary_web3_wallet_id": None,
        "username": None,
        "first_name": "Jane",
        "last_name": "Doe",
        "image_url": "https://img.clerk.com/jane",
        "has_image": True,
        "public_metadata": {},
        "private_metadata": {},
        "unsafe_metadata": {},
        "email_addresses": [email("idn_primary", "jane@example.com")],
        "phone_numbers": [],
        "web3_wallets": [],
        "passkeys": [],
        "external_accounts": [],
        "password_enabled": False,
        "two_factor_enabled": False,
        "totp_enabled": False,
        "backup_code_enabled": False,
        "banned": False,
        "locked": False,
        "created_at": 1749384248799,
        "updated_at": 1749384259895,
    }
    user.update(overrides)
    return user


def export_row(hasher: str | None = "bcrypt", digest: str | None = BCRYPT, user_id: str = USER_ID) -> ExportRow:
    return ExportRow(user_id=user_id, row_number=2, password_hasher=hasher, password_digest=digest)


def planned(user: dict[str, Any], export: ExportRow | None = None, **options: Any) -> UserPlan:
    plan = plan_user(user, export, MappingOptions(**options))
    assert isinstance(plan, UserPlan), plan
    return plan


@pytest.fixture
def fake_translate(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str | None, str | None]]]:
    """Stand-in for passwords.translate: bcrypt imports, anything else is unimportable."""
    calls: list[tuple[str | None, str | None]] = []

    def translate(
        hasher: str | None, digest: str | None, *, salt_position: str | None = None
    ) -> PasswordImport | PasswordUnimportable | None:
        calls.append((hasher, digest))
        if not digest and not hasher:
            return None
        if hasher == "bcrypt" and digest:
            return PasswordImport("bcrypt", "bcrypt", {"hashed_password": digest, "hashing_method": "bcrypt"})
        return PasswordUnimportable(hasher, f"{hasher} digests cannot be imported")

    monkeypatch.setattr(passwords, "translate", translate)
    yield calls


# -- profile ------------------------------------------------------------------------------------


def test_maps_the_example_user_to_a_kinde_create_body() -> None:
    plan = planned(clerk_user())

    assert plan == UserPlan(
        clerk_id=USER_ID,
        identities=(Identity("email", "jane@example.com", is_verified=True),),
        given_name="Jane",
        family_name="Doe",
        picture="https://img.clerk.com/jane",
    )
    assert plan.create_body() == {
        "provided_id": USER_ID,
        "identities": [{"type": "email", "details": {"email": "jane@example.com"}, "is_verified": True}],
        "profile": {"given_name": "Jane", "family_name": "Doe", "picture": "https://img.clerk.com/jane"},
    }


@pytest.mark.parametrize("has_image", [False, None, "true", 1])
def test_picture_only_when_has_image_is_true(has_image: Any) -> None:
    assert planned(clerk_user(has_image=has_image)).picture is None


def test_a_picture_that_is_not_an_http_url_is_dropped_with_a_warning() -> None:
    plan = planned(clerk_user(image_url="javascript:alert(1)"))

    assert plan.picture is None
    assert plan.warnings == (f"{USER_ID}: image_url: 'javascript:alert(1)' is not an http(s) URL; no picture",)


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("Zoë", "Ångström"),
        ("山田", "太郎"),
        ("محمد", "عبدالله"),
        ("😀", "O'Brien-Smith"),
        ("A" * 5000, "B" * 5000),
    ],
)
def test_names_are_kept_whatever_their_script_or_length(first: str, last: str) -> None:
    plan = planned(clerk_user(first_name=first, last_name=last))

    assert (plan.given_name, plan.family_name) == (first, last)
    assert plan.create_body()["profile"]["given_name"] == first


@pytest.mark.parametrize("value", [None, "", "   ", 42, ["Jane"]])
def test_blank_or_non_string_names_are_left_out(value: Any) -> None:
    plan = planned(clerk_user(first_name=value, last_name=value, has_image=False))

    assert plan.given_name is None and plan.family_name is None
    assert "profile" not in plan.create_body()


def test_names_are_trimmed() -> None:
    plan = planned(clerk_user(first_name="  Jane ", last_name="\tDoe\n"))

    assert (plan.given_name, plan.family_name) == ("Jane", "Doe")


# -- emails -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verification_value", "verified"),
    [
        ({"status": "verified", "strategy": "email_code"}, True),
        ({"status": "verified", "strategy": "from_oauth_google"}, True),  # no `object` key (as in SAMPLE)
        ({"object": "verification_admin", "status": "verified", "strategy": "admin"}, True),
        ({"status": "unverified"}, False),
        ({"status": "failed"}, False),
        ({"status": "expired"}, False),
        ({"status": "transferable"}, False),
        ({"status": "VERIFIED"}, False),
        ({"object": "verification_otp"}, False),
        (None, False),
        ("verified", False),
    ],
)
def test_primary_email_verification_follows_status_only(verification_value: Any, verified: bool) -> None:
    entry = email("idn_primary", "jane@example.com")
    entry["verification"] = verification_value

    plan = planned(clerk_user(email_addresses=[entry]))

    assert plan.identities == (Identity("email", "jane@example.com", is_verified=verified),)


def test_primary_email_without_a_verification_key_is_unverified() -> None:
    entry = email("idn_primary", "jane@example.com")
    del entry["verification"]

    plan = planned(clerk_user(email_addresses=[entry]))

    assert plan.identities == (Identity("email", "jane@example.com", is_verified=False),)


def test_other_verified_emails_become_extra_verified_identities_after_the_primary() -> None:
    plan = planned(
        clerk_user(
            primary_email_address_id="idn_b",
            email_addresses=[
                email("idn_a", "first@example.com"),
                email("idn_b", "primary@example.com", "unverified"),
                email("idn_c", "third@example.com"),
            ],
        )
    )

    assert plan.identities == (
        Identity("email", "primary@example.com", is_verified=False),
        Identity("email", "first@example.com", is_verified=True),
        Identity("email", "third@example.com", is_verified=True),
    )
    assert plan.email == "primary@example.com"
    assert plan.warnings == ()


def test_unverified_other_emails_are_dropped_with_a_warning_naming_user_and_field() -> None:
    plan = planned(
        clerk_user(
            email_addresses=[
                email("idn_primary", "jane@example.com"),
                email("idn_x", "old@example.com", "unverified"),
                email("idn_y", "never@example.com", None),
            ]
        )
    )

    assert plan.identities == (Identity("email", "jane@example.com", is_verified=True),)
    assert plan.warnings == (
        f"{USER_ID}: email_addresses: unverified 'old@example.com' is not migrated",
        f"{USER_ID}: email_addresses: unverified 'never@example.com' is not migrated",
    )


@pytest.mark.parametrize("primary_id", [None, "", 17])
def test_without_a_primary_id_the_first_verified_email_is_primary(primary_id: Any) -> None:
    plan = planned(
        clerk_user(
            primary_email_address_id=primary_id,
            email_addresses=[
                email("idn_a", "unverified@example.com", "unverified"),
                email("idn_b", "first-verified@example.com"),
                email("idn_c", "second-verified@example.com"),
            ],
        )
    )

    assert [identity.value for identity in plan.identities] == [
        "first-verified@example.com",
        "second-verified@example.com",
    ]
    assert all(identity.is_verified for identity in plan.identities)
    assert plan.warnings == (f"{USER_ID}: email_addresses: unverified 'unverified@example.com' is not migrated",)


def test_a_primary_id_that_points_nowhere_falls_back_to_the_first_verified_email() -> None:
    plan = planned(
        clerk_user(
            primary_email_address_id="idn_gone",
            email_addresses=[email("idn_a", "a@example.com", "unverified"), email("idn_b", "b@example.com")],
        )
    )

    assert plan.identities == (Identity("email", "b@example.com", is_verified=True),)
    assert plan.warnings == (
        f"{USER_ID}: primary_email_address_id: 'idn_gone' matches none of the user's entries",
        f"{USER_ID}: email_addresses: unverified 'a@example.com' is not migrated",
    )


def test_only_unverified_emails_and_no_primary_means_no_email_identity() -> None:
    result = plan_user(
        clerk_user(primary_email_address_id=None, email_addresses=[email("idn_a", "a@example.com", "unverified")]),
        None,
        DEFAULT,
    )

    assert isinstance(result, Skip)
    assert (result.clerk_id, result.reason) == (USER_ID, "no_identifier")
    assert "unverified 'a@example.com' is not migrated" in result.detail


@pytest.mark.parametrize(
    "address",
    ["not-an-email", "two@@example.com", "a@b", "spaces in@example.com", "a@example..com", "a@localhost", "a@x.local"],
)
def test_an_invalid_primary_email_is_dropped_and_the_next_verified_one_leads(address: str) -> None:
    plan = planned(clerk_user(email_addresses=[email("idn_primary", address), email("idn_b", "backup@example.com")]))

    assert plan.identities == (Identity("email", "backup@example.com", is_verified=True),)
    assert plan.warnings == (f"{USER_ID}: email_addresses: {address!r} is not a valid email address; dropped",)


@pytest.mark.parametrize(
    "address",
    [
        "jane+clerk_test@example.com",
        "first.last@sub.example.co.uk",
        "o'brien@example.ie",
        "user@bücher.de",
        "δοκιμή@παράδειγμα.δοκιμή",
        "dev@example.test",
        "UPPER.Case@Example.COM",
    ],
)
def test_valid_email_forms_are_kept_exactly_as_clerk_has_them(address: str) -> None:
    plan = planned(clerk_user(email_addresses=[email("idn_primary", address)]))

    assert plan.identities == (Identity("email", address, is_verified=True),)
    assert email_problem(address) is None


def test_email_addresses_are_trimmed() -> None:
    plan = planned(clerk_user(email_addresses=[email("idn_primary", "  jane@example.com\n")]))

    assert plan.email == "jane@example.com"


def test_the_same_address_twice_in_any_case_gives_one_identity() -> None:
    plan = planned(
        clerk_user(
            email_addresses=[
                email("idn_primary", "Jane@Example.com"),
                email("idn_b", "jane@example.com"),
                email("idn_c", "JANE@EXAMPLE.COM", "unverified"),
            ]
        )
    )

    assert plan.identities == (Identity("email", "Jane@Example.com", is_verified=True),)
    assert plan.warnings == ()


def test_junk_entries_in_email_addresses_are_ignored_with_a_warning() -> None:
    plan = planned(
        clerk_user(
            email_addresses=[
                "jane@example.com",
                None,
                {"id": "idn_x", "verification": {"status": "verified"}},
                {"id": "idn_y", "email_address": 12, "verification": {"status": "verified"}},
                email("idn_primary", "jane@example.com"),
            ]
        )
    )

    assert plan.identities == (Identity("email", "jane@example.com", is_verified=True),)
    assert plan.warnings == (
        f"{USER_ID}: email_addresses: an entry that is not an object was ignored",
        f"{USER_ID}: email_addresses: an entry that is not an object was ignored",
        f"{USER_ID}: email_addresses: an entry without email_address was ignored",
        f"{USER_ID}: email_addresses: an entry without email_address was ignored",
    )


# -- phones -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "e164", "country"),
    [
        ("+61412345678", "+61412345678", "au"),
        ("+61 412 345 678", "+61412345678", "au"),
        ("+447400123456", "+447400123456", "gb"),
        ("+12015550123", "+12015550123", "us"),
        ("+15062345678", "+15062345678", "ca"),
        ("+4915123456789", "+4915123456789", "de"),
        ("+918123456789", "+918123456789", "in"),
        ("+5511961234567", "+5511961234567", "br"),
        ("+819012345678", "+819012345678", "jp"),
    ],
)
def test_the_primary_phone_becomes_e164_with_its_country(number: str, e164: str, country: str) -> None:
    plan = planned(
        clerk_user(
            email_addresses=[],
            primary_email_address_id=None,
            primary_phone_number_id="idn_phone",
            phone_numbers=[phone("idn_phone", number)],
        )
    )

    assert plan.identities == (Identity("phone", e164, is_verified=True, phone_country_id=country),)
    assert plan.create_body()["identities"] == [
        {"type": "phone", "details": {"phone": e164, "phone_country_id": country}, "is_verified": True}
    ]
    assert parse_phone(number) == ParsedPhone(e164, country)


@pytest.mark.parametrize("number", ["12345", "+15555550100", "+80012345678", "+61 1", "phone", "+999123456789", ""])
def test_an_invalid_phone_is_dropped_with_a_warning(number: str) -> None:
    plan = planned(clerk_user(primary_phone_number_id="idn_phone", phone_numbers=[phone("idn_phone", number)]))

    assert plan.phone is None
    assert plan.email == "jane@example.com"
    if number:
        assert plan.warnings == (f"{USER_ID}: phone_numbers: {number!r} is not a valid phone number; dropped",)


def test_a_national_number_needs_the_default_region() -> None:
    user = clerk_user(primary_phone_number_id="idn_phone", phone_numbers=[phone("idn_phone", "0412 345 678")])

    without = planned(user)
    with_region = planned(user, default_phone_region="au")
    wrong_region = planned(user, default_phone_region="gb")

    assert without.phone is None
    assert with_region.identities[-1] == Identity("phone", "+61412345678", is_verified=True, phone_country_id="au")
    assert wrong_region.phone is None


def test_an_international_number_ignores_the_default_region() -> None:
    plan = planned(
        clerk_user(primary_phone_number_id="p", phone_numbers=[phone("p", "+447400123456")]),
        default_phone_region="au",
    )

    assert plan.identities[-1].phone_country_id == "gb"


def test_only_one_phone_is_kept_and_the_others_are_reported() -> None:
    plan = planned(
        clerk_user(
            primary_phone_number_id="idn_b",
            phone_numbers=[
                phone("idn_a", "+61412345678"),
                phone("idn_b", "+447400123456", "unverified"),
                phone("idn_c", "+12015550123"),
                phone("idn_d", "+61 412 345 678"),  # the same number as idn_a, written differently
            ],
        )
    )

    phones = [identity for identity in plan.identities if identity.type == "phone"]
    assert phones == [Identity("phone", "+447400123456", is_verified=False, phone_country_id="gb")]
    assert plan.warnings == (f"{USER_ID}: phone_numbers: 2 other number(s) not migrated (Kinde keeps one phone)",)


def test_without_a_primary_phone_the_first_verified_one_is_used() -> None:
    plan = planned(
        clerk_user(
            primary_phone_number_id=None,
            phone_numbers=[phone("idn_a", "+61412345678", "unverified"), phone("idn_b", "+447400123456")],
        )
    )

    assert plan.phone == "+447400123456"
    assert plan.identities[-1].is_verified is True


def test_an_unverified_phone_without_a_primary_id_is_not_used() -> None:
    plan = planned(
        clerk_user(primary_phone_number_id=None, phone_numbers=[phone("idn_a", "+61412345678", "unverified")])
    )

    assert plan.phone is None
    assert plan.warnings == (f"{USER_ID}: phone_numbers: 1 unverified number(s) not migrated (no primary phone)",)


def test_a_primary_phone_id_that_points_nowhere_falls_back_and_warns() -> None:
    plan = planned(clerk_user(primary_phone_number_id="idn_gone", phone_numbers=[phone("idn_a", "+61412345678")]))

    assert plan.phone == "+61412345678"
    assert plan.warnings == (f"{USER_ID}: primary_phone_number_id: 'idn_gone' matches none of the user's entries",)


def test_an_invalid_primary_phone_falls_back_to_a_valid_verified_one() -> None:
    plan = planned(
        clerk_user(
            primary_phone_number_id="idn_a",
            phone_numbers=[phone("idn_a", "+15555550100"), phone("idn_b", "+61412345678")],
        )
    )

    assert plan.phone == "+61412345678"
    assert plan.warnings == (f"{USER_ID}: phone_numbers: '+15555550100' is not a valid phone number; dropped",)


# -- username and identifiers ------------------------------------------------------------------


def test_username_becomes_an_identity_without_is_verified() -> None:
    plan = planned(clerk_user(username="  jane_doe  "))

    assert plan.identities[-1] == Identity("username", "jane_doe")
    assert plan.create_body()["identities"][-1] == {"type": "username", "details": {"username": "jane_doe"}}
    assert plan.username == "jane_doe"


def test_identities_are_ordered_email_phone_username() -> None:
    plan = planned(
        clerk_user(
            username="jane",
            primary_phone_number_id="p",
            phone_numbers=[phone("p", "+61412345678")],
            email_addresses=[email("idn_primary", "jane@example.com"), email("idn_b", "j2@example.com")],
        )
    )

    assert [identity.type for identity in plan.identities] == ["email", "email", "phone", "username"]


def test_a_username_alone_is_enough() -> None:
    plan = planned(clerk_user(email_addresses=[], primary_email_address_id=None, username="solo"))

    assert plan.identities == (Identity("username", "solo"),)


@pytest.mark.parametrize(
    "overrides",
    [
        {"email_addresses": [], "phone_numbers": [], "username": None},
        {"email_addresses": None, "phone_numbers": None, "username": ""},
        {"email_addresses": [email("idn_primary", "nope")], "username": "   "},
    ],
)
def test_no_email_phone_or_username_is_a_skip(overrides: dict[str, Any]) -> None:
    result = plan_user(clerk_user(**overrides), None, DEFAULT)

    assert isinstance(result, Skip)
    assert (result.clerk_id, result.reason) == (USER_ID, "no_identifier")
    assert result.detail.startswith("no usable email, phone or username")


def test_a_user_without_an_id_is_a_skip_not_an_exception() -> None:
    assert plan_user({"email_addresses": []}, None, DEFAULT) == Skip("", "invalid_user", "the Clerk user has no id")


# -- banned -------------------------------------------------------------------------------------


def test_banned_users_are_suspended_by_default() -> None:
    assert planned(clerk_user(banned=True)).suspended is True
    assert planned(clerk_user(banned=False)).suspended is False
    assert planned(clerk_user(banned="true")).suspended is False  # only a real true counts


def test_banned_users_are_skipped_under_the_skip_policy() -> None:
    result = plan_user(clerk_user(banned=True), None, MappingOptions(banned_users="skip"))

    assert result == Skip(USER_ID, "banned", "banned in Clerk (banned_users=skip)")
    assert isinstance(plan_user(clerk_user(banned=False), None, MappingOptions(banned_users="skip")), UserPlan)


# -- passwords ----------------------------------------------------------------------------------


def test_an_importable_digest_becomes_the_plans_password(fake_translate: list) -> None:
    plan = planned(clerk_user(password_enabled=True), export_row())

    assert isinstance(plan.password, PasswordImport) and plan.password.method == "bcrypt"
    assert plan.password_problem is None and plan.request_password_reset is False
    assert fake_translate == [("bcrypt", BCRYPT)]
    assert BCRYPT not in repr(plan)


def test_a_real_bcrypt_digest_from_clerks_sample_is_importable() -> None:
    plan = planned(clerk_user(password_enabled=True), export_row())

    assert isinstance(plan.password, PasswordImport)
    assert plan.password.hasher == "bcrypt"
    assert plan.password_problem is None


@pytest.mark.parametrize(
    ("policy", "reset"),
    [("reset", True), ("no-password", False)],
)
def test_an_unimportable_digest_is_recorded_and_handled_by_policy(
    fake_translate: list, policy: str, reset: bool
) -> None:
    plan = planned(
        clerk_user(password_enabled=True),
        export_row("md5", "5f4dcc3b5aa765d61d8327deb882cf99"),
        unimportable_passwords=policy,
    )

    assert plan.password is None
    assert plan.password_problem == PasswordUnimportable("md5", "md5 digests cannot be imported")
    assert plan.request_password_reset is reset


def test_an_unimportable_digest_under_skip_is_a_skip_with_the_reason(fake_translate: list) -> None:
    result = plan_user(
        clerk_user(password_enabled=True), export_row("md5", "x"), MappingOptions(unimportable_passwords="skip")
    )

    assert result == Skip(USER_ID, "password_not_importable", "md5 digests cannot be imported")


@pytest.mark.parametrize(
    "export",
    [None, export_row(None, None), ExportRow(user_id=USER_ID, row_number=9)],
    ids=["no-export-row", "row-without-password", "bare-row"],
)
@pytest.mark.parametrize(
    ("policy", "expect"),
    [("reset", "reset"), ("no-password", "problem-only"), ("skip", "skip")],
)
def test_password_enabled_without_a_digest_is_a_problem_handled_by_policy(
    fake_translate: list, export: ExportRow | None, policy: str, expect: str
) -> None:
    result = plan_user(clerk_user(password_enabled=True), export, MappingOptions(unimportable_passwords=policy))

    if expect == "skip":
        assert result == Skip(USER_ID, "password_not_importable", NO_DIGEST_REASON)
        return
    assert isinstance(result, UserPlan)
    assert result.password is None
    assert result.password_problem == PasswordUnimportable(None, NO_DIGEST_REASON)
    assert result.request_password_reset is (expect == "reset")


@pytest.mark.parametrize("enabled", [False, None, "yes"])
@pytest.mark.parametrize("policy", ["reset", "no-password", "skip"])
def test_a_user_without_a_password_needs_nothing(fake_translate: list, enabled: Any, policy: str) -> None:
    user = clerk_user(password_enabled=enabled)
    if enabled is None:
        del user["password_enabled"]

    plan = planned(user, export_row(None, None), unimportable_passwords=policy)

    assert (plan.password, plan.password_problem, plan.request_password_reset) == (None, None, False)
    assert fake_translate == []


def test_a_digest_for_a_user_whose_password_was_since_removed_is_not_imported(fake_translate: list) -> None:
    plan = planned(clerk_user(password_enabled=False), export_row())

    assert (plan.password, plan.password_problem, plan.request_password_reset) == (None, None, False)
    assert plan.warnings == (f"{USER_ID}: password_digest: not imported, password_enabled is false in Clerk now",)
    assert fake_translate == []


def test_a_digest_is_imported_when_clerk_does_not_say_whether_a_password_exists(fake_translate: list) -> None:
    user = clerk_user()
    del user["password_enabled"]

    plan = planned(user, export_row())

    assert isinstance(plan.password, PasswordImport)


def test_translate_saying_no_password_while_clerk_says_enabled_is_the_no_digest_problem(
    fake_translate: list,
) -> None:
    plan = planned(clerk_user(password_enabled=True), export_row(None, ""))

    assert plan.password_problem == PasswordUnimportable(None, NO_DIGEST_REASON)


# -- stale digests: the password changed after the export --------------------------------------------

EXPORT_TIME = datetime(2025, 6, 1, 12, 0, 0, 250_000, tzinfo=UTC)
EXPORT_MS = 1_748_779_200_250  # EXPORT_TIME in Unix milliseconds
STALE = PasswordUnimportable("bcrypt", STALE_DIGEST_REASON)
DAY_MS = 86_400_000
# Any instant a Clerk user can have, as Unix ms: 2001 (first 13-digit ms) to 2286.
instants_ms = st.integers(min_value=10**12, max_value=10**13 - 1)


def updated_at(value: Any) -> dict[str, Any]:
    """A password user whose password_last_updated_at is ``value`` (``...``: the key is absent)."""
    user = clerk_user(password_enabled=True, password_last_updated_at=value)
    if value is ...:
        del user["password_last_updated_at"]
    return user


def test_export_time_constant_is_the_same_instant_in_ms() -> None:
    assert mapping.password_updated_at(EXPORT_MS) == EXPORT_TIME


@settings(max_examples=300)
@given(updated_ms=instants_ms, as_seconds=st.booleans(), as_float=st.booleans())
def test_a_password_changed_at_or_after_the_export_is_stale_in_ms_or_seconds(
    updated_ms: int, as_seconds: bool, as_float: bool
) -> None:
    value: int | float = updated_ms
    if as_seconds:  # the other plausible reading of "Unix timestamp": whole seconds
        updated_ms -= updated_ms % 1000
        value = updated_ms // 1000
    value = float(value) if as_float else value
    plan = planned(updated_at(value), export_row(), export_time=EXPORT_TIME)
    changed = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=updated_ms)

    if changed >= EXPORT_TIME:
        assert (plan.password, plan.password_problem, plan.request_password_reset) == (None, STALE, True)
    else:
        assert isinstance(plan.password, PasswordImport) and plan.password_problem is None


@pytest.mark.parametrize(
    ("value", "stale"),
    [
        (EXPORT_MS - 1, False),
        (EXPORT_MS, True),  # equal counts as after: a reset is recoverable, a stale password is not
        (EXPORT_MS + 1, True),
        (EXPORT_MS // 1000, False),  # seconds: 12:00:00.000 is before 12:00:00.250
        (EXPORT_MS // 1000 + 1, True),
        (EXPORT_MS - DAY_MS, False),
        (EXPORT_MS + DAY_MS, True),
        (0, False),  # the epoch, in either unit
    ],
    ids=["1ms-before", "equal", "1ms-after", "seconds-before", "seconds-after", "day-before", "day-after", "zero"],
)
def test_stale_boundaries(fake_translate: list, value: int, stale: bool) -> None:
    plan = planned(updated_at(value), export_row(), export_time=EXPORT_TIME)
    assert (plan.password_problem == STALE) is stale
    assert isinstance(plan.password, PasswordImport) is not stale


@pytest.mark.parametrize("value", [None, ...], ids=["null", "absent"])
def test_without_a_password_update_time_the_digest_is_imported(fake_translate: list, value: Any) -> None:
    plan = planned(updated_at(value), export_row(), export_time=EXPORT_TIME)
    assert isinstance(plan.password, PasswordImport) and plan.password_problem is None


@settings(max_examples=200)
@given(
    value=st.one_of(
        st.text(),
        st.booleans(),
        st.integers(max_value=-1),
        st.floats(max_value=-1e-9),
        st.sampled_from([math.nan, math.inf, -math.inf, 1e300, 10**30]),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )
)
def test_a_password_update_time_that_is_not_a_timestamp_is_not_trusted(value: Any) -> None:
    plan = planned(updated_at(value), export_row(), export_time=EXPORT_TIME)
    assert plan.password is None
    assert plan.password_problem == PasswordUnimportable("bcrypt", mapping.UNREADABLE_UPDATE_REASON)


@given(value=st.one_of(st.none(), instants_ms, st.text()))
def test_without_an_export_time_nothing_is_judged_stale(value: Any) -> None:
    plan = planned(updated_at(value), export_row())
    assert isinstance(plan.password, PasswordImport)


@pytest.mark.parametrize(
    ("policy", "reset"),
    [("reset", True), ("no-password", False)],
)
def test_a_stale_digest_follows_the_unimportable_password_policy(
    fake_translate: list, policy: str, reset: bool
) -> None:
    plan = planned(updated_at(EXPORT_MS + 5), export_row(), export_time=EXPORT_TIME, unimportable_passwords=policy)
    assert (plan.password, plan.password_problem, plan.request_password_reset) == (None, STALE, reset)


def test_a_stale_digest_under_skip_is_a_skip_with_the_reason(fake_translate: list) -> None:
    result = plan_user(
        updated_at(EXPORT_MS + 5),
        export_row(),
        MappingOptions(unimportable_passwords="skip", export_time=EXPORT_TIME),
    )
    assert result == Skip(USER_ID, "password_not_importable", STALE_DIGEST_REASON)


def test_a_stale_digest_of_an_unimportable_hasher_says_it_is_stale(fake_translate: list) -> None:
    # A fresh export would carry the new digest (Clerk hashes new passwords with bcrypt): the more useful reason.
    plan = planned(updated_at(EXPORT_MS + 5), export_row("argon2id", "$argon2id$..."), export_time=EXPORT_TIME)
    assert plan.password_problem == PasswordUnimportable("argon2id", STALE_DIGEST_REASON)


def test_a_hasher_that_is_not_a_name_is_not_echoed_in_a_stale_problem(fake_translate: list) -> None:
    plan = planned(updated_at(EXPORT_MS + 5), export_row(BCRYPT, BCRYPT), export_time=EXPORT_TIME)
    assert plan.password_problem == PasswordUnimportable(None, STALE_DIGEST_REASON)


def test_the_removed_password_and_missing_digest_rules_come_before_staleness(fake_translate: list) -> None:
    removed = planned(
        clerk_user(password_enabled=False, password_last_updated_at=EXPORT_MS + 5),
        export_row(),
        export_time=EXPORT_TIME,
    )
    assert (removed.password, removed.password_problem) == (None, None)
    missing = planned(updated_at(EXPORT_MS + 5), export_row(None, None), export_time=EXPORT_TIME)
    assert missing.password_problem == PasswordUnimportable(None, NO_DIGEST_REASON)


def test_an_export_row_of_another_user_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="is for 'user_other'"):
        plan_user(clerk_user(), export_row(user_id="user_other"), DEFAULT)


def test_password_policy_is_checked_after_identifiers(fake_translate: list) -> None:
    # A user with nothing to sign in with is reported as that, whatever the password policy.
    result = plan_user(
        clerk_user(email_addresses=[], password_enabled=True), None, MappingOptions(unimportable_passwords="skip")
    )

    assert isinstance(result, Skip) and result.reason == "no_identifier"


# -- purity -------------------------------------------------------------------------------------


def test_plan_user_does_not_touch_its_input_and_is_deterministic(fake_translate: list) -> None:
    user = clerk_user(
        username="jane",
        phone_numbers=[phone("p", "+61412345678")],
        primary_phone_number_id="p",
        email_addresses=[email("idn_primary", "jane@example.com"), email("x", "x@example.com", "unverified")],
        password_enabled=True,
    )
    before = copy.deepcopy(user)

    first = plan_user(user, export_row(), DEFAULT)
    second = plan_user(user, export_row(), DEFAULT)

    assert user == before
    assert first == second
    assert isinstance(first, UserPlan) and isinstance(second, UserPlan)
    assert first.password is not None and second.password is not None
    assert first.password.fields == second.password.fields


def test_unknown_keys_are_ignored() -> None:
    plan = planned(clerk_user(some_future_field={"x": 1}, profile_image_url="https://old", deprovisioned=True))

    assert plan.email == "jane@example.com"


# -- identity keys ------------------------------------------------------------------------------


def test_identity_keys_are_what_kinde_compares() -> None:
    plan = planned(
        clerk_user(
            username="Jane_Doe",
            primary_phone_number_id="p",
            phone_numbers=[phone("p", "+61412345678")],
            email_addresses=[email("idn_primary", "Jane@Example.com"), email("b", "Other@Example.com")],
        )
    )

    assert identity_keys(plan) == {"email": "jane@example.com", "username": "jane_doe", "phone": "+61412345678"}
    assert all_identity_keys(plan) == (
        ("email", "jane@example.com"),
        ("email", "other@example.com"),
        ("phone", "+61412345678"),
        ("username", "jane_doe"),
    )


def test_identity_keys_leave_out_what_the_plan_does_not_have() -> None:
    plan = planned(clerk_user(email_addresses=[], username="solo"))

    assert identity_keys(plan) == {"username": "solo"}


@given(st.sampled_from(["email", "username", "phone", "google"]), st.text(max_size=30))
def test_one_rule_names_an_identity_whatever_its_case(kind: str, value: str) -> None:
    """Emails, usernames (and any other kind) ignore case; a phone is compared exactly as it is."""
    key = mapping.identity_key(kind, value)
    assert key == f"{kind}:{mapping.normalized_identity(kind, value)}"
    if kind == "phone":
        assert mapping.normalized_identity(kind, value) == value
    else:
        assert mapping.normalized_identity(kind, value) == value.lower()
        assert mapping.normalized_identity(kind, value.lower()) == value.lower()


def test_the_rule_reads_what_kinde_answered_as_it_is() -> None:
    """Kinde's identity records carry the value as ``name``, possibly absent: an absent value is the empty one."""
    assert mapping.identity_key("email", "Ada@Example.COM") == mapping.identity_key("email", "ada@EXAMPLE.com")
    assert mapping.identity_key("email", "Ada@Example.COM") == "email:ada@example.com"
    assert mapping.identity_key("username", "Jane_Doe") == "username:jane_doe"
    assert mapping.identity_key("phone", "+61412345678") == "phone:+61412345678"
    assert mapping.identity_key("email", None) == "email:"
    assert mapping.identity_key(None, "X") == "None:x"


# -- roles, organizations, memberships ----------------------------------------------------------


@pytest.mark.parametrize(
    ("clerk_role", "role_map", "expected"),
    [
        ("org:admin", {}, "admin"),
        ("org:member", {}, "member"),
        ("org:billing_manager", {}, "billing_manager"),
        ("admin", {}, "admin"),
        ("org:admin", {"org:admin": "owner"}, "owner"),
        ("org:admin", {"admin": "owner"}, "owner"),
        ("org:admin", {"org:admin": "full", "admin": "bare"}, "full"),
        ("org:member", {"org:admin": "owner"}, "member"),
    ],
)
def test_kinde_role_key(clerk_role: str, role_map: dict[str, str], expected: str) -> None:
    assert kinde_role_key(clerk_role, MappingOptions(role_map=role_map)) == expected


def test_an_empty_role_key_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing after its prefix"):
        kinde_role_key("org:", DEFAULT)


MEMBERSHIP = {
    "object": "organization_membership",
    "id": "orgmem_2abc",
    "role": "org:admin",
    "role_name": "Admin",
    "permissions": ["org:sys_profile:manage"],
    "public_metadata": {},
    "organization": {"object": "organization", "id": "org_2abc", "name": "Acme", "slug": "acme"},
    "public_user_data": {"user_id": "user_2xyz", "first_name": "Jane", "identifier": "jane@example.com"},
    "created_at": 1700000000000,
}


def test_plan_membership_from_a_clerk_membership() -> None:
    assert plan_membership(MEMBERSHIP, DEFAULT) == ("user_2xyz", Membership("org_2abc", "admin"))
    assert plan_membership(MEMBERSHIP, MappingOptions(role_map={"org:admin": "owner"})) == (
        "user_2xyz",
        Membership("org_2abc", "owner"),
    )


def test_plan_membership_accepts_a_bare_organization_id() -> None:
    membership = {**MEMBERSHIP, "organization": None, "organization_id": "org_9"}

    assert plan_membership(membership, DEFAULT) == ("user_2xyz", Membership("org_9", "admin"))


@pytest.mark.parametrize(
    ("change", "missing"),
    [
        ({"public_user_data": None}, "user id"),
        ({"organization": {}}, "org id"),
        ({"role": ""}, "role"),
        ({"role": None, "public_user_data": {}}, "user id, role"),
    ],
)
def test_an_incomplete_membership_is_refused_naming_what_is_missing(change: dict[str, Any], missing: str) -> None:
    with pytest.raises(ValueError, match=f"'orgmem_2abc' has no {missing}$"):
        plan_membership({**MEMBERSHIP, **change}, DEFAULT)


def test_organization_body() -> None:
    assert organization_body(MEMBERSHIP["organization"]) == {"name": "Acme", "external_id": "org_2abc"}
    assert organization_body({"id": "org_1", "name": " ", "slug": "acme"}) == {"name": "acme", "external_id": "org_1"}
    assert organization_body({"id": "org_1"}) == {"name": "org_1", "external_id": "org_1"}
    with pytest.raises(ValueError, match="no id"):
        organization_body({"name": "Acme"})


def test_role_body() -> None:
    role = {"object": "role", "id": "role_1", "name": "Billing", "key": "org:billing", "description": "Pays"}

    assert role_body(role) == {"name": "Billing", "key": "billing", "description": "Pays"}
    assert role_body(role, MappingOptions(role_map={"org:billing": "finance"}))["key"] == "finance"
    assert role_body({"key": "org:viewer", "description": None}) == {"name": "org:viewer", "key": "viewer"}
    with pytest.raises(ValueError, match="no key"):
        role_body({"id": "role_2", "name": "Nameless"})


# -- properties ---------------------------------------------------------------------------------

maybe_text = st.none() | st.text(max_size=12) | st.integers() | st.booleans()
email_values = (
    st.emails()
    | st.sampled_from(["not-an-email", "a@b", "", "  ", "x@localhost", "UPPER@EXAMPLE.COM", "dev@example.test"])
    | st.text(max_size=20)
)
phone_values = (
    st.sampled_from(["+61412345678", "+447400123456", "+12015550123", "+15555550100", "+80012345678", "0412345678"])
    | st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)
    | st.text(max_size=16)
)
verifications = st.none() | st.builds(
    lambda status, with_object: {"status": status, **({"object": "verification_otp"} if with_object else {})},
    st.sampled_from(["verified", "unverified", "failed", "expired", None]),
    st.booleans(),
)
entry_ids = st.sampled_from(["idn_1", "idn_2", "idn_3", None])


def optional(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda value: {key: value}))


def contact_entries(value_key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    entry = st.builds(
        lambda parts: {k: v for part in parts for k, v in part.items()},
        st.tuples(optional("id", entry_ids), optional(value_key, values), optional("verification", verifications)),
    )
    return st.none() | st.lists(entry | st.none() | st.text(max_size=5), max_size=4)


@st.composite
def clerk_users(draw: st.DrawFn) -> dict[str, Any]:
    user: dict[str, Any] = {}
    for part in (
        optional("id", st.sampled_from([USER_ID, "user_x", "", None])),
        optional("first_name", maybe_text),
        optional("last_name", maybe_text),
        optional("username", maybe_text),
        optional("image_url", maybe_text | st.just("https://img.clerk.com/x")),
        optional("has_image", st.none() | st.booleans()),
        optional("primary_email_address_id", entry_ids | st.integers()),
        optional("primary_phone_number_id", entry_ids),
        optional("email_addresses", contact_entries("email_address", email_values)),
        optional("phone_numbers", contact_entries("phone_number", phone_values)),
        optional("banned", st.none() | st.booleans()),
        optional("password_enabled", st.none() | st.booleans()),
        optional("unknown_future_key", maybe_text),
    ):
        user.update(draw(part))
    return user


options_strategy = st.builds(
    MappingOptions,
    unimportable_passwords=st.sampled_from(["reset", "no-password", "skip"]),
    banned_users=st.sampled_from(["suspend", "skip"]),
    role_map=st.just({}),
    default_phone_region=st.sampled_from([None, "au", "us", "gb"]),
)

SKIP_REASONS = {"invalid_user", "no_identifier", "banned", "password_not_importable"}


@settings(max_examples=300, deadline=None)
@given(user=clerk_users(), options=options_strategy)
def test_any_user_shaped_dict_gives_a_valid_plan_or_a_reasoned_skip(
    user: dict[str, Any], options: MappingOptions
) -> None:
    result = plan_user(user, None, options)

    if isinstance(result, Skip):
        assert result.reason in SKIP_REASONS
        return
    assert isinstance(result, UserPlan)
    body = result.create_body()
    assert body["provided_id"] == user["id"].strip() and body["provided_id"]
    assert body["identities"]
    assert sum(identity.type == "phone" for identity in result.identities) <= 1
    emails_seen = [identity.value.lower() for identity in result.identities if identity.type == "email"]
    assert len(emails_seen) == len(set(emails_seen))
    for identity in result.identities:
        assert identity.value and identity.value == identity.value.strip()
        if identity.type == "email":
            assert email_problem(identity.value) is None
        elif identity.type == "phone":
            assert identity.phone_country_id and identity.phone_country_id.islower()
            assert parse_phone(identity.value) == ParsedPhone(identity.value, identity.phone_country_id)
        else:
            assert identity.type == "username"
    # Only the primary email may be unverified; the extra ones are verified by construction.
    email_identities = [identity for identity in result.identities if identity.type == "email"]
    assert all(identity.is_verified for identity in email_identities[1:])
    assert result.suspended is (user.get("banned") is True)
    assert all(warning.startswith(f"{result.clerk_id}: ") for warning in result.warnings)
    if user.get("password_enabled") is True:
        assert result.password_problem == PasswordUnimportable(None, NO_DIGEST_REASON)
        assert result.request_password_reset is (options.unimportable_passwords == "reset")
    else:
        assert result.password_problem is None


@settings(max_examples=100, deadline=None)
@given(user=clerk_users(), hasher=st.sampled_from([None, "bcrypt", "md5", "argon2id", "nonsense"]))
def test_any_user_with_any_export_row_maps_without_raising(user: dict[str, Any], hasher: str | None) -> None:
    user_id = user.get("id") if isinstance(user.get("id"), str) and user["id"].strip() else None
    row = export_row(hasher, BCRYPT if hasher else None, user_id=user_id.strip()) if user_id else None

    result = plan_user(user, row, DEFAULT)

    assert isinstance(result, UserPlan | Skip)
    if isinstance(result, UserPlan):
        assert result.password is None or result.password_problem is None
        assert BCRYPT not in repr(result)


def test_mapping_module_imports_passwords_as_a_module() -> None:
    # Tests (and the pipeline) replace passwords.translate; mapping must look it up at call time.
    assert mapping.passwords is passwords


# -- metadata as properties, social identities, MFA, role permissions -----------------------------------


def test_property_values_are_strings_and_objects_are_stable_json() -> None:
    assert property_text("pro") == "pro"
    assert property_text(3) == "3" and property_text(True) == "true"
    assert property_text({"b": 1, "a": [1, "x"]}) == '{"a":[1,"x"],"b":1}'
    assert property_text(None) is None and property_text("  ") is None and property_text({}) is None


def test_mapped_paths_fill_the_plan_properties_and_missing_paths_are_left_out() -> None:
    options = MappingOptions(
        properties=(
            PropertySpec("public_metadata.plan", "plan"),
            PropertySpec("external_id", "app_user_id"),
            PropertySpec("private_metadata", "clerk_private", "multi_line_text"),
            PropertySpec("unsafe_metadata.theme.missing", "theme"),
        )
    )
    user = {
        "id": "user_1",
        "email_addresses": [{"id": "e1", "email_address": "a@example.com", "verification": {"status": "verified"}}],
        "primary_email_address_id": "e1",
        "public_metadata": {"plan": "pro"},
        "private_metadata": {"stripe": "cus_1"},
        "unsafe_metadata": {"theme": "dark"},
        "external_id": "app-42",
    }
    plan = plan_user(user, None, options)
    assert plan.properties == {"plan": "pro", "app_user_id": "app-42", "clerk_private": '{"stripe":"cus_1"}'}


def test_external_accounts_become_social_identities_only_for_mapped_providers() -> None:
    options = MappingOptions(social_connections={"oauth_google": "conn_g"})
    user = {
        "external_accounts": [
            {"provider": "oauth_google", "email_address": "a@gmail.com", "provider_user_id": "1"},
            {"provider": "oauth_google", "email_address": "A@gmail.com", "provider_user_id": "1"},
            {"provider": "oauth_github", "email_address": "a@example.com"},
            {"provider": "oauth_github", "email_address": "b@example.com"},
            "junk",
        ]
    }
    notes: list[str] = []
    social, unmapped, not_carried = social_identities(user, options, notes)
    assert [s.to_api() for s in social] == [{"type": "social", "value": "a@gmail.com", "connection_id": "conn_g"}]
    assert unmapped == ("oauth_github",)
    # the junk entry is named, not dropped silently
    assert [d.provider for d in not_carried] == ["unknown"] and "external_accounts[4]" in notes[0]


def test_mfa_is_noticed_from_the_export_or_the_api_flags() -> None:
    row = ExportRow(user_id="user_1", row_number=2, has_totp=True)
    assert mfa_enrolled({}, row)
    assert mfa_enrolled({"two_factor_enabled": True}, None) and mfa_enrolled({"totp_enabled": True}, None)
    assert not mfa_enrolled({"two_factor_enabled": False, "totp_enabled": "yes"}, None)


def test_role_permissions_lose_the_org_prefix_and_accept_objects_or_keys() -> None:
    role = {"permissions": [{"key": "org:invoices:read", "name": "Read invoices"}, "org:tickets:manage", {}, 7]}
    assert role_permissions(role) == [
        {"key": "invoices:read", "name": "Read invoices"},
        {"key": "tickets:manage", "name": "tickets:manage"},
    ]
    with pytest.raises(ValueError):
        kinde_permission_key("org:")
