"""Turn a Clerk password digest into Kinde's set-password body, or say why that cannot be done.

Why this module exists: if a translation is wrong, Kinde still accepts the import, but the user
can never sign in, and nothing reports an error. So a hasher is importable only when one of Kinde's
methods computes exactly the same function over the same bytes (docs/passwords.md gives the source
for each). Every other digest becomes a per-user ``PasswordUnimportable`` with a short reason, and
the user gets another way in.

Pure: no I/O. Digest text never goes into a reason, an exception or a repr.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal, get_args

from migrator.models import PasswordImport, PasswordUnimportable

SaltPosition = Literal["prefix", "suffix"]
SALT_POSITIONS: tuple[str, ...] = get_args(SaltPosition)

# Kinde's pbkdf2 variants (FusionAuth's encryptors): (HMAC digest, derived key length in bytes).
PBKDF2_VARIANTS: Mapping[str, tuple[str, int]] = MappingProxyType(
    {
        "salted-pbkdf2-hmac-sha256": ("sha256", 32),
        "salted-pbkdf2-hmac-sha256-512": ("sha256", 64),
        "salted-pbkdf2-hmac-sha512-512": ("sha512", 64),
    }
)
# Kinde's accepted ranges for Firebase's project parameters (spec: SetUserPassword).
FIREBASE_ROUNDS = range(1, 17)
FIREBASE_MEM_COST = range(1, 21)
# FusionAuth's factor is a Java int.
MAX_ITERATIONS = 2**31 - 1

IMPORTABLE_HASHERS: frozenset[str] = frozenset(
    {
        "bcrypt",
        "md5",
        "sha256",
        "pbkdf2_sha256",
        "pbkdf2_sha256_django",
        "pbkdf2_sha512",
        "pbkdf2_sha512_hex",
        "phpass",
        "md5_phpass",
        "scrypt_firebase",
    }
)
# Clerk's digest carries the salt but not whether it went before or after the password, and
# Clerk does not document it. These import only when the operator states the position.
NEEDS_SALT_POSITION: frozenset[str] = frozenset({"md5_salted", "sha256_salted"})
NOT_IMPORTABLE: Mapping[str, str] = MappingProxyType(
    {
        "argon2i": "argon2i digests cannot be verified by Kinde (it has no argon2 method)",
        "argon2id": "argon2id digests cannot be verified by Kinde (it has no argon2 method)",
        "bcrypt_sha256_django": (
            "bcrypt_sha256_django digests cannot be verified by Kinde "
            "(bcrypt of a SHA-256 pre-hash; Kinde's bcrypt hashes the password itself)"
        ),
        "bcrypt_peppered": (
            "bcrypt_peppered digests cannot be verified by Kinde "
            "(a pepper is appended to the password; Kinde's bcrypt has no pepper)"
        ),
        "scrypt_werkzeug": (
            "scrypt_werkzeug digests cannot be verified by Kinde (its only scrypt method is Firebase's)"
        ),
        "sha512_symfony": ("sha512_symfony digests cannot be verified by Kinde (it has no iterated SHA-512 method)"),
        "ldap_ssha": "ldap_ssha digests cannot be verified by Kinde (it has no salted SHA-1 method)",
        "pbkdf2_sha1": ("pbkdf2_sha1 digests cannot be verified by Kinde (its pbkdf2 variants use SHA-256 or SHA-512)"),
        "hmac_sha256_utf16_b64": ("hmac_sha256_utf16_b64 digests cannot be verified by Kinde (it has no HMAC method)"),
        "awscognito": ("awscognito is a pointer for lazy migration from Amazon Cognito, not a password hash"),
    }
)
KNOWN_HASHERS: frozenset[str] = IMPORTABLE_HASHERS | NEEDS_SALT_POSITION | frozenset(NOT_IMPORTABLE)

_EXPECTED_FORMAT: Mapping[str, str] = MappingProxyType(
    {
        "bcrypt": "expected $2a$/$2b$/$2y$, cost 04-31, 53 characters of salt and hash",
        "md5": "expected 32 hexadecimal characters",
        "sha256": "expected 64 hexadecimal characters",
        "md5_salted": "expected <salt>$<32 hexadecimal characters> or the reverse",
        "sha256_salted": "expected <salt>$<64 hexadecimal characters> or the reverse",
        "pbkdf2_sha256": "expected pbkdf2_sha256$<iterations>$<base64 salt>$<base64 hash>",
        "pbkdf2_sha256_django": "expected pbkdf2_sha256$<iterations>$<salt>$<base64 hash>",
        "pbkdf2_sha512": "expected pbkdf2_sha512$<iterations>$<salt>$<hex hash>",
        "pbkdf2_sha512_hex": "expected pbkdf2_sha512_hex$<iterations>$<hex salt>$<hex hash>",
        "phpass": "expected $P$ or $H$, a rounds character 5-S, 8 characters of salt and 22 of hash",
        "md5_phpass": "expected $P$ or $H$, a rounds character 5-S, 8 characters of salt and 22 of hash",
        "scrypt_firebase": (
            "expected <base64 hash>$<base64 salt>$<base64 signer key>$<base64 salt separator>"
            "$<rounds>$<mem cost> (base64 standard or URL-safe), the hash as long as the signer key"
        ),
    }
)

_BCRYPT = re.compile(r"\$(2[aby])\$([0-9]{2})\$([./A-Za-z0-9]{53})")
_PHPASS = re.compile(r"\$[PH]\$([./0-9A-Za-z])[./0-9A-Za-z]{30}")
_PHPASS_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PHPASS_LOG2_ROUNDS = range(7, 31)  # phpass refuses counts outside 2**7..2**30
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
_DECIMAL = re.compile(r"[0-9]{1,10}")
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
# Standard alphabet; padding optional (a 1-character remainder is never valid).
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?")
_HASHER_NAME = re.compile(r"[a-z0-9_\-]{1,40}")


class _Rejected(Exception):
    """Internal control flow: the digest cannot be imported. Never carries digest text."""

    def __init__(self, reason: str, *, malformed: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.malformed = malformed


def translate(
    hasher: str | None,
    digest: str | None,
    *,
    salt_position: SaltPosition | None = None,
) -> PasswordImport | PasswordUnimportable | None:
    """Kinde's ``PUT /api/v1/users/{id}/password`` body for one Clerk user, or why not.

    ``None`` when the user has no password. ``salt_position`` tells where ``md5_salted`` and
    ``sha256_salted`` digests put the salt in the hash input. Clerk does not say, so without it
    those digests are not imported.
    """
    name = (hasher or "").strip().lower()
    digest = digest or ""
    has_digest = bool(digest.strip())
    if not name and not has_digest:
        return None
    if not name:
        return PasswordUnimportable(None, "password digest has no hasher", malformed=True)
    if not _HASHER_NAME.fullmatch(name):
        return PasswordUnimportable(None, "unrecognised password hasher (its value is not shown)", malformed=False)
    if not has_digest:
        return PasswordUnimportable(name, f"{name} hasher given without a password digest", malformed=True)
    if name in NOT_IMPORTABLE:
        return PasswordUnimportable(name, NOT_IMPORTABLE[name])
    if name not in KNOWN_HASHERS:
        return PasswordUnimportable(name, f"unknown password hasher {name}: Kinde cannot verify it")
    try:
        if name in NEEDS_SALT_POSITION:
            fields = _salted(name, digest, salt_position)
        else:
            fields = _TRANSLATORS[name](name, digest)
    except _Rejected as rejected:
        return PasswordUnimportable(name, rejected.reason, malformed=rejected.malformed)
    except ValueError:  # a decoder refused what the shape checks let through
        return PasswordUnimportable(name, _malformed_reason(name), malformed=True)
    fields["is_temporary_password"] = False
    return PasswordImport(hasher=name, method=fields["hashing_method"], fields=fields)


# --- one translator per importable hasher: (name, digest) -> Kinde fields, or _Rejected ---


def _bcrypt(name: str, digest: str) -> dict[str, Any]:
    match = _BCRYPT.fullmatch(digest)
    if not match or not 4 <= int(match.group(2)) <= 31:
        raise _malformed(name)
    # Kinde's docs say it rewrites $2b to $2a on import, and its API example is a $2a hash. Current
    # implementations compute $2a, $2b and $2y identically (they differ only in old bugs, for
    # passwords of 255+ bytes or with 8-bit characters under $2x), so send $2a.
    return {"hashed_password": f"$2a${match.group(2)}${match.group(3)}", "hashing_method": "bcrypt"}


def _unsalted_hex(name: str, digest: str) -> dict[str, Any]:
    length = 32 if name == "md5" else 64
    if len(digest) != length or not _HEX.fullmatch(digest):
        raise _malformed(name)
    return {"hashed_password": digest.lower(), "hashing_method": name}


def _salted(name: str, digest: str, salt_position: SaltPosition | None) -> dict[str, Any]:
    method, length = ("md5", 32) if name == "md5_salted" else ("sha256", 64)
    salt, hash_hex = _split_salt_and_hash(name, digest, length)
    if salt_position not in SALT_POSITIONS:
        raise _Rejected(
            f"{name} digests do not say whether the salt went before or after the password "
            "(Clerk does not document it); set the salt position to import them",
            malformed=False,
        )
    return {
        "hashed_password": hash_hex.lower(),
        "hashing_method": method,
        "salt": salt,
        "salt_position": salt_position,
    }


def _split_salt_and_hash(name: str, digest: str, length: int) -> tuple[str, str]:
    """(salt, hash hex) of a salted digest, for ``md5_salted`` and ``sha256_salted`` alike.

    Clerk's docs write ``salt$hash``; an older Clerk spec writes ``hash$salt`` (for sha256_salted, and
    nothing says md5_salted differs). The hash part is the one of the hasher's hex length. When both
    parts are, the digest cannot tell which is the salt: refused rather than guessed, because a wrong
    guess imports without an error and locks the user out.
    """

    def is_hash(text: str) -> bool:
        return len(text) == length and _HEX.fullmatch(text) is not None

    salt_first = digest.rpartition("$")
    hash_first = digest.partition("$")
    salt_then_hash = bool(salt_first[1] and salt_first[0] and is_hash(salt_first[2]))
    hash_then_salt = bool(hash_first[1] and hash_first[2] and is_hash(hash_first[0]))
    if salt_then_hash and hash_then_salt:
        raise _Rejected(
            f"{name} digest is ambiguous: both of its parts look like a hash ({length} hexadecimal characters),"
            " so which one is the salt cannot be told; not guessed",
            malformed=False,
        )
    if salt_then_hash:
        return salt_first[0], salt_first[2]
    if hash_then_salt:
        return hash_first[2], hash_first[0]
    raise _malformed(name)


def _pbkdf2_sha256(name: str, digest: str) -> dict[str, Any]:
    """Clerk's ``pbkdf2_sha256``: base64 salt and base64 hash."""
    iterations, salt_text, hash_text = _pbkdf2_parts(name, digest, "pbkdf2_sha256")
    salt, key = _decode_base64(name, salt_text), _decode_base64(name, hash_text)
    return _pbkdf2_fields(name, iterations, salt, key, "sha256")


def _pbkdf2_sha256_django(name: str, digest: str) -> dict[str, Any]:
    """Django's format: the salt is the text itself, the hash base64."""
    iterations, salt_text, hash_text = _pbkdf2_parts(name, digest, "pbkdf2_sha256")
    return _pbkdf2_fields(name, iterations, salt_text.encode(), _decode_base64(name, hash_text), "sha256")


def _pbkdf2_sha512(name: str, digest: str) -> dict[str, Any]:
    """Clerk's ``pbkdf2_sha512``: the salt is the text itself, the hash hex."""
    iterations, salt_text, hash_text = _pbkdf2_parts(name, digest, "pbkdf2_sha512")
    return _pbkdf2_fields(name, iterations, salt_text.encode(), _decode_hex(name, hash_text), "sha512")


def _pbkdf2_sha512_hex(name: str, digest: str) -> dict[str, Any]:
    """Clerk's ``pbkdf2_sha512_hex``: hex salt and hex hash."""
    iterations, salt_text, hash_text = _pbkdf2_parts(name, digest, "pbkdf2_sha512_hex")
    salt, key = _decode_hex(name, salt_text), _decode_hex(name, hash_text)
    return _pbkdf2_fields(name, iterations, salt, key, "sha512")


def _pbkdf2_parts(name: str, digest: str, prefix: str) -> tuple[int, str, str]:
    parts = digest.split("$")
    if len(parts) != 4 or parts[0] != prefix or not _DECIMAL.fullmatch(parts[1]) or not parts[2]:
        raise _malformed(name)
    iterations = int(parts[1])
    if iterations < 1:
        raise _malformed(name)
    if iterations > MAX_ITERATIONS:
        raise _Rejected(
            f"{name} digests with more than {MAX_ITERATIONS} iterations cannot be verified by Kinde",
            malformed=False,
        )
    return iterations, parts[2], parts[3]


def _pbkdf2_fields(name: str, iterations: int, salt: bytes, key: bytes, digest_name: str) -> dict[str, Any]:
    if not salt or not key:
        raise _malformed(name)
    variant = next(
        (v for v, (d, length) in PBKDF2_VARIANTS.items() if d == digest_name and length == len(key)),
        None,
    )
    if variant is None:
        lengths = " or ".join(str(n) for d, n in PBKDF2_VARIANTS.values() if d == digest_name)
        raise _Rejected(
            f"{name} digests with a {len(key)}-byte key cannot be verified by Kinde "
            f"(its {digest_name.upper()} variants derive {lengths} bytes)",
            malformed=False,
        )
    return {
        "hashed_password": _encode_base64(key),
        "hashing_method": "pbkdf2",
        "salt": _encode_base64(salt),
        "iterations": iterations,
        "variant": variant,
    }


def _phpass(name: str, digest: str) -> dict[str, Any]:
    match = _PHPASS.fullmatch(digest)
    if not match or _PHPASS_ITOA64.index(match.group(1)) not in _PHPASS_LOG2_ROUNDS:
        raise _malformed(name)
    # $P$ (phpass, WordPress) and $H$ (phpBB) differ only in the prefix: the checksum is computed
    # from the password, the salt and the rounds alone. WordPress writes $P$.
    return {"hashed_password": "$P$" + digest[3:], "hashing_method": "wordpress"}


def _scrypt_firebase(name: str, digest: str) -> dict[str, Any]:
    parts = digest.split("$")
    if len(parts) != 6 or not all(parts[:4]) or not all(_DECIMAL.fullmatch(p) for p in parts[4:]):
        raise _malformed(name)
    # Firebase's own tools print these in standard base64; exports that went through a URL or a
    # web-safe encoder carry the URL-safe alphabet (- and _): both name the same bytes.
    hash_bytes, salt, signer_key, separator = (_decode_base64(name, _standard_alphabet(name, p)) for p in parts[:4])
    if not (hash_bytes and salt and signer_key and separator) or len(hash_bytes) != len(signer_key):
        raise _malformed(name)
    rounds, mem_cost = int(parts[4]), int(parts[5])
    if rounds not in FIREBASE_ROUNDS or mem_cost not in FIREBASE_MEM_COST:
        raise _Rejected(f"{name} parameters out of Kinde's range (rounds 1-16, mem_cost 1-20)", malformed=False)
    return {
        "hashed_password": _encode_base64(hash_bytes),
        "hashing_method": "firebase-scrypt",
        "salt": _encode_base64(salt),
        "signer_key": _encode_base64(signer_key),
        "salt_separator": _encode_base64(separator),
        "rounds": rounds,
        "mem_cost": mem_cost,
    }


_TRANSLATORS: Mapping[str, Callable[[str, str], dict[str, Any]]] = MappingProxyType(
    {
        "bcrypt": _bcrypt,
        "md5": _unsalted_hex,
        "sha256": _unsalted_hex,
        "pbkdf2_sha256": _pbkdf2_sha256,
        "pbkdf2_sha256_django": _pbkdf2_sha256_django,
        "pbkdf2_sha512": _pbkdf2_sha512,
        "pbkdf2_sha512_hex": _pbkdf2_sha512_hex,
        "phpass": _phpass,
        "md5_phpass": _phpass,
        "scrypt_firebase": _scrypt_firebase,
    }
)

# --- helpers ---


def _malformed_reason(name: str) -> str:
    return f"malformed {name} digest ({_EXPECTED_FORMAT[name]})"


def _malformed(name: str) -> _Rejected:
    return _Rejected(_malformed_reason(name), malformed=True)


def _decode_base64(name: str, text: str) -> bytes:
    if not _BASE64.fullmatch(text):
        raise _malformed(name)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise _malformed(name) from None


def _standard_alphabet(name: str, text: str) -> str:
    """URL-safe base64 (``-``, ``_``) rewritten to the standard alphabet; a value mixing both is malformed."""
    if "-" not in text and "_" not in text:
        return text
    if "+" in text or "/" in text:
        raise _malformed(name)
    return text.translate(_URLSAFE_TO_STANDARD)


def _decode_hex(name: str, text: str) -> bytes:
    if not _HEX.fullmatch(text):
        raise _malformed(name)
    return bytes.fromhex(text)


def _encode_base64(data: bytes) -> str:
    """Standard alphabet, padded: what Kinde decodes, and what FusionAuth's encryptors produce."""
    return base64.b64encode(data).decode("ascii")
