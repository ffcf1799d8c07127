"""migrator.sandbox.hashing: the algorithms are the real ones (published vectors, second implementations),
and Kinde's request rules hold both ways."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
from argon2 import PasswordHasher
from hypothesis import given, settings
from hypothesis import strategies as st
from passlib.hash import django_pbkdf2_sha256, ldap_salted_sha1, phpass
from werkzeug.security import check_password_hash

from migrator.sandbox.hashing import (
    CLERK_HASHERS,
    make_clerk_digest,
    validate_kinde_password_body,
    verify_kinde_password,
)

FIREBASE_SIGNER_KEY = "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA=="
FIREBASE_HASH = "lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ=="


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def firebase_record(**overrides: Any) -> dict[str, Any]:
    """firebase/scrypt README: its sample project parameters and exported user (password user1password)."""
    record = {
        "hashed_password": FIREBASE_HASH,
        "hashing_method": "firebase-scrypt",
        "salt": "42xEC+ixf3L2lw==",
        "signer_key": FIREBASE_SIGNER_KEY,
        "salt_separator": "Bw==",
        "rounds": 8,
        "mem_cost": 14,
    }
    return record | overrides


# --- Kinde's check against published vectors ---

KNOWN_ANSWERS: list[tuple[str, dict[str, Any], str]] = [
    # OpenBSD's bcrypt test vector.
    ("bcrypt-openbsd", {"hashed_password": "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"}, "U*U"),
    # clerk/migration-tool samples/clerk.csv: its comment gives the password.
    (
        "bcrypt-clerk-sample",
        {"hashed_password": "$2b$10$U4C0ZY8OG8y41F9LusfKyu3HRMBL0rCZcKBVsXhgr.n8Ou6FPhzO2", "hashing_method": "bcrypt"},
        "Kk4aPMeiaRpAs2OeX1NE",
    ),
    # phpass's own test.php vector, and passlib's phpBB ($H$) vector.
    ("phpass", {"hashed_password": "$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0", "hashing_method": "wordpress"}, "test12345"),
    ("phpass-H", {"hashed_password": "$H$9aaaaaSXBjgypwqm.JsMssPLiS8YQ00", "hashing_method": "wordpress"}, "test1"),
    # glibc's crypt tests (Drepper's SHA-crypt specification and md5-crypt).
    ("md5-crypt", {"hashed_password": "$1$saltstri$YMyguxXMBpd2TEZ.vS/3q1", "hashing_method": "crypt"}, "Hello world!"),
    (
        "sha256-crypt",
        {"hashed_password": "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", "hashing_method": "crypt"},
        "Hello world!",
    ),
    (
        "sha512-crypt",
        {
            "hashed_password": "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
            "hashing_method": "crypt",
        },
        "Hello world!",
    ),
    # Django 3.2's test vector, carried as FusionAuth's fields: salt base64, key base64.
    (
        "pbkdf2-django",
        {
            "hashed_password": "YlZ2Vggtqdc61YjArZuoApoBh9JNGYoDRBUGu6tcJQo=",
            "hashing_method": "pbkdf2",
            "variant": "salted-pbkdf2-hmac-sha256",
            "salt": b64(b"seasalt"),
            "iterations": 260000,
        },
        "lètmein",
    ),
    # RFC 7914 section 11: PBKDF2-HMAC-SHA256, P="passwd", S="salt", c=1, dkLen=64.
    (
        "pbkdf2-rfc7914",
        {
            "hashed_password": b64(
                bytes.fromhex(
                    "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
                    "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
                )
            ),
            "hashing_method": "pbkdf2",
            "variant": "salted-pbkdf2-hmac-sha256-512",
            "salt": b64(b"salt"),
            "iterations": 1,
        },
        "passwd",
    ),
    # The widely published PBKDF2-HMAC-SHA512 vector: P="password", S="salt", c=1, dkLen=64.
    (
        "pbkdf2-sha512",
        {
            "hashed_password": b64(
                bytes.fromhex(
                    "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252"
                    "c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce"
                )
            ),
            "hashing_method": "pbkdf2",
            "variant": "salted-pbkdf2-hmac-sha512-512",
            "salt": b64(b"salt"),
            "iterations": 1,
        },
        "password",
    ),
    ("firebase-scrypt", firebase_record(), "user1password"),
    # An ASP.NET Identity V2 hash from the aspnet-identity-pw npm package's tests.
    (
        "aspnet-identity-v2",
        {
            "hashed_password": "AFcg3t2gm81Guu+i08t6u4Hm00M1COvYfXvX8jwHMIBxS0sVsj6UHkk2qww8l4x/QA==",
            "hashing_method": "aspnet-identity-v2",
        },
        "!passwordSecure123ASPV2",
    ),
    # The md5 and sha256 examples in Clerk's create-user docs ("password" and "test").
    ("md5", {"hashed_password": "5f4dcc3b5aa765d61d8327deb882cf99", "hashing_method": "md5"}, "password"),
    (
        "sha256",
        {
            "hashed_password": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "hashing_method": "sha256",
        },
        "test",
    ),
]


@pytest.mark.parametrize(
    ("record", "plaintext"), [(r, p) for _, r, p in KNOWN_ANSWERS], ids=[n for n, _, _ in KNOWN_ANSWERS]
)
def test_known_answer_signs_in(record: dict[str, Any], plaintext: str) -> None:
    assert verify_kinde_password(record, plaintext)
    assert not verify_kinde_password(record, plaintext + "x")


def test_pbkdf2_iterations_default_to_fusionauths_24000() -> None:
    key = hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 24000, 32)
    record = {
        "hashed_password": b64(key),
        "hashing_method": "pbkdf2",
        "variant": "salted-pbkdf2-hmac-sha256",
        "salt": b64(b"salt"),
    }
    assert verify_kinde_password(record, "pw")
    assert not verify_kinde_password(record | {"iterations": 23999}, "pw")


@pytest.mark.parametrize(
    ("salt", "position", "data"),
    [("pepper", "prefix", b"pepperpassword"), ("pepper", "suffix", b"passwordpepper")],
)
@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_salted_digest_uses_salt_position(algorithm: str, salt: str, position: str, data: bytes) -> None:
    record = {
        "hashed_password": hashlib.new(algorithm, data).hexdigest(),
        "hashing_method": algorithm,
        "salt": salt,
        "salt_position": position,
    }
    assert verify_kinde_password(record, "password")
    other = "suffix" if position == "prefix" else "prefix"
    assert not verify_kinde_password(record | {"salt_position": other}, "password")
    assert not verify_kinde_password({k: v for k, v in record.items() if k != "salt_position"}, "password")


def test_firebase_check_is_the_modified_scrypt_not_plain_scrypt() -> None:
    plain = hashlib.scrypt(
        b"user1password",
        salt=base64.b64decode("42xEC+ixf3L2lw==") + b"\x07",
        n=2**14,
        r=8,
        p=1,
        dklen=64,
    )
    assert not verify_kinde_password(firebase_record(hashed_password=b64(plain)), "user1password")
    assert not verify_kinde_password(firebase_record(salt_separator="CA=="), "user1password")


def test_bcrypt_reads_only_72_bytes_like_every_bcrypt() -> None:
    digest = make_clerk_digest("bcrypt", "a" * 72, salt=b"s")
    record = {"hashed_password": digest, "hashing_method": "bcrypt"}
    assert verify_kinde_password(record, "a" * 72 + "anything")


# --- Kinde's check never raises ---

INCONSISTENT_RECORDS: list[Any] = [
    None,
    [],
    {},
    {"hashed_password": 5},
    {"hashed_password": "x", "hashing_method": "argon2"},
    {"hashed_password": "x", "hashing_method": 7},
    {"hashed_password": "$2a$04$short"},
    {"hashed_password": "abc", "hashing_method": "md5", "salt": 3, "salt_position": "prefix"},
    {"hashed_password": "abc", "hashing_method": "md5", "salt": "s", "salt_position": "middle"},
    {"hashed_password": "abc", "hashing_method": "pbkdf2", "salt": "c2FsdA==", "variant": "nope"},
    {"hashed_password": "abc", "hashing_method": "pbkdf2", "salt": "!!", "variant": "salted-pbkdf2-hmac-sha256"},
    {"hashed_password": "abc", "hashing_method": "pbkdf2", "variant": "salted-pbkdf2-hmac-sha256"},
    {
        "hashed_password": "abc",
        "hashing_method": "pbkdf2",
        "salt": "c2FsdA==",
        "variant": "salted-pbkdf2-hmac-sha256",
        "iterations": True,
    },
    firebase_record(rounds="8"),
    firebase_record(mem_cost=20, rounds=16),  # needs 2 GiB: beyond what the sandbox allocates
    firebase_record(signer_key=None),
    firebase_record(hashed_password="not base64"),
    {"hashed_password": "AAAA", "hashing_method": "aspnet-identity-v2"},
    {"hashed_password": "$9$nope", "hashing_method": "crypt"},
    {"hashed_password": "$P$short", "hashing_method": "wordpress"},
]


@pytest.mark.parametrize("record", INCONSISTENT_RECORDS)
def test_inconsistent_record_is_refused(record: Any) -> None:
    assert verify_kinde_password(record, "password") is False


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
record_keys = st.sampled_from(
    [
        "hashed_password",
        "hashing_method",
        "salt",
        "salt_position",
        "iterations",
        "variant",
        "signer_key",
        "salt_separator",
        "rounds",
        "mem_cost",
    ]
)
methods = st.sampled_from(
    ["bcrypt", "crypt", "md5", "sha256", "wordpress", "pbkdf2", "firebase-scrypt", "aspnet-identity-v2"]
)


@settings(max_examples=200, deadline=None)
@given(method=methods, fields=st.dictionaries(record_keys, json_values, max_size=10), plaintext=st.text(max_size=10))
def test_random_records_never_raise(method: str, fields: dict[str, Any], plaintext: str) -> None:
    record = {"hashing_method": method} | fields
    assert verify_kinde_password(record, plaintext) in (True, False)
    result = validate_kinde_password_body(record)
    assert result is None or isinstance(result, str)


# --- Clerk digests: real algorithms, Clerk's formats ---


def digest(hasher: str, plaintext: str = "correct horse", salt: bytes = b"seed", **kwargs: str) -> str:
    return make_clerk_digest(hasher, plaintext, salt=salt, **kwargs)


CLERK_FORMATS = {
    # Clerk's documented shapes (clerk-docs create-user-params.mdx), or the producing library's own.
    "argon2i": r"\$argon2i\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+",
    "argon2id": r"\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+",
    "awscognito": r"awscognito#[^#]+#[^#]+#[^#]+",
    "bcrypt": r"\$2[aby]\$04\$[./A-Za-z0-9]{53}",
    "bcrypt_peppered": r"\$2b\$04\$[./A-Za-z0-9]{53}\$[A-Za-z0-9]+",
    "bcrypt_sha256_django": r"bcrypt_sha256\$\$2b\$04\$[./A-Za-z0-9]{53}",
    "ldap_ssha": r"\{SSHA\}[A-Za-z0-9+/]+=*",
    "md5": r"[0-9a-f]{32}",
    "md5_phpass": r"\$H\$5[./0-9A-Za-z]{30}",
    "md5_salted": r"[0-9a-f]{16}\$[0-9a-f]{32}",
    "pbkdf2_sha1": r"pbkdf2_sha1\$\d+\$[0-9a-f]+\$[0-9a-f]{64}\$32",
    "pbkdf2_sha256": r"pbkdf2_sha256\$\d+\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*",
    "pbkdf2_sha256_django": r"pbkdf2_sha256\$\d+\$[A-Za-z0-9]+\$[A-Za-z0-9+/]{43}=",
    "pbkdf2_sha512": r"pbkdf2_sha512\$\d+\$[A-Za-z0-9]+\$[0-9a-f]{128}",
    "pbkdf2_sha512_hex": r"pbkdf2_sha512_hex\$\d+\$[0-9a-f]+\$[0-9a-f]{128}",
    "phpass": r"\$P\$5[./0-9A-Za-z]{30}",
    "scrypt_firebase": r"[A-Za-z0-9+/]{86}==\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]{86}==\$[A-Za-z0-9+/]+=*\$\d+\$\d+",
    "scrypt_werkzeug": r"scrypt:\d+:\d+:\d+\$[A-Za-z0-9]+\$[0-9a-f]{128}",
    "sha256": r"[0-9a-f]{64}",
    "sha256_salted": r"[0-9a-f]{16}\$[0-9a-f]{64}",
    "sha512_symfony": r"sha512_symfony\$[1-9]\d*\$[A-Za-z0-9]+\$[A-Za-z0-9+/]+=*",
}


def test_every_clerk_hasher_has_a_format() -> None:
    assert set(CLERK_FORMATS) == set(CLERK_HASHERS)


@pytest.mark.parametrize("hasher", CLERK_HASHERS)
def test_digest_has_clerks_shape_and_is_deterministic(hasher: str) -> None:
    made = digest(hasher)
    assert re.fullmatch(CLERK_FORMATS[hasher], made), hasher
    assert digest(hasher) == made
    assert digest(hasher, salt=b"another seed") != made or hasher in ("md5", "sha256")  # unsalted
    assert digest(hasher, plaintext="another password") != made or hasher == "awscognito"


def test_unknown_hasher_cannot_be_generated() -> None:
    with pytest.raises(ValueError, match="hmac_sha256_utf16_b64"):
        digest("hmac_sha256_utf16_b64")


# Second implementations: the digests verify with code other than the sandbox's own.


def test_django_digest_verifies_with_passlib() -> None:
    assert django_pbkdf2_sha256.verify("correct horse", digest("pbkdf2_sha256_django"))
    assert not django_pbkdf2_sha256.verify("wrong horse", digest("pbkdf2_sha256_django"))


def test_argon2_digests_verify_with_argon2_cffi() -> None:
    for hasher in ("argon2i", "argon2id"):
        assert PasswordHasher().verify(digest(hasher), "correct horse")


def test_werkzeug_digest_verifies_with_werkzeug() -> None:
    assert check_password_hash(digest("scrypt_werkzeug"), "correct horse")
    assert not check_password_hash(digest("scrypt_werkzeug"), "wrong horse")


def test_ldap_ssha_digest_verifies_with_passlib() -> None:
    assert ldap_salted_sha1.verify("correct horse", digest("ldap_ssha"))


def test_phpass_digests_verify_with_passlib() -> None:
    for hasher in ("phpass", "md5_phpass"):
        assert phpass.verify("correct horse", digest(hasher))


@pytest.mark.parametrize(
    ("hasher", "algorithm", "decode_salt"),
    [
        ("pbkdf2_sha256", "sha256", base64.b64decode),
        ("pbkdf2_sha512", "sha512", str.encode),
        ("pbkdf2_sha512_hex", "sha512", bytes.fromhex),
        ("pbkdf2_sha1", "sha1", bytes.fromhex),
    ],
)
def test_pbkdf2_digests_decode_to_the_derived_key(hasher: str, algorithm: str, decode_salt: Any) -> None:
    _, iterations, salt_text, key_text, *_ = digest(hasher).split("$")
    key = base64.b64decode(key_text) if hasher == "pbkdf2_sha256" else bytes.fromhex(key_text)
    derived = hashlib.pbkdf2_hmac(algorithm, b"correct horse", decode_salt(salt_text), int(iterations), len(key))
    assert derived == key


@pytest.mark.parametrize("position", ["prefix", "suffix"])
def test_salted_digests_put_the_salt_where_asked(position: str) -> None:
    salt, hash_hex = digest("md5_salted", salt_position=position).split("$")
    data = salt + "correct horse" if position == "prefix" else "correct horse" + salt
    assert hashlib.md5(data.encode()).hexdigest() == hash_hex


def test_peppered_and_django_bcrypt_hash_what_their_frameworks_hash() -> None:
    import bcrypt

    peppered, _, pepper = digest("bcrypt_peppered").rpartition("$")
    assert bcrypt.checkpw(b"correct horse" + pepper.encode(), peppered.encode())
    django = digest("bcrypt_sha256_django").removeprefix("bcrypt_sha256$")
    assert bcrypt.checkpw(hashlib.sha256(b"correct horse").hexdigest().encode(), django.encode())


def test_symfony_digest_follows_messagedigestpasswordencoder() -> None:
    _, iterations, salt, encoded = digest("sha512_symfony").split("$")
    salted = f"correct horse{{{salt}}}".encode()
    value = hashlib.sha512(salted).digest()
    for _ in range(int(iterations) - 1):
        value = hashlib.sha512(value + salted).digest()
    assert base64.b64decode(encoded) == value


# --- validate_kinde_password_body: every rule, both ways ---

BCRYPT = "$2a$04$" + "a" * 53
PBKDF2 = {
    "hashed_password": "aGFzaA==",
    "hashing_method": "pbkdf2",
    "salt": "c2FsdA==",
    "variant": "salted-pbkdf2-hmac-sha256",
}
FIREBASE = firebase_record()
ASPNET = {
    "hashed_password": "AFcg3t2gm81Guu+i08t6u4Hm00M1COvYfXvX8jwHMIBxS0sVsj6UHkk2qww8l4x/QA==",
    "hashing_method": "aspnet-identity-v2",
}

VALID_BODIES: list[dict[str, Any]] = [
    {"hashed_password": BCRYPT},
    {"hashed_password": BCRYPT, "hashing_method": "bcrypt", "is_temporary_password": False},
    {"hashed_password": "$2y$31$" + "b" * 53},
    {"hashed_password": "0" * 32, "hashing_method": "md5"},
    {"hashed_password": "A" * 64, "hashing_method": "sha256", "salt": "s", "salt_position": "suffix"},
    {"hashed_password": "$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0", "hashing_method": "wordpress"},
    {"hashed_password": "$6$salt$hash", "hashing_method": "crypt", "salt": "salt"},
    PBKDF2,
    PBKDF2 | {"iterations": 1000, "variant": "salted-pbkdf2-hmac-sha512-512"},
    FIREBASE,
    FIREBASE | {"rounds": 1, "mem_cost": 1},
    FIREBASE | {"rounds": 16, "mem_cost": 20},
    ASPNET,
    ASPNET | {"is_temporary_password": True},
]

INVALID_BODIES: list[tuple[Any, str]] = [
    ([], "JSON object"),
    ({}, "hashed_password is required"),
    ({"hashed_password": None}, "hashed_password is required"),
    ({"hashed_password": 5}, "hashed_password must be a non-empty string"),
    ({"hashed_password": ""}, "hashed_password must be a non-empty string"),
    ({"hashed_password": BCRYPT, "hashing_method": "argon2"}, "hashing_method must be one of"),
    ({"hashed_password": BCRYPT, "hashing_method": ""}, "hashing_method must be one of"),
    ({"hashed_password": BCRYPT, "is_temporary_password": "no"}, "is_temporary_password must be a boolean"),
    ({"hashed_password": "$2a$03$" + "a" * 53}, "not a bcrypt hash"),
    ({"hashed_password": "$2a$32$" + "a" * 53}, "not a bcrypt hash"),
    ({"hashed_password": "$2x$10$" + "a" * 53}, "not a bcrypt hash"),
    ({"hashed_password": "$2a$10$" + "a" * 52}, "not a bcrypt hash"),
    ({"hashed_password": "5f4dcc3b"}, "not a bcrypt hash"),
    ({"hashed_password": "0" * 31, "hashing_method": "md5"}, "32 hexadecimal"),
    ({"hashed_password": "g" * 64, "hashing_method": "sha256"}, "64 hexadecimal"),
    ({"hashed_password": "0" * 32, "hashing_method": "md5", "salt": "s"}, "salt_position is required"),
    ({"hashed_password": BCRYPT, "salt_position": "middle"}, "salt_position must be prefix or suffix"),
    ({"hashed_password": BCRYPT, "salt": 5}, "salt must be a string"),
    ({"hashed_password": BCRYPT, "iterations": 0}, "iterations must be a positive integer"),
    ({"hashed_password": BCRYPT, "iterations": True}, "iterations must be a positive integer"),
    ({k: v for k, v in PBKDF2.items() if k != "salt"}, "salt is required for pbkdf2"),
    (PBKDF2 | {"salt": "not base64!"}, "salt must be base64 for pbkdf2"),
    ({k: v for k, v in PBKDF2.items() if k != "variant"}, "variant is required for pbkdf2"),
    (PBKDF2 | {"variant": "salted-pbkdf2-hmac-sha1"}, "variant is required for pbkdf2"),
    (PBKDF2 | {"iterations": -5}, "iterations must be a positive integer"),
    (PBKDF2 | {"rounds": 8}, "rounds is only accepted for firebase-scrypt"),
    ({"hashed_password": BCRYPT, "signer_key": "a2V5"}, "signer_key is only accepted for firebase-scrypt"),
    (
        {"hashed_password": "0" * 32, "hashing_method": "md5", "salt_separator": "Bw=="},
        "salt_separator is only accepted",
    ),
    ({"hashed_password": "x", "hashing_method": "wordpress", "mem_cost": 14}, "mem_cost is only accepted"),
    (FIREBASE | {"iterations": 1000}, "iterations is not accepted for firebase-scrypt"),
    (FIREBASE | {"variant": "salted-pbkdf2-hmac-sha256"}, "variant is not accepted for firebase-scrypt"),
    ({k: v for k, v in FIREBASE.items() if k != "salt"}, "salt is required for firebase-scrypt"),
    ({k: v for k, v in FIREBASE.items() if k != "signer_key"}, "signer_key is required for firebase-scrypt"),
    ({k: v for k, v in FIREBASE.items() if k != "salt_separator"}, "salt_separator is required"),
    (FIREBASE | {"signer_key": "%%%"}, "signer_key must be base64"),
    (FIREBASE | {"rounds": 0}, "rounds is required for firebase-scrypt and must be an integer from 1 to 16"),
    (FIREBASE | {"rounds": 17}, "from 1 to 16"),
    (FIREBASE | {"rounds": None}, "from 1 to 16"),
    (FIREBASE | {"mem_cost": 21}, "from 1 to 20"),
    (FIREBASE | {"mem_cost": 0}, "from 1 to 20"),
    (FIREBASE | {"mem_cost": 14.0}, "from 1 to 20"),
    (FIREBASE | {"hashed_password": "not base64!"}, "hashed_password must be base64"),
    (ASPNET | {"salt": "c2FsdA=="}, "aspnet-identity-v2 accepts only hashed_password (got salt)"),
    (ASPNET | {"salt_position": "prefix"}, "aspnet-identity-v2 accepts only hashed_password (got salt_position)"),
    (ASPNET | {"iterations": 1000}, "aspnet-identity-v2 accepts only hashed_password (got iterations)"),
    (ASPNET | {"variant": "salted-pbkdf2-hmac-sha256"}, "(got variant)"),
]


@pytest.mark.parametrize("body", VALID_BODIES)
def test_valid_body_is_accepted(body: dict[str, Any]) -> None:
    assert validate_kinde_password_body(body) is None


@pytest.mark.parametrize(("body", "message"), INVALID_BODIES)
def test_invalid_body_is_refused_with_its_rule(body: Any, message: str) -> None:
    error = validate_kinde_password_body(body)
    assert error is not None and message in error


def test_errors_never_echo_the_hash() -> None:
    secret = "$2a$03$" + "S" * 53
    error = validate_kinde_password_body({"hashed_password": secret})
    assert error is not None and "SSSS" not in error
