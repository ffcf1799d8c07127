"""migrator.passwords: Clerk digest -> Kinde body, proven by round trips through the sandbox's real algorithms."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from migrator.models import PasswordImport, PasswordUnimportable
from migrator.passwords import (
    IMPORTABLE_HASHERS,
    KNOWN_HASHERS,
    NEEDS_SALT_POSITION,
    NOT_IMPORTABLE,
    translate,
)
from migrator.sandbox.hashing import (
    CLERK_HASHERS,
    make_clerk_digest,
    validate_kinde_password_body,
    verify_kinde_password,
)

ROUND_TRIP = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=100, deadline=None)

plaintexts = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30)
seeds = st.binary(min_size=1, max_size=16)


def wrong(plaintext: str) -> str:
    """A different password that differs in its first character (bcrypt reads only 72 bytes)."""
    return chr(ord(plaintext[0]) ^ 1) + plaintext[1:]


def imported(result: object) -> PasswordImport:
    assert isinstance(result, PasswordImport), result
    return result


def refused(result: object, *, malformed: bool) -> PasswordUnimportable:
    assert isinstance(result, PasswordUnimportable), result
    assert result.malformed is malformed, result
    return result


def digest_for(hasher: str, plaintext: str = "correct horse", position: str = "prefix") -> str:
    return make_clerk_digest(hasher, plaintext, salt=b"fixed-seed", salt_position=position)


# --- the catalogue ---


def test_catalogue_partitions_every_clerk_hasher() -> None:
    assert not IMPORTABLE_HASHERS & NEEDS_SALT_POSITION
    assert not IMPORTABLE_HASHERS & set(NOT_IMPORTABLE)
    assert not NEEDS_SALT_POSITION & set(NOT_IMPORTABLE)
    assert set(CLERK_HASHERS) | {"hmac_sha256_utf16_b64"} == KNOWN_HASHERS


def test_every_importable_hasher_can_be_generated_by_the_sandbox() -> None:
    # The round trip below is the evidence for importability; a hasher without it must not be importable.
    assert set(CLERK_HASHERS) >= IMPORTABLE_HASHERS | NEEDS_SALT_POSITION


# --- round trips: real digest -> translate -> Kinde's check ---


@pytest.mark.parametrize("hasher", sorted(IMPORTABLE_HASHERS))
@ROUND_TRIP
@given(plaintext=plaintexts, seed=seeds)
def test_importable_digest_signs_in_with_its_plaintext_only(hasher: str, plaintext: str, seed: bytes) -> None:
    digest = make_clerk_digest(hasher, plaintext, salt=seed)
    result = imported(translate(hasher, digest))
    assert result.hasher == hasher
    assert result.fields["is_temporary_password"] is False
    assert result.method == result.fields["hashing_method"]
    assert validate_kinde_password_body(result.fields) is None
    assert verify_kinde_password(result.fields, plaintext)
    assert not verify_kinde_password(result.fields, wrong(plaintext))


@pytest.mark.parametrize("hasher", sorted(NEEDS_SALT_POSITION))
@pytest.mark.parametrize("position", ["prefix", "suffix"])
@ROUND_TRIP
@given(plaintext=plaintexts, seed=seeds)
def test_salted_digest_signs_in_when_the_salt_position_is_given(
    hasher: str, position: str, plaintext: str, seed: bytes
) -> None:
    digest = make_clerk_digest(hasher, plaintext, salt=seed, salt_position=position)
    result = imported(translate(hasher, digest, salt_position=position))  # type: ignore[arg-type]
    assert result.fields["salt_position"] == position
    assert validate_kinde_password_body(result.fields) is None
    assert verify_kinde_password(result.fields, plaintext)
    assert not verify_kinde_password(result.fields, wrong(plaintext))


@pytest.mark.parametrize("hasher", sorted(NEEDS_SALT_POSITION))
def test_the_wrong_salt_position_locks_the_user_out(hasher: str) -> None:
    digest = digest_for(hasher, "hunter22", position="prefix")
    result = imported(translate(hasher, digest, salt_position="suffix"))
    assert not verify_kinde_password(result.fields, "hunter22")


@pytest.mark.parametrize("hasher", sorted(NEEDS_SALT_POSITION))
def test_salted_digest_without_a_position_is_not_imported(hasher: str) -> None:
    result = refused(translate(hasher, digest_for(hasher)), malformed=False)
    assert hasher in result.reason
    assert "salt position" in result.reason


# --- exact Kinde fields ---


def test_bcrypt_fields_and_version_normalised_to_2a() -> None:
    digest = "$2b$10$U4C0ZY8OG8y41F9LusfKyu3HRMBL0rCZcKBVsXhgr.n8Ou6FPhzO2"  # clerk/migration-tool sample
    result = imported(translate("bcrypt", digest))
    assert result.fields == {
        "hashed_password": "$2a$10$U4C0ZY8OG8y41F9LusfKyu3HRMBL0rCZcKBVsXhgr.n8Ou6FPhzO2",
        "hashing_method": "bcrypt",
        "is_temporary_password": False,
    }
    assert verify_kinde_password(result.fields, "Kk4aPMeiaRpAs2OeX1NE")


def test_hasher_name_is_matched_ignoring_case_and_whitespace() -> None:
    result = imported(translate("  BCrypt\t", digest_for("bcrypt")))
    assert result.hasher == "bcrypt"


@pytest.mark.parametrize("hasher", ["md5", "sha256"])
def test_hex_digests_are_sent_lowercase(hasher: str) -> None:
    digest = digest_for(hasher).upper()
    result = imported(translate(hasher, digest))
    assert result.fields == {
        "hashed_password": digest.lower(),
        "hashing_method": hasher,
        "is_temporary_password": False,
    }


SALTED = {"md5_salted": (hashlib.md5, 32), "sha256_salted": (hashlib.sha256, 64)}
# Salts that can never pass for a hash: any text without "$" whose length or alphabet differs from the hash's.
salts = st.text(st.characters(codec="ascii", exclude_characters="$"), min_size=1, max_size=80)


def salted_digest(hasher: str, plaintext: str, salt: str, position: str, order: str) -> str:
    """A digest in either field order: ``salt$hash`` (Clerk's docs) or ``hash$salt`` (its older spec)."""
    function, _length = SALTED[hasher]
    data = salt + plaintext if position == "prefix" else plaintext + salt
    hash_hex = function(data.encode()).hexdigest()
    return f"{salt}${hash_hex}" if order == "salt-first" else f"{hash_hex}${salt}"


def hash_shaped(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdefABCDEF" for c in text)


@pytest.mark.parametrize("hasher", sorted(SALTED))
@pytest.mark.parametrize("order", ["salt-first", "hash-first"])
@pytest.mark.parametrize("position", ["prefix", "suffix"])
@FUZZ
@given(plaintext=plaintexts, salt=salts)
def test_salted_digests_are_read_in_either_field_order(
    hasher: str, order: str, position: str, plaintext: str, salt: str
) -> None:
    assume(not hash_shaped(salt, SALTED[hasher][1]))
    digest = salted_digest(hasher, plaintext, salt, position, order)
    result = imported(translate(hasher, digest, salt_position=position))  # type: ignore[arg-type]
    assert result.fields["salt"] == salt
    assert result.fields["hashing_method"] == hasher.removesuffix("_salted")
    assert validate_kinde_password_body(result.fields) is None
    assert verify_kinde_password(result.fields, plaintext)
    assert not verify_kinde_password(result.fields, wrong(plaintext))


@pytest.mark.parametrize("hasher", sorted(SALTED))
@pytest.mark.parametrize("order", ["salt-first", "hash-first"])
@pytest.mark.parametrize("position", ["prefix", "suffix", None])
@FUZZ
@given(plaintext=plaintexts, salt_bytes=st.binary(min_size=32, max_size=32), upper=st.booleans())
def test_salted_digest_whose_salt_looks_like_a_hash_is_refused_not_guessed(
    hasher: str, order: str, position: str | None, plaintext: str, salt_bytes: bytes, upper: bool
) -> None:
    salt = salt_bytes.hex()[: SALTED[hasher][1]]
    salt = salt.upper() if upper else salt
    digest = salted_digest(hasher, plaintext, salt, position or "prefix", order)
    result = refused(translate(hasher, digest, salt_position=position), malformed=False)  # type: ignore[arg-type]
    assert result.hasher == hasher
    assert f"{hasher} digest is ambiguous" in result.reason
    assert "which one is the salt cannot be told" in result.reason
    assert salt.lower() not in result.reason.lower()  # digest text never goes into a reason


@pytest.mark.parametrize("hasher", sorted(SALTED))
def test_a_salt_of_hash_length_that_is_not_hex_is_not_ambiguous(hasher: str) -> None:
    salt = "g" * SALTED[hasher][1]
    for order in ("salt-first", "hash-first"):
        result = imported(translate(hasher, salted_digest(hasher, "pw", salt, "suffix", order), salt_position="suffix"))
        assert result.fields["salt"] == salt
        assert verify_kinde_password(result.fields, "pw")


def test_django_vector_translates_to_fusionauth_encoding() -> None:
    # Django's own test vector (auth_tests/test_hashers.py, 3.2): "lètmein" with salt "seasalt".
    digest = "pbkdf2_sha256$260000$seasalt$YlZ2Vggtqdc61YjArZuoApoBh9JNGYoDRBUGu6tcJQo="
    result = imported(translate("pbkdf2_sha256_django", digest))
    assert result.fields == {
        "hashed_password": "YlZ2Vggtqdc61YjArZuoApoBh9JNGYoDRBUGu6tcJQo=",
        "hashing_method": "pbkdf2",
        "salt": base64.b64encode(b"seasalt").decode(),
        "iterations": 260000,
        "variant": "salted-pbkdf2-hmac-sha256",
        "is_temporary_password": False,
    }
    assert verify_kinde_password(result.fields, "lètmein")
    assert not verify_kinde_password(result.fields, "lètmeinz")


def test_clerk_pbkdf2_sha256_decodes_its_base64_salt_unlike_django() -> None:
    salt, key = b"\x00\xffraw salt", hashlib.pbkdf2_hmac("sha256", b"pw", b"\x00\xffraw salt", 10)
    digest = f"pbkdf2_sha256$10${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"
    assert imported(translate("pbkdf2_sha256", digest)).fields["salt"] == base64.b64encode(salt).decode()
    assert (
        imported(translate("pbkdf2_sha256_django", digest)).fields["salt"]
        == base64.b64encode(base64.b64encode(salt)).decode()
    )


def test_unpadded_base64_is_reencoded_padded() -> None:
    key = hashlib.pbkdf2_hmac("sha256", b"pw", b"salty", 5, 32)
    digest = f"pbkdf2_sha256$5${base64.b64encode(b'salty').decode().rstrip('=')}${base64.b64encode(key).decode().rstrip('=')}"
    result = imported(translate("pbkdf2_sha256", digest))
    assert result.fields["salt"] == base64.b64encode(b"salty").decode()
    assert verify_kinde_password(result.fields, "pw")


@pytest.mark.parametrize(
    ("hasher", "algorithm", "key_length", "variant"),
    [
        ("pbkdf2_sha256", "sha256", 32, "salted-pbkdf2-hmac-sha256"),
        ("pbkdf2_sha256", "sha256", 64, "salted-pbkdf2-hmac-sha256-512"),
        ("pbkdf2_sha512", "sha512", 64, "salted-pbkdf2-hmac-sha512-512"),
        ("pbkdf2_sha512_hex", "sha512", 64, "salted-pbkdf2-hmac-sha512-512"),
    ],
)
def test_pbkdf2_variant_follows_digest_and_key_length(
    hasher: str, algorithm: str, key_length: int, variant: str
) -> None:
    key = hashlib.pbkdf2_hmac(algorithm, b"pw", b"NaCl", 3, key_length)
    salt_text = {"pbkdf2_sha256": "TmFDbA==", "pbkdf2_sha512": "NaCl", "pbkdf2_sha512_hex": b"NaCl".hex()}
    key_text = base64.b64encode(key).decode() if hasher == "pbkdf2_sha256" else key.hex()
    result = imported(translate(hasher, f"{hasher}$3${salt_text[hasher]}${key_text}"))
    assert result.fields["variant"] == variant
    assert result.fields["iterations"] == 3
    assert result.fields["salt"] == "TmFDbA=="
    assert verify_kinde_password(result.fields, "pw")


@pytest.mark.parametrize(
    ("hasher", "algorithm", "key_length"),
    [
        ("pbkdf2_sha256", "sha256", 20),
        ("pbkdf2_sha256_django", "sha256", 48),
        ("pbkdf2_sha512", "sha512", 32),
        ("pbkdf2_sha512_hex", "sha512", 128),
    ],
)
def test_pbkdf2_key_length_kinde_cannot_derive_is_not_imported(hasher: str, algorithm: str, key_length: int) -> None:
    key = hashlib.pbkdf2_hmac(algorithm, b"pw", b"NaCl", 3, key_length)
    salt_text = "TmFDbA==" if hasher != "pbkdf2_sha512_hex" else b"NaCl".hex()
    key_text = base64.b64encode(key).decode() if hasher.startswith("pbkdf2_sha256") else key.hex()
    prefix = "pbkdf2_sha256" if hasher == "pbkdf2_sha256_django" else hasher
    result = refused(translate(hasher, f"{prefix}$3${salt_text}${key_text}"), malformed=False)
    assert f"{key_length}-byte key" in result.reason


def test_pbkdf2_iterations_beyond_a_java_int_are_not_imported() -> None:
    digest = digest_for("pbkdf2_sha512").split("$")
    digest[1] = str(2**31)
    result = refused(translate("pbkdf2_sha512", "$".join(digest)), malformed=False)
    assert "iterations" in result.reason


def test_phpbb_prefix_is_sent_as_wordpress_prefix() -> None:
    # passlib's phpass vector; $H$ and $P$ share the checksum.
    result = imported(translate("md5_phpass", "$H$9aaaaaSXBjgypwqm.JsMssPLiS8YQ00"))
    assert result.fields == {
        "hashed_password": "$P$9aaaaaSXBjgypwqm.JsMssPLiS8YQ00",
        "hashing_method": "wordpress",
        "is_temporary_password": False,
    }
    assert verify_kinde_password(result.fields, "test1")


def test_firebase_vector_translates_field_by_field() -> None:
    # firebase/scrypt README: project parameters + one exported user, password "user1password".
    signer = "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA=="
    hashed = "lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ=="
    digest = f"{hashed}$42xEC+ixf3L2lw==${signer}$Bw==$8$14"  # Clerk's six-part format
    result = imported(translate("scrypt_firebase", digest))
    assert result.fields == {
        "hashed_password": hashed,
        "hashing_method": "firebase-scrypt",
        "salt": "42xEC+ixf3L2lw==",
        "signer_key": signer,
        "salt_separator": "Bw==",
        "rounds": 8,
        "mem_cost": 14,
        "is_temporary_password": False,
    }
    assert validate_kinde_password_body(result.fields) is None
    assert verify_kinde_password(result.fields, "user1password")
    assert not verify_kinde_password(result.fields, "user2password")


FIREBASE_SIGNER = "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA=="
FIREBASE_HASH = "lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ=="


def urlsafe(text: str, *, padded: bool) -> str:
    text = text.replace("+", "-").replace("/", "_")
    return text if padded else text.rstrip("=")


@pytest.mark.parametrize("padded", [True, False])
def test_firebase_vector_in_the_url_safe_alphabet_translates_to_the_same_fields(padded: bool) -> None:
    """The firebase/scrypt README's user, its hash and salt written with - and _ (they hold both + and /)."""
    parts = [FIREBASE_HASH, "42xEC+ixf3L2lw==", FIREBASE_SIGNER, "Bw=="]
    digest = "$".join([*(urlsafe(p, padded=padded) for p in parts), "8", "14"])
    assert "-" in digest and "_" in digest
    result = imported(translate("scrypt_firebase", digest))
    standard = imported(translate("scrypt_firebase", "$".join([*parts, "8", "14"])))
    assert result.fields == standard.fields
    assert result.fields["hashed_password"] == FIREBASE_HASH and result.fields["salt"] == "42xEC+ixf3L2lw=="
    assert verify_kinde_password(result.fields, "user1password")
    assert not verify_kinde_password(result.fields, "user2password")


def test_a_firebase_value_mixing_both_alphabets_is_malformed() -> None:
    mixed = FIREBASE_HASH.replace("/", "_", 1)  # still holds + and another /
    refused(translate("scrypt_firebase", f"{mixed}$42xEC+ixf3L2lw==${FIREBASE_SIGNER}$Bw==$8$14"), malformed=True)


@ROUND_TRIP
@given(plaintext=plaintexts, seed=seeds)
def test_generated_firebase_digests_in_the_url_safe_alphabet_sign_in(plaintext: str, seed: bytes) -> None:
    digest = make_clerk_digest("scrypt_firebase", plaintext, salt=seed)
    parts = digest.split("$")
    converted = "$".join([*(urlsafe(p, padded=False) for p in parts[:4]), *parts[4:]])
    result = imported(translate("scrypt_firebase", converted))
    assert verify_kinde_password(result.fields, plaintext)


@pytest.mark.parametrize(("rounds", "mem_cost"), [(0, 14), (17, 14), (8, 0), (8, 21)])
def test_firebase_parameters_outside_kindes_range_are_not_imported(rounds: int, mem_cost: int) -> None:
    parts = digest_for("scrypt_firebase").split("$")
    parts[4:] = [str(rounds), str(mem_cost)]
    result = refused(translate("scrypt_firebase", "$".join(parts)), malformed=False)
    assert "range" in result.reason


# --- missing, unknown and not importable ---


@pytest.mark.parametrize(("hasher", "digest"), [(None, None), ("", ""), ("  ", None), (None, " \t")])
def test_no_password_gives_none(hasher: str | None, digest: str | None) -> None:
    assert translate(hasher, digest) is None


def test_digest_without_hasher() -> None:
    result = refused(translate(None, digest_for("bcrypt")), malformed=True)
    assert result.hasher is None
    assert "no hasher" in result.reason


def test_hasher_without_digest() -> None:
    result = refused(translate("bcrypt", ""), malformed=True)
    assert result.hasher == "bcrypt"
    assert "without a password digest" in result.reason


@pytest.mark.parametrize("hasher", sorted(NOT_IMPORTABLE))
def test_not_importable_hasher_is_named_in_its_reason(hasher: str) -> None:
    digest = digest_for(hasher) if hasher in CLERK_HASHERS else "hmac_sha256_utf16_b64$aGFzaA==$a2V5"
    result = refused(translate(hasher, digest), malformed=False)
    assert result.hasher == hasher
    assert hasher in result.reason
    assert "Kinde" in result.reason or "not a password hash" in result.reason


def test_unknown_hasher_is_named() -> None:
    result = refused(translate("Scrypt_Custom", "whatever"), malformed=False)
    assert result.hasher == "scrypt_custom"
    assert "unknown password hasher scrypt_custom" in result.reason


def test_hasher_value_that_is_not_a_name_is_not_echoed() -> None:
    digest = digest_for("bcrypt")
    result = refused(translate(digest, "x"), malformed=False)  # columns swapped in the export
    assert result.hasher is None
    assert digest not in result.reason and digest not in repr(result)


# --- malformed digests ---


def _replace_field(digest: str, index: int, value: str) -> str:
    parts = digest.split("$")
    parts[index] = value
    return "$".join(parts)


def malformed_variants() -> list[tuple[str, str]]:
    """(hasher, digest) pairs: each a valid sandbox digest broken in one way."""
    bcrypt_ok = digest_for("bcrypt")
    pbkdf2 = digest_for("pbkdf2_sha256")
    django = digest_for("pbkdf2_sha256_django")
    sha512 = digest_for("pbkdf2_sha512")
    sha512_hex = digest_for("pbkdf2_sha512_hex")
    phpass = digest_for("phpass")
    firebase = digest_for("scrypt_firebase")
    cases = {
        "bcrypt": [
            "$2x$" + bcrypt_ok[4:],
            "$2a$03$" + bcrypt_ok[7:],
            "$2a$32$" + bcrypt_ok[7:],
            bcrypt_ok[:-1],
            bcrypt_ok[:-1] + "!",
            bcrypt_ok[1:],
            "bcrypt$" + bcrypt_ok,
        ],
        "md5": [digest_for("md5")[:-1], digest_for("md5") + "0", "g" * 32, digest_for("md5") + "$x"],
        "sha256": [digest_for("sha256")[:-1], "z" * 64, " " + digest_for("sha256")[1:]],
        "md5_salted": ["nodollar" + "0" * 32, "$" + "0" * 32, "salt$" + "0" * 31, "salt$" + "x" * 32],
        "sha256_salted": ["salt" + "0" * 64, "$" + "0" * 64, "salt$" + "0" * 63, "salt$" + "q" * 64],
        "pbkdf2_sha256": [
            "pbkdf2_sha25" + pbkdf2[13:],
            pbkdf2.rpartition("$")[0],
            pbkdf2 + "$32",
            _replace_field(pbkdf2, 1, "abc"),
            _replace_field(pbkdf2, 1, "0"),
            _replace_field(pbkdf2, 1, "１０"),
            _replace_field(pbkdf2, 2, "!!!!"),
            _replace_field(pbkdf2, 2, ""),
            _replace_field(pbkdf2, 3, "a"),
            _replace_field(pbkdf2, 3, "aGVsbG8=x"),
        ],
        "pbkdf2_sha256_django": [
            django.rpartition("$")[0],
            _replace_field(django, 1, "-1"),
            _replace_field(django, 2, ""),
            _replace_field(django, 3, "@@@@"),
            _replace_field(django, 3, ""),
        ],
        "pbkdf2_sha512": [
            _replace_field(sha512, 0, "pbkdf2_sha256"),
            _replace_field(sha512, 3, sha512.rpartition("$")[2][:-1]),
            _replace_field(sha512, 3, "zz" * 64),
            sha512 + "$64",
        ],
        "pbkdf2_sha512_hex": [
            _replace_field(sha512_hex, 2, "not-hex"),
            _replace_field(sha512_hex, 2, "abc"),
            _replace_field(sha512_hex, 3, "0" * 127),
            _replace_field(sha512_hex, 0, "pbkdf2_sha512"),
        ],
        "phpass": [
            "$X$" + phpass[3:],
            phpass[:3] + "4" + phpass[4:],  # 2**6 rounds: below phpass's minimum
            phpass[:3] + "T" + phpass[4:],  # 2**31 rounds: above its maximum
            phpass[:-1],
            phpass[:-1] + "!",
        ],
        "md5_phpass": ["$P$" + phpass[3:-2], "md5" + phpass],
        "scrypt_firebase": [
            firebase.rpartition("$")[0],
            firebase + "$1",
            _replace_field(firebase, 4, "x"),
            _replace_field(firebase, 0, "not base64!"),
            _replace_field(firebase, 3, ""),
            _replace_field(firebase, 0, base64.b64encode(b"short").decode()),
            _replace_field(firebase, 2, "Zm9v="),
        ],
    }
    return [(hasher, digest) for hasher, digests in cases.items() for digest in digests]


MALFORMED = malformed_variants()


@pytest.mark.parametrize(("hasher", "digest"), MALFORMED)
def test_malformed_digest_is_a_per_user_error(hasher: str, digest: str) -> None:
    result = refused(translate(hasher, digest, salt_position="prefix"), malformed=True)
    assert result.hasher == hasher
    assert result.reason.startswith(f"malformed {hasher} digest (expected ")


def test_every_importable_hasher_has_malformed_cases() -> None:
    assert {hasher for hasher, _ in MALFORMED} == IMPORTABLE_HASHERS | NEEDS_SALT_POSITION


def digest_shaped_text() -> st.SearchStrategy[str]:
    """Text that gets past the first checks: a real prefix, then $-separated random fields."""
    prefixes = st.sampled_from(
        ["", "$2a$", "$2b$10$", "$P$", "$H$9", "pbkdf2_sha256$", "pbkdf2_sha512$", "pbkdf2_sha512_hex$"]
    )
    field = st.text(alphabet="0123456789abcdefABCDEF+/=.$_-!é", max_size=24)
    return st.builds(lambda p, fs: p + "$".join(fs), prefixes, st.lists(field, max_size=7))


# Hashers that are not importable never parse the digest; one of them stands for all.
@pytest.mark.parametrize("hasher", sorted(IMPORTABLE_HASHERS | NEEDS_SALT_POSITION | {"argon2id", "no_such"}))
@FUZZ
@given(digest=st.one_of(st.text(max_size=120), digest_shaped_text()))
def test_random_text_never_raises(hasher: str, digest: str) -> None:
    result = translate(hasher, digest, salt_position="suffix")
    assert result is None or isinstance(result, PasswordImport | PasswordUnimportable)
    if isinstance(result, PasswordUnimportable) and result.malformed and digest.strip():
        assert result.reason.startswith(f"malformed {hasher} digest")
    if isinstance(result, PasswordImport):
        assert validate_kinde_password_body(result.fields) is None


# --- no digest text anywhere it could be printed ---


def _secret_parts(digest: str) -> list[str]:
    """The digest and every long piece of it: the hash, the salt, the signer key."""
    format_words = KNOWN_HASHERS | {"bcrypt_sha256"}  # prefixes that name the format, not secrets
    pieces = [digest, *digest.replace("#", "$").split("$")]
    return [p for p in pieces if len(p) >= 8 and not any(p in word for word in format_words)]


VALID_DIGESTS = [(h, digest_for(h)) for h in CLERK_HASHERS]


@pytest.mark.parametrize(("hasher", "digest"), VALID_DIGESTS + MALFORMED)
def test_no_digest_text_in_reason_or_repr(hasher: str, digest: str) -> None:
    for result in (translate(hasher, digest), translate(hasher, digest, salt_position="prefix")):
        assert result is not None
        printed = repr(result) + str(result) + getattr(result, "reason", "")
        for secret in _secret_parts(digest):
            assert secret not in printed, (hasher, "digest text leaked")
