"""The data generator: determinism, uniqueness, invertible ids, trait mix, problem users, CSV."""

from __future__ import annotations

import csv
import itertools
import re
from collections import Counter
from pathlib import Path

import bcrypt
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator.sandbox import generator
from migrator.sandbox.generator import (
    EXPORT_COLUMNS,
    PHONE_REGIONS,
    PROBLEM_USERS,
    SHARED_EMAIL,
    Dataset,
    phone_number_for,
)
from migrator.sandbox.hashing import CLERK_HASHERS

BIG = Dataset(1_000_000, seed=3)


@pytest.fixture(scope="module")
def mixed() -> Dataset:
    """Large enough for every trait to show up, small enough to walk entirely."""
    return Dataset(3000, seed=11)


@pytest.fixture(scope="module")
def mixed_users(mixed: Dataset) -> list[dict]:
    return [mixed.user(i) for i in range(mixed.n)]


def _primary(user: dict, kind: str) -> dict | None:
    wanted = user[f"primary_{kind}_id"]
    items = user["email_addresses"] if kind == "email_address" else user["phone_numbers"]
    return next((item for item in items if item["id"] == wanted), None)


# ----------------------------------------------------------------------------- determinism, ids


def test_same_seed_gives_the_same_data_and_another_seed_does_not() -> None:
    first, again, other = Dataset(120, seed=5), Dataset(120, seed=5), Dataset(120, seed=6)
    for i in range(first.n):
        assert first.user(i) == again.user(i)
        assert first.export_row(i) == again.export_row(i)
        assert first.expected(i) == again.expected(i)
    assert first.organizations() == again.organizations()
    assert list(first.memberships()) == list(again.memberships())
    assert {first.user_id(i) for i in range(120)}.isdisjoint(other.user_id(i) for i in range(120))
    differing = sum(first.user(i)["email_addresses"] != other.user(i)["email_addresses"] for i in range(120))
    assert differing > 100


def test_ids_are_unique_and_clerk_shaped(mixed: Dataset) -> None:
    ids = [mixed.user_id(i) for i in range(mixed.n)]
    assert len(set(ids)) == mixed.n
    assert all(re.fullmatch(r"user_2[0-9A-Za-z]{26}", user_id) for user_id in ids)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=BIG.n - 1))
def test_index_of_inverts_user_id(i: int) -> None:
    assert BIG.index_of(BIG.user_id(i)) == i


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_index_of_rejects_arbitrary_strings(text: str) -> None:
    assert BIG.index_of(text) is None or BIG.user_id(BIG.index_of(text)) == text


def test_index_of_rejects_ids_of_another_seed_or_beyond_n() -> None:
    small = Dataset(100, seed=3)
    assert small.index_of(BIG.user_id(500)) is None  # same seed, index beyond n
    assert BIG.index_of(Dataset(1_000_000, seed=4).user_id(7)) is None
    genuine = BIG.user_id(9)
    tampered = genuine[:-1] + ("A" if genuine[-1] != "A" else "B")
    assert BIG.index_of(genuine) == 9 and BIG.index_of(tampered) is None


def test_index_of_checks_the_seed_tag_not_just_the_index_range() -> None:
    small = Dataset(100, seed=3)
    forged_plain = (42 << generator._TAG_BITS) | (small._id_tag(42) ^ 1)  # right index, wrong tag
    forged = (forged_plain * small._id_mul + small._id_add) & generator._ID_MASK
    assert small.index_of("user_2" + generator._base62(forged, 26)) is None


def test_created_at_grows_strictly_with_the_index(mixed_users: list[dict]) -> None:
    created = [user["created_at"] for user in mixed_users]
    assert all(a < b for a, b in itertools.pairwise(created))
    assert all(user["updated_at"] >= user["created_at"] for user in mixed_users)
    # Unix milliseconds, not seconds
    assert all(1_600_000_000_000 < c < 2_000_000_000_000 for c in created)


def test_index_range_is_the_created_at_window(mixed: Dataset) -> None:
    after, before = mixed.created_at(100), mixed.created_at(200)
    assert mixed.index_range(after, before) == range(101, 200)
    assert mixed.index_range(after - 1, before + 1) == range(100, 201)
    assert mixed.index_range(None, mixed.created_at(0)) == range(0, 0)


# ----------------------------------------------------------------------------- uniqueness


def test_emails_are_unique_except_the_deliberate_duplicate(mixed_users: list[dict]) -> None:
    owners = Counter(e["email_address"] for user in mixed_users for e in user["email_addresses"])
    duplicated = {email: count for email, count in owners.items() if count > 1}
    assert duplicated == {SHARED_EMAIL: 2}
    users_11, users_12 = mixed_users[11], mixed_users[12]
    assert _primary(users_11, "email_address")["email_address"] == SHARED_EMAIL
    assert _primary(users_12, "email_address")["email_address"] != SHARED_EMAIL
    assert SHARED_EMAIL in [e["email_address"] for e in users_12["email_addresses"]]


def test_emails_are_lowercase_ascii(mixed_users: list[dict]) -> None:
    for user in mixed_users:
        for email in user["email_addresses"]:
            address = email["email_address"]
            assert address.isascii() and address == address.lower(), address


def test_usernames_unique_except_the_case_pairs(mixed_users: list[dict]) -> None:
    folded = Counter(u["username"].lower() for u in mixed_users if u["username"])
    assert {name for name, count in folded.items() if count > 1} == {"sam_taylor", "jordan_lee"}
    assert len({u["username"] for u in mixed_users if u["username"]}) == sum(folded.values())


def test_phones_are_valid_unique_e164_of_several_countries(mixed_users: list[dict]) -> None:
    numbers = [p["phone_number"] for u in mixed_users for p in u["phone_numbers"]]
    assert len(numbers) == len(set(numbers))
    regions = Counter()
    for number in numbers:
        if number == generator.INVALID_PHONE:
            continue
        parsed = phonenumbers.parse(number)
        assert phonenumbers.is_valid_number(parsed), number
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == number
        regions[phonenumbers.region_code_for_number(parsed)] += 1
    assert len(regions) >= 8
    assert not phonenumbers.is_valid_number(phonenumbers.parse(generator.INVALID_PHONE))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([r for r, _ in PHONE_REGIONS]), st.integers(min_value=0, max_value=8_000_000 - 1))
def test_phone_numbers_stay_valid_and_decodable(region: str, value: int) -> None:
    number = phone_number_for(region, value)
    parsed = phonenumbers.parse(number)
    assert phonenumbers.is_valid_number(parsed)
    assert phonenumbers.region_code_for_number(parsed) == region
    assert generator._phone_value(number) == value


# ----------------------------------------------------------------------------- trait mix


def test_the_trait_mix_is_present(mixed: Dataset, mixed_users: list[dict]) -> None:
    has = Counter()
    for user in mixed_users:
        email, phone = _primary(user, "email_address"), _primary(user, "phone_number")
        verification = (email or {}).get("verification")
        has["verified primary email"] += bool(verification and verification["status"] == "verified")
        has["unverified primary email"] += bool(email and (not verification or verification["status"] != "verified"))
        has["expired verification"] += bool(verification and verification["status"] == "expired")
        has["extra email"] += len(user["email_addresses"]) > 1
        has["primary email not first"] += bool(email and user["email_addresses"][0] is not email)
        has["phone"] += phone is not None
        has["phone only"] += bool(phone and not user["email_addresses"] and not user["username"])
        has["username only"] += bool(user["username"] and not user["email_addresses"] and not phone)
        has["oauth only"] += bool(user["external_accounts"] and not user["password_enabled"])
        has["banned"] += user["banned"]
        has["locked"] += bool(user["locked"] and user["lockout_expires_in_seconds"])
        has["unicode name"] += bool(user["first_name"] and not user["first_name"].isascii())
        has["long name"] += len(user["first_name"] or "") > 150
        has["no name"] += user["first_name"] is None
        has["metadata"] += bool(user["public_metadata"] and user["private_metadata"])
        has["totp"] += user["totp_enabled"]
        has["web3"] += bool(user["web3_wallets"])
        has["passkey"] += bool(user["passkeys"])
    for trait in has:
        assert has[trait] > 0, trait
    n = mixed.n
    assert 0.8 * n * 0.64 < has["verified primary email"] < n
    assert 0.01 * n < has["banned"] < 0.04 * n
    assert 0.03 * n < has["phone only"] < 0.09 * n
    assert 0.10 * n < has["oauth only"] < 0.18 * n


def test_default_hasher_mix_is_mostly_bcrypt_with_every_hasher() -> None:
    dataset = Dataset(6000, seed=2)
    hashers = Counter(pw[0] for i in range(dataset.n) if (pw := dataset.password(i)))
    assert 0.75 < hashers["bcrypt"] / sum(hashers.values()) < 0.85
    assert set(hashers) == set(CLERK_HASHERS)


def test_explicit_hasher_weights_are_honoured() -> None:
    only_bcrypt = Dataset(300, seed=2, hasher_weights={"bcrypt": 1.0})
    assert {pw[0] for i in range(300) if (pw := only_bcrypt.password(i))} == {"bcrypt"}
    even = Dataset(4000, seed=2, hasher_weights=dict.fromkeys(CLERK_HASHERS, 1.0))
    counts = Counter(pw[0] for i in range(even.n) if (pw := even.password(i)))
    assert set(counts) == set(CLERK_HASHERS) and max(counts.values()) < 4 * min(counts.values())
    with pytest.raises(ValueError, match="unknown hasher"):
        Dataset(10, hasher_weights={"rot13": 1.0})
    with pytest.raises(ValueError):
        Dataset(10, hasher_weights={"bcrypt": 0.0})


def test_password_users_match_password_enabled(mixed: Dataset, mixed_users: list[dict]) -> None:
    for i, user in enumerate(mixed_users):
        if i == generator.NO_DIGEST_USER:
            continue
        assert (mixed.password(i) is not None) == user["password_enabled"], i
        assert (mixed.plaintext(user["id"]) is not None) == user["password_enabled"], i


def test_plaintexts_verify_against_bcrypt_digests() -> None:
    dataset = Dataset(200, seed=9, hasher_weights={"bcrypt": 1.0})
    checked = 0
    for i in range(dataset.n):
        pair = dataset.password(i)
        if pair is None:
            continue
        plaintext = dataset.plaintext(dataset.user_id(i))
        assert bcrypt.checkpw(plaintext.encode(), pair[1].encode())
        assert not bcrypt.checkpw((plaintext + "x").encode(), pair[1].encode())
        checked += 1
    assert checked > 100


def test_digests_use_the_cheapest_cost() -> None:
    dataset = Dataset(200, seed=9, hasher_weights={"bcrypt": 1.0})
    digests = {pw[1] for i in range(200) if (pw := dataset.password(i))}
    assert all(digest.split("$")[2] == "04" for digest in digests)


def test_organizations_have_admin_member_and_custom_roles(mixed: Dataset) -> None:
    organizations = {o["id"]: o for o in mixed.organizations()}
    assert len(organizations) == mixed.n_organizations == 30
    roles_by_org: dict[str, Counter] = {org_id: Counter() for org_id in organizations}
    role_keys = {role["key"] for role in mixed.roles()}
    memberships = list(mixed.memberships())
    assert len(memberships) == mixed.membership_count
    assert len({m["id"] for m in memberships}) == len(memberships)
    pairs = [(m["organization"]["id"], m["public_user_data"]["user_id"]) for m in memberships]
    assert len(set(pairs)) == len(pairs)  # nobody is in the same organization twice
    for membership in memberships:
        assert membership["role"] in role_keys
        assert mixed.index_of(membership["public_user_data"]["user_id"]) is not None
        roles_by_org[membership["organization"]["id"]][membership["role"]] += 1
    for org_id, roles in roles_by_org.items():
        assert roles["org:admin"] >= 1, org_id
        creator = organizations[org_id]["created_by"]
        assert any(
            m["public_user_data"]["user_id"] == creator and m["role"] == "org:admin"
            for m in memberships
            if m["organization"]["id"] == org_id
        )
    used = Counter(m["role"] for m in memberships)
    assert used["org:member"] > used["org:admin"] > 0
    assert {"org:billing_manager", "org:support_agent", "org:viewer"} <= set(used)
    created = [m["created_at"] for m in memberships]
    assert all(a < b for a, b in itertools.pairwise(created))


def test_a_million_users_stream_memberships_by_position() -> None:
    assert BIG.membership_count == 700_000
    last = BIG.membership(BIG.membership_count - 1)
    assert BIG.index_of(last["public_user_data"]["user_id"]) == 999_998
    assert BIG.user(999_999)["id"] == BIG.user_id(999_999)
    with pytest.raises(IndexError):
        BIG.membership(BIG.membership_count)


# ----------------------------------------------------------------------------- problem users


def test_problem_users_are_where_the_docstring_says(mixed: Dataset, mixed_users: list[dict]) -> None:
    web3 = mixed_users[generator.WEB3_ONLY_USER]
    assert web3["web3_wallets"] and web3["primary_web3_wallet_id"] == web3["web3_wallets"][0]["id"]
    assert not web3["email_addresses"] and not web3["phone_numbers"] and web3["username"] is None
    assert mixed.expected(generator.WEB3_ONLY_USER)["skip_reason"] == "no_identifier"

    assert mixed_users[21]["username"] == "sam_taylor" and mixed_users[22]["username"] == "Sam_Taylor"
    assert mixed.expected(21)["username"] == "sam_taylor"
    skipped = {
        "eligible": False,
        "skip_reason": "duplicate_username",
        "email": None,
        "email_verified": None,
        "username": None,
        "phone": None,
        "hasher": None,
        "banned": False,
    }
    assert mixed.expected(22) == skipped and mixed.expected(26) == skipped  # 26 has an email, still skipped
    assert mixed_users[26]["email_addresses"] and mixed_users[26]["username"] == "JORDAN_LEE"
    assert mixed.expected(25)["username"] == "jordan_lee" and mixed.expected(25)["eligible"]
    assert mixed.expected(12)["eligible"] and mixed.expected(12)["email"] != SHARED_EMAIL

    assert _primary(mixed_users[23], "phone_number")["phone_number"] == generator.INVALID_PHONE
    assert mixed.expected(23)["phone"] is None and mixed.expected(23)["eligible"]

    no_digest = mixed_users[generator.NO_DIGEST_USER]
    assert no_digest["password_enabled"] and mixed.password(generator.NO_DIGEST_USER) is None
    row = mixed.export_row(generator.NO_DIGEST_USER)
    assert row["password_digest"] == row["password_hasher"] == ""
    assert mixed.expected(generator.NO_DIGEST_USER)["hasher"] is None

    assert len(mixed_users[generator.LONG_NAME_USER]["first_name"]) > 150
    assert mixed_users[generator.BANNED_USER]["banned"] and mixed.expected(generator.BANNED_USER)["banned"]
    locked = mixed_users[generator.LOCKED_USER]
    assert locked["locked"] and locked["lockout_expires_in_seconds"] > 0
    assert mixed.export_row(generator.FORMULA_NAME_USER)["first_name"].startswith("\t=")


def test_expected_agrees_with_the_user_json(mixed: Dataset, mixed_users: list[dict]) -> None:
    for i, user in enumerate(mixed_users):
        expected = mixed.expected(i)
        assert expected["banned"] is user["banned"]
        if not expected["eligible"]:
            assert i in PROBLEM_USERS and expected["skip_reason"] in ("no_identifier", "duplicate_username")
            assert expected["email"] is expected["username"] is expected["phone"] is expected["hasher"] is None
            continue
        email = _primary(user, "email_address")
        assert expected["email"] == (email and email["email_address"])
        if email is not None:
            verified = bool(email["verification"]) and email["verification"]["status"] == "verified"
            assert expected["email_verified"] is verified
        assert expected["banned"] is user["banned"]
        if i not in PROBLEM_USERS:
            phone = _primary(user, "phone_number")
            assert expected["phone"] == (phone and phone["phone_number"])
            assert expected["username"] == user["username"]
            assert expected["eligible"] and expected["skip_reason"] is None


def test_small_datasets_have_no_problem_users() -> None:
    small = Dataset(49, seed=1)
    assert all(small.expected(i)["eligible"] for i in range(small.n))
    assert SHARED_EMAIL not in {e["email_address"] for i in range(49) for e in small.user(i)["email_addresses"]}


def test_dataset_size_is_bounded() -> None:
    with pytest.raises(ValueError):
        Dataset(0)
    with pytest.raises(IndexError):
        Dataset(10).user(10)


# ----------------------------------------------------------------------------- CSV export


def test_export_csv_has_clerks_header_and_one_row_per_user(tmp_path: Path, mixed: Dataset) -> None:
    path = tmp_path / "export.csv"
    assert mixed.write_export_csv(path) == mixed.n
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    assert header == list(EXPORT_COLUMNS) and len(EXPORT_COLUMNS) == 13
    assert len(rows) == mixed.n
    assert [dict(zip(header, row, strict=True)) for row in rows[:50]] == [mixed.export_row(i) for i in range(50)]


def test_export_rows_guard_formula_cells_and_join_lists(mixed: Dataset) -> None:
    saw_multi = saw_phone = False
    for i in range(mixed.n):
        row = mixed.export_row(i)
        for column, cell in row.items():
            if cell[:1] in ("+", "=", "-", "@"):
                pytest.fail(f"user {i} column {column} is not formula-guarded: {cell!r}")
            if cell.startswith("\t"):
                assert cell[1:2] in ("+", "=", "-", "@"), (column, cell)
        if row["primary_phone_number"]:
            assert row["primary_phone_number"].startswith("\t+")
            saw_phone = True
        saw_multi |= "|" in row["verified_email_addresses"] + row["unverified_phone_numbers"]
    assert saw_multi and saw_phone


def test_many_small_organizations_up_to_one_per_ten_users() -> None:
    """``organizations``: a B2B-like tenant; every organization still has its creator as an admin member."""
    small = Dataset(200, organizations=20)
    assert small.n_organizations == 20
    memberships = list(small.memberships())
    members: dict[str, set[str]] = {}
    for m in memberships:
        members.setdefault(m["organization"]["id"], set()).add(m["public_user_data"]["user_id"])
    assert len(members) == 20 and max(len(users) for users in members.values()) <= 12
    for org in small.organizations():
        assert any(
            m["organization"]["id"] == org["id"] and m["public_user_data"]["user_id"] == org["created_by"]
            and m["role"] == "org:admin"
            for m in memberships
        )
    for wrong in (0, 21):
        with pytest.raises(ValueError, match="organizations must be between 1 and 20"):
            Dataset(200, organizations=wrong)
