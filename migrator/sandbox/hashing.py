"""The sandbox's password algorithms: make Clerk digests, check passwords the way Kinde does.

Why this module exists: the only evidence that a translation in ``migrator.passwords`` is correct
is a round trip. A digest computed by the real algorithm from a known plaintext, in Clerk's export
format, goes through the migrator into the Kinde emulator, and the emulator's sign-in check must
accept that plaintext and refuse any other. So the algorithms here are the real ones, taken from
libraries (bcrypt, passlib/libpass, argon2-cffi, hashlib, cryptography), and the tests pin them to
published test vectors. None of this module's code is shared with ``migrator.passwords``: a shared
mistake would cancel itself out.

Parameters are the cheapest that each format allows, so the data generator can build large pools.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import string
from collections.abc import Callable, Mapping
from typing import Any

import bcrypt
from argon2.low_level import Type as Argon2Type
from argon2.low_level import hash_secret as argon2_hash_secret
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from passlib.hash import ldap_salted_sha1, md5_crypt, phpass, sha256_crypt, sha512_crypt
from passlib.utils.binary import bcrypt64

CLERK_HASHERS: tuple[str, ...] = (
    "argon2i",
    "argon2id",
    "awscognito",
    "bcrypt",
    "bcrypt_peppered",
    "bcrypt_sha256_django",
    "ldap_ssha",
    "md5",
    "md5_phpass",
    "md5_salted",
    "pbkdf2_sha1",
    "pbkdf2_sha256",
    "pbkdf2_sha256_django",
    "pbkdf2_sha512",
    "pbkdf2_sha512_hex",
    "phpass",
    "scrypt_firebase",
    "scrypt_werkzeug",
    "sha256",
    "sha256_salted",
    "sha512_symfony",
)
# Left out: hmac_sha256_utf16_b64 (Clerk's migration tool names it, but no source gives its key
# or byte order, so we cannot compute a correct digest for it).

KINDE_HASHING_METHODS: tuple[str, ...] = (
    "bcrypt",
    "crypt",
    "md5",
    "sha256",
    "wordpress",
    "pbkdf2",
    "firebase-scrypt",
    "aspnet-identity-v2",
)
KINDE_PBKDF2_VARIANTS: Mapping[str, tuple[str, int]] = {
    "salted-pbkdf2-hmac-sha256": ("sha256", 32),
    "salted-pbkdf2-hmac-sha256-512": ("sha256", 64),
    "salted-pbkdf2-hmac-sha512-512": ("sha512", 64),
}
KINDE_DEFAULT_PBKDF2_ITERATIONS = 24_000  # FusionAuth's default factor, per Kinde's spec
FIREBASE_ONLY_FIELDS = ("signer_key", "salt_separator", "rounds", "mem_cost")
ASPNET_ALLOWED_FIELDS = frozenset({"hashed_password", "hashing_method", "is_temporary_password"})

_CHEAP_BCRYPT_COST = 4
_CHEAP_PBKDF2_ITERATIONS = (500, 750, 1000)
_PHPASS_MIN_ROUNDS = 7  # log2; phpass's minimum
_WERKZEUG_CHEAP_SCRYPT = (1024, 1, 1)  # n, r, p: about the least Werkzeug itself will verify
_SYMFONY_ITERATIONS = 2
_BCRYPT_MAX_BYTES = 72  # bcrypt reads no further
_SCRYPT_MAX_MEMORY = 64 * 1024 * 1024  # the sandbox refuses to allocate more than this
_ALPHANUMERIC = string.ascii_letters + string.digits

_BCRYPT_SHAPE = re.compile(r"\$2[aby]\$(?:0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?")


# --- generating Clerk digests ---


def make_clerk_digest(hasher: str, plaintext: str, *, salt: bytes, salt_position: str = "prefix") -> str:
    """``plaintext`` hashed by ``hasher``'s real algorithm, in Clerk's export format.

    ``salt`` seeds everything random (salt, pepper, version, iterations), so equal inputs give equal
    digests. ``salt_position`` ("prefix" or "suffix") only matters for md5_salted and sha256_salted,
    whose digests do not record it. Raises ValueError for a hasher outside ``CLERK_HASHERS``.
    """
    maker = _MAKERS.get(hasher)
    if maker is None:
        raise ValueError(f"no digest generator for Clerk hasher {hasher!r}")
    if salt_position not in ("prefix", "suffix"):
        raise ValueError("salt_position must be 'prefix' or 'suffix'")
    return maker(plaintext, _Seed(salt), salt_position)


class _Seed:
    """Deterministic material derived from the caller's salt, one independent stream per label."""

    def __init__(self, salt: bytes) -> None:
        self._salt = bytes(salt)

    def bytes(self, label: str, size: int) -> bytes:
        return hashlib.shake_256(label.encode() + b"\x00" + self._salt).digest(size)

    def choice(self, label: str, options: tuple[Any, ...]) -> Any:
        return options[self.bytes(label, 1)[0] % len(options)]

    def text(self, label: str, size: int, alphabet: str = _ALPHANUMERIC) -> str:
        return "".join(alphabet[b % len(alphabet)] for b in self.bytes(label, size))


def _bcrypt_hash(secret: bytes, seed: _Seed, version: str = "2b") -> str:
    salt22 = bcrypt64.encode_bytes(seed.bytes("bcrypt-salt", 16)).decode()
    setting = f"${version}${_CHEAP_BCRYPT_COST:02d}${salt22}".encode()
    return bcrypt.hashpw(secret[:_BCRYPT_MAX_BYTES], setting).decode()


def _make_bcrypt(plaintext: str, seed: _Seed, _: str) -> str:
    return _bcrypt_hash(plaintext.encode(), seed, seed.choice("bcrypt-version", ("2a", "2b", "2y")))


def _make_bcrypt_sha256_django(plaintext: str, seed: _Seed, _: str) -> str:
    prehash = hashlib.sha256(plaintext.encode()).hexdigest().encode()  # Django's BCryptSHA256
    return "bcrypt_sha256$" + _bcrypt_hash(prehash, seed)


def _make_bcrypt_peppered(plaintext: str, seed: _Seed, _: str) -> str:
    pepper = seed.text("pepper", 16)  # Devise: bcrypt(password + pepper)
    return _bcrypt_hash((plaintext + pepper).encode(), seed) + "$" + pepper


def _make_md5(plaintext: str, seed: _Seed, _: str) -> str:
    return hashlib.md5(plaintext.encode()).hexdigest()


def _make_sha256(plaintext: str, seed: _Seed, _: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _salted_input(plaintext: str, salt: str, position: str) -> bytes:
    return (salt + plaintext if position == "prefix" else plaintext + salt).encode()


def _make_md5_salted(plaintext: str, seed: _Seed, position: str) -> str:
    salt = seed.bytes("salted", 8).hex()
    return f"{salt}${hashlib.md5(_salted_input(plaintext, salt, position)).hexdigest()}"


def _make_sha256_salted(plaintext: str, seed: _Seed, position: str) -> str:
    salt = seed.bytes("salted", 8).hex()
    return f"{salt}${hashlib.sha256(_salted_input(plaintext, salt, position)).hexdigest()}"


def _iterations(seed: _Seed) -> int:
    return seed.choice("iterations", _CHEAP_PBKDF2_ITERATIONS)


def _make_pbkdf2_sha1(plaintext: str, seed: _Seed, _: str) -> str:
    salt, iterations = seed.bytes("pbkdf2-salt", 16), _iterations(seed)
    key = hashlib.pbkdf2_hmac("sha1", plaintext.encode(), salt, iterations, 32)
    return f"pbkdf2_sha1${iterations}${salt.hex()}${key.hex()}$32"


def _make_pbkdf2_sha256(plaintext: str, seed: _Seed, _: str) -> str:
    salt, iterations = seed.bytes("pbkdf2-salt", 16), _iterations(seed)
    key_length = seed.choice("pbkdf2-key-length", (32, 64))
    key = hashlib.pbkdf2_hmac("sha256", plaintext.encode(), salt, iterations, key_length)
    return f"pbkdf2_sha256${iterations}${_b64(salt)}${_b64(key)}"


def _make_pbkdf2_sha256_django(plaintext: str, seed: _Seed, _: str) -> str:
    salt, iterations = seed.text("pbkdf2-salt", 22), _iterations(seed)
    key = hashlib.pbkdf2_hmac("sha256", plaintext.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${_b64(key)}"


def _make_pbkdf2_sha512(plaintext: str, seed: _Seed, _: str) -> str:
    salt, iterations = seed.text("pbkdf2-salt", 16), _iterations(seed)
    key = hashlib.pbkdf2_hmac("sha512", plaintext.encode(), salt.encode(), iterations, 64)
    return f"pbkdf2_sha512${iterations}${salt}${key.hex()}"


def _make_pbkdf2_sha512_hex(plaintext: str, seed: _Seed, _: str) -> str:
    salt, iterations = seed.bytes("pbkdf2-salt", 16), _iterations(seed)
    key = hashlib.pbkdf2_hmac("sha512", plaintext.encode(), salt, iterations, 64)
    return f"pbkdf2_sha512_hex${iterations}${salt.hex()}${key.hex()}"


def _make_phpass(plaintext: str, seed: _Seed, _: str, ident: str = "P") -> str:
    salt = seed.text("phpass-salt", 8, "./" + string.digits + string.ascii_letters)
    return phpass.using(salt=salt, rounds=_PHPASS_MIN_ROUNDS, ident=ident).hash(plaintext)


def _make_md5_phpass(plaintext: str, seed: _Seed, position: str) -> str:
    return _make_phpass(plaintext, seed, position, ident="H")  # phpBB's prefix, same algorithm


def _make_scrypt_firebase(plaintext: str, seed: _Seed, _: str) -> str:
    salt, separator = seed.bytes("firebase-salt", 10), seed.bytes("firebase-separator", 1)
    signer_key = seed.bytes("firebase-signer-key", 64)
    rounds, mem_cost = seed.choice("firebase-rounds", (1, 2)), seed.choice("firebase-mem-cost", (1, 2, 3))
    hashed = _firebase_scrypt(plaintext.encode(), salt + separator, signer_key, rounds, mem_cost)
    return "$".join((_b64(hashed), _b64(salt), _b64(signer_key), _b64(separator), str(rounds), str(mem_cost)))


def _make_scrypt_werkzeug(plaintext: str, seed: _Seed, _: str) -> str:
    n, r, p = _WERKZEUG_CHEAP_SCRYPT  # Werkzeug's own format: scrypt:n:r:p$salt$hex
    salt = seed.text("werkzeug-salt", 16)
    key = hashlib.scrypt(plaintext.encode(), salt=salt.encode(), n=n, r=r, p=p, maxmem=132 * n * r * p)
    return f"scrypt:{n}:{r}:{p}${salt}${key.hex()}"


def _make_argon2(argon2_type: Argon2Type) -> Callable[[str, _Seed, str], str]:
    def make(plaintext: str, seed: _Seed, _: str) -> str:
        salt = seed.bytes("argon2-salt", 16)
        return argon2_hash_secret(
            plaintext.encode(), salt, time_cost=1, memory_cost=8, parallelism=1, hash_len=16, type=argon2_type
        ).decode()

    return make


def _make_sha512_symfony(plaintext: str, seed: _Seed, _: str) -> str:
    """Symfony's MessageDigestPasswordEncoder: sha512 of password{salt}, re-hashed, base64."""
    salt = seed.text("symfony-salt", 16)
    salted = f"{plaintext}{{{salt}}}".encode()
    digest = hashlib.sha512(salted).digest()
    for _round in range(1, _SYMFONY_ITERATIONS):
        digest = hashlib.sha512(digest + salted).digest()
    return f"sha512_symfony${_SYMFONY_ITERATIONS}${salt}${_b64(digest)}"


def _make_ldap_ssha(plaintext: str, seed: _Seed, _: str) -> str:
    return ldap_salted_sha1.using(salt=seed.bytes("ssha-salt", 4)).hash(plaintext)


def _make_awscognito(plaintext: str, seed: _Seed, _: str) -> str:
    """Not a hash: Clerk's pointer to a Cognito user, verified lazily against Cognito."""
    pool = "us-east-1_" + seed.text("cognito-pool", 9)
    client = seed.text("cognito-client", 26, string.ascii_lowercase + string.digits)
    identifier = seed.bytes("cognito-sub", 16).hex()
    return f"awscognito#{pool}#{client}#{identifier}"


_MAKERS: Mapping[str, Callable[[str, _Seed, str], str]] = {
    "argon2i": _make_argon2(Argon2Type.I),
    "argon2id": _make_argon2(Argon2Type.ID),
    "awscognito": _make_awscognito,
    "bcrypt": _make_bcrypt,
    "bcrypt_peppered": _make_bcrypt_peppered,
    "bcrypt_sha256_django": _make_bcrypt_sha256_django,
    "ldap_ssha": _make_ldap_ssha,
    "md5": _make_md5,
    "md5_phpass": _make_md5_phpass,
    "md5_salted": _make_md5_salted,
    "pbkdf2_sha1": _make_pbkdf2_sha1,
    "pbkdf2_sha256": _make_pbkdf2_sha256,
    "pbkdf2_sha256_django": _make_pbkdf2_sha256_django,
    "pbkdf2_sha512": _make_pbkdf2_sha512,
    "pbkdf2_sha512_hex": _make_pbkdf2_sha512_hex,
    "phpass": _make_phpass,
    "scrypt_firebase": _make_scrypt_firebase,
    "scrypt_werkzeug": _make_scrypt_werkzeug,
    "sha256": _make_sha256,
    "sha256_salted": _make_sha256_salted,
    "sha512_symfony": _make_sha512_symfony,
}


# --- Kinde's sign-in check ---


class _Inconsistent(Exception):
    """The record cannot be checked: a field is missing, of the wrong type or undecodable."""


def verify_kinde_password(record: Mapping[str, Any], plaintext: str) -> bool:
    """True when ``plaintext`` signs in against ``record``, the body Kinde received in PUT /password.

    Unknown methods and inconsistent records give False and never raise.
    """
    if not isinstance(record, Mapping) or not isinstance(plaintext, str):
        return False
    method = record.get("hashing_method", "bcrypt")  # Kinde's documented default
    if method is None:
        method = "bcrypt"
    hashed = record.get("hashed_password")
    verifier = _VERIFIERS.get(method) if isinstance(method, str) else None
    if verifier is None or not isinstance(hashed, str):
        return False
    try:
        return verifier(record, hashed, plaintext)
    except (_Inconsistent, ValueError, TypeError, OverflowError):
        return False


def _verify_bcrypt(record: Mapping[str, Any], hashed: str, plaintext: str) -> bool:
    if not _BCRYPT_SHAPE.fullmatch(hashed):
        return False
    return bcrypt.checkpw(plaintext.encode()[:_BCRYPT_MAX_BYTES], hashed.encode())


def _verify_digest(algorithm: str) -> Callable[[Mapping[str, Any], str, str], bool]:
    """Kinde's md5/sha256: hex of the digest of the password, salted before or after when a salt is set."""

    def verify(record: Mapping[str, Any], hashed: str, plaintext: str) -> bool:
        salt = _optional_str(record, "salt") or ""
        position = record.get("salt_position")
        if salt and position not in ("prefix", "suffix"):
            return False
        data = _salted_input(plaintext, salt, position) if salt else plaintext.encode()
        return _same(hashlib.new(algorithm, data).hexdigest(), hashed.lower())

    return verify


def _verify_crypt(record: Mapping[str, Any], hashed: str, plaintext: str) -> bool:
    """Unix crypt(3), by prefix: md5-crypt, sha256-crypt, sha512-crypt, bcrypt."""
    if hashed.startswith("$2"):
        return _verify_bcrypt(record, hashed, plaintext)
    for prefix, handler in (("$1$", md5_crypt), ("$5$", sha256_crypt), ("$6$", sha512_crypt)):
        if hashed.startswith(prefix):
            return handler.identify(hashed) and handler.verify(plaintext, hashed)
    return False


def _verify_wordpress(record: Mapping[str, Any], hashed: str, plaintext: str) -> bool:
    """phpass portable hashes, $P$ (WordPress) or $H$ (phpBB)."""
    return phpass.identify(hashed) and phpass.verify(plaintext, hashed)


def _verify_pbkdf2(record: Mapping[str, Any], hashed: str, plaintext: str) -> bool:
    """FusionAuth's encryptors: base64-decoded salt, base64 of the key compared as text."""
    variant = record.get("variant")
    if not isinstance(variant, str) or variant not in KINDE_PBKDF2_VARIANTS:
        return False
    digest_name, key_length = KINDE_PBKDF2_VARIANTS[variant]
    iterations = record.get("iterations", KINDE_DEFAULT_PBKDF2_ITERATIONS)
    if iterations is None:
        iterations = KINDE_DEFAULT_PBKDF2_ITERATIONS
    if not _is_int(iterations) or iterations < 1:
        return False
    salt = _required_base64(record, "salt")
    key = hashlib.pbkdf2_hmac(digest_name, plaintext.encode(), salt, iterations, key_length)
    return _same(_b64(key), hashed)


def _verify_firebase_scrypt(record: Mapping[str, Any], hashed: str, plaintext: str) -> bool:
    rounds, mem_cost = record.get("rounds"), record.get("mem_cost")
    if not (_is_int(rounds) and 1 <= rounds <= 16 and _is_int(mem_cost) and 1 <= mem_cost <= 20):
        return False
    salt = _required_base64(record, "salt") + _required_base64(record, "salt_separator")
    expected = _strict_b64decode(hashed)
    computed = _firebase_scrypt(plaintext.encode(), salt, _required_base64(record, "signer_key"), rounds, mem_cost)
    return hmac.compare_digest(computed, expected)


def _verify_aspnet_identity_v2(record: Mapping[str, Any], hashed: str, plaintext: str) -> bool:
    """ASP.NET Identity V2: 0x00 | 16-byte salt | PBKDF2-HMAC-SHA1 subkey (32 bytes, 1000 iterations)."""
    blob = _strict_b64decode(hashed)
    if len(blob) != 49 or blob[0] != 0:
        return False
    subkey = hashlib.pbkdf2_hmac("sha1", plaintext.encode(), blob[1:17], 1000, 32)
    return hmac.compare_digest(subkey, blob[17:])


_VERIFIERS: Mapping[str, Callable[[Mapping[str, Any], str, str], bool]] = {
    "bcrypt": _verify_bcrypt,
    "crypt": _verify_crypt,
    "md5": _verify_digest("md5"),
    "sha256": _verify_digest("sha256"),
    "wordpress": _verify_wordpress,
    "pbkdf2": _verify_pbkdf2,
    "firebase-scrypt": _verify_firebase_scrypt,
    "aspnet-identity-v2": _verify_aspnet_identity_v2,
}


def _firebase_scrypt(password: bytes, salt: bytes, signer_key: bytes, rounds: int, mem_cost: int) -> bytes:
    """Firebase's modified scrypt: AES-256-CTR (zero IV) of the signer key, keyed by scrypt's output."""
    n = 2**mem_cost
    memory = 128 * rounds * n + 1024 * 1024
    if memory > _SCRYPT_MAX_MEMORY:
        raise _Inconsistent("scrypt parameters need more memory than the sandbox allows")
    key = hashlib.scrypt(password, salt=salt, n=n, r=rounds, p=1, dklen=32, maxmem=memory)
    encryptor = Cipher(algorithms.AES(key), modes.CTR(b"\x00" * 16)).encryptor()
    return encryptor.update(signer_key) + encryptor.finalize()


# --- Kinde's request validation ---


def validate_kinde_password_body(body: Mapping[str, Any]) -> str | None:
    """The spec's rules for PUT /api/v1/users/{id}/password: an error message (a 400), or None."""
    if not isinstance(body, Mapping):
        return "request body must be a JSON object"
    present = {key for key, value in body.items() if value is not None}
    hashed = body.get("hashed_password")
    if hashed is None:
        return "hashed_password is required"
    if not isinstance(hashed, str) or not hashed:
        return "hashed_password must be a non-empty string"
    method = body["hashing_method"] if "hashing_method" in present else "bcrypt"
    if not isinstance(method, str) or method not in KINDE_HASHING_METHODS:
        return "hashing_method must be one of: " + ", ".join(KINDE_HASHING_METHODS)
    if "is_temporary_password" in present and not isinstance(body["is_temporary_password"], bool):
        return "is_temporary_password must be a boolean"
    for check in (_check_common_fields, _METHOD_CHECKS.get(method)):
        error = check(body, present, method) if check else None
        if error:
            return error
    return None


def _check_common_fields(body: Mapping[str, Any], present: set[str], method: str) -> str | None:
    for key in ("salt", "variant", "signer_key", "salt_separator"):
        if key in present and not isinstance(body[key], str):
            return f"{key} must be a string"
    if "salt_position" in present and body["salt_position"] not in ("prefix", "suffix"):
        return "salt_position must be prefix or suffix"
    if "iterations" in present and (not _is_int(body["iterations"]) or body["iterations"] < 1):
        return "iterations must be a positive integer"
    if method != "firebase-scrypt":
        extra = [key for key in FIREBASE_ONLY_FIELDS if key in present]
        if extra:
            return f"{extra[0]} is only accepted for firebase-scrypt"
    return None


def _check_bcrypt(body: Mapping[str, Any], present: set[str], method: str) -> str | None:
    if not _BCRYPT_SHAPE.fullmatch(body["hashed_password"]):
        return "hashed_password is not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04-31, 53 characters)"
    return None


def _check_hex_digest(length: int) -> Callable[[Mapping[str, Any], set[str], str], str | None]:
    def check(body: Mapping[str, Any], present: set[str], method: str) -> str | None:
        hashed = body["hashed_password"]
        if len(hashed) != length or not _HEX.fullmatch(hashed):
            return f"hashed_password must be {length} hexadecimal characters for {method}"
        if body.get("salt") and "salt_position" not in present:
            return f"salt_position is required when a salt is given for {method}"
        return None

    return check


def _check_pbkdf2(body: Mapping[str, Any], present: set[str], method: str) -> str | None:
    if not body.get("salt"):
        return "salt is required for pbkdf2"
    if not _BASE64.fullmatch(body["salt"]):
        return "salt must be base64 for pbkdf2"
    if body.get("variant") not in KINDE_PBKDF2_VARIANTS:
        return "variant is required for pbkdf2 and must be one of: " + ", ".join(KINDE_PBKDF2_VARIANTS)
    return None


def _check_firebase_scrypt(body: Mapping[str, Any], present: set[str], method: str) -> str | None:
    for key in ("iterations", "variant"):
        if key in present:
            return f"{key} is not accepted for firebase-scrypt"
    for key in ("salt", "signer_key", "salt_separator"):
        if not body.get(key):
            return f"{key} is required for firebase-scrypt"
        if not _BASE64.fullmatch(body[key]):
            return f"{key} must be base64 for firebase-scrypt"
    for key, low, high in (("rounds", 1, 16), ("mem_cost", 1, 20)):
        value = body.get(key)
        if not _is_int(value) or not low <= value <= high:
            return f"{key} is required for firebase-scrypt and must be an integer from {low} to {high}"
    if not _BASE64.fullmatch(body["hashed_password"]):
        return "hashed_password must be base64 for firebase-scrypt"
    return None


def _check_aspnet_identity_v2(body: Mapping[str, Any], present: set[str], method: str) -> str | None:
    extra = sorted(present - ASPNET_ALLOWED_FIELDS)
    if extra:
        return f"aspnet-identity-v2 accepts only hashed_password (got {', '.join(extra)})"
    return None


_METHOD_CHECKS: Mapping[str, Callable[[Mapping[str, Any], set[str], str], str | None]] = {
    "bcrypt": _check_bcrypt,
    "md5": _check_hex_digest(32),
    "sha256": _check_hex_digest(64),
    "pbkdf2": _check_pbkdf2,
    "firebase-scrypt": _check_firebase_scrypt,
    "aspnet-identity-v2": _check_aspnet_identity_v2,
}


# --- helpers ---


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _strict_b64decode(text: str) -> bytes:
    """Standard base64, padding optional (as Java's Base64.getDecoder() reads it)."""
    if not _BASE64.fullmatch(text):
        raise _Inconsistent("not base64")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as error:
        raise _Inconsistent("not base64") from error


def _required_base64(record: Mapping[str, Any], key: str) -> bytes:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise _Inconsistent(f"{key} is missing")
    return _strict_b64decode(value)


def _optional_str(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise _Inconsistent(f"{key} is not a string")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _same(computed: str, received: str) -> bool:
    return hmac.compare_digest(computed.encode(), received.encode())
