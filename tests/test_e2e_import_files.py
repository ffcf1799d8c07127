"""End to end: `migrator export` writes Kinde's import files, the sandbox's dashboard import ingests
them, and the imported users sign in with their old passwords; the users no file can carry are
listed with a reason and migrated in the same test by `migrator run --only-file`.
"""

from __future__ import annotations

import csv
import json
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.sandbox.generator import Dataset
from migrator.sandbox.hashing import CLERK_HASHERS
from migrator.sandbox.kinde_app import KindeSandboxConfig
from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import cli_env, kinde_state, run_cli

USERS = 240
FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200"}
SMALL_MB = "0.006"  # 6,000 bytes: several parts per file kind
FILE_HASHERS = {"bcrypt", "md5", "sha256", "phpass", "md5_phpass", "pbkdf2_sha256", "pbkdf2_sha256_django",
                "pbkdf2_sha512", "pbkdf2_sha512_hex"}  # fmt: skip
FORMAT_OF_PART = {"kinde-users": None, "fusionauth-users": "fusionauth", "kinde-memberships": "kinde-csv"}


def sandbox_for(role_header: str = "role_key") -> Sandbox:
    return Sandbox(
        SandboxOptions(
            users=USERS,
            hasher_weights=dict.fromkeys(CLERK_HASHERS, 1.0),
            kinde=KindeSandboxConfig(import_role_header=role_header),  # type: ignore[arg-type]
        )
    )


def export(sandbox: Sandbox, cwd: Path, fmt: str) -> dict[str, Any]:
    result = run_cli(
        "export", "--format", fmt, "--out", "out", "--clerk-export", "users.csv", "--max-file-mb", SMALL_MB,
        "--create-roles", "--json", cwd=cwd, env=cli_env(sandbox, **FAST),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads(result.stdout)
    assert manifest == json.loads((cwd / "out" / "manifest.json").read_text())
    return manifest | {"_stdout": result.stdout + result.stderr}


def upload(sandbox: Sandbox, path: Path, fmt: str) -> dict[str, Any]:
    response = httpx.post(f"{sandbox.kinde_url}/_sandbox/import", params={"format": fmt}, content=path.read_bytes())
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["errors"] == [], (path.name, report["errors"][:3])
    return report


def upload_all(sandbox: Sandbox, out: Path, fmt: str, manifest: dict[str, Any]) -> None:
    upload(sandbox, out / "organizations.csv", "organizations")
    for item in manifest["files"]:
        stem = item["name"].rsplit("-", 1)[0]
        if stem in FORMAT_OF_PART:
            report = upload(sandbox, out / item["name"], FORMAT_OF_PART[stem] or fmt)
            assert report["unassigned"] == [], report["unassigned"][:3]


def listed_ids(out: Path, manifest: dict[str, Any]) -> dict[str, set[str]]:
    """Clerk ids per kind of file: user files, and api-users.csv."""
    ids: dict[str, set[str]] = {"files": set(), "api": set()}
    for item in manifest["files"]:
        path = out / item["name"]
        if item["name"].endswith(".ndjson"):
            ids["files"] |= {json.loads(line)["id"] for line in path.read_text().splitlines()}
        elif item["name"].startswith("kinde-users-"):
            ids["files"] |= {row["id"] for row in csv.DictReader(path.open())}
    with (out / "api-users.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert all(row["reason"] for row in rows)
    ids["api"] = {row["clerk_id"] for row in rows}
    return ids


def custom_ndjson_ids(out: Path, manifest: dict[str, Any]) -> set[str]:
    names = [
        f["name"] for f in manifest["files"] if f["name"].startswith("kinde-users-") and f["name"].endswith(".ndjson")
    ]
    return {json.loads(line)["id"] for name in names for line in (out / name).read_text().splitlines()}


def signs_in(sandbox: Sandbox, email: str, password: str) -> int:
    return httpx.post(f"{sandbox.kinde_url}/_sandbox/sign-in", json={"email": email, "password": password}).status_code


def check_sign_ins(
    sandbox: Sandbox, dataset: Dataset, clerk_ids: set[str], *, code_if_unverified: frozenset[str] = frozenset()
) -> set[str]:
    """Every user with a password in these ids signs in with it (and not with a wrong one), without a one-time
    code, except one of ``code_if_unverified`` (Custom NDJSON users: its strict reading) whose email Clerk never
    verified: Kinde verifies it with a code first. Their hashers."""
    kinde = {u["provided_id"]: u for u in kinde_state(sandbox)["users"]}
    hashers = set()
    for clerk_id in clerk_ids:
        user = kinde[clerk_id]
        email = next((i for i in user["identities"] if i["type"] == "email"), None)
        if user["password_method"] is None or email is None:
            continue
        plaintext = dataset.plaintext(clerk_id)
        assert plaintext is not None
        expected = 403 if clerk_id in code_if_unverified and not email["is_verified"] else 200
        assert signs_in(sandbox, email["value"], plaintext) == expected, (clerk_id, user["password_method"])
        assert signs_in(sandbox, email["value"], "not-" + plaintext) == 401
        secret = dataset.password(dataset.index_of(clerk_id) or 0)
        hashers.add(secret[0] if secret else None)
    return hashers


def assert_no_digest_outside_files(cwd: Path, dataset: Dataset, texts: list[str]) -> None:
    journal = (cwd / ".migrator" / "journal.sqlite3").read_bytes()
    outside = [journal, (cwd / "out" / "manifest.json").read_bytes(), (cwd / "out" / "api-users.csv").read_bytes()]
    outside += [t.encode() for t in texts]
    for i in range(dataset.n):
        secret = dataset.password(i)
        if secret is None:
            continue
        needle = secret[1].encode()[-24:]  # the digest's tail: the hash itself, not a shared prefix
        assert not any(needle in blob for blob in outside), f"a {secret[0]} digest leaked"


@pytest.mark.parametrize(("fmt", "role_header"), [("kinde-ndjson", "role_key"), ("kinde-csv", "roles")])
def test_exported_files_import_and_sign_in_and_the_rest_go_by_api(tmp_path: Path, fmt: str, role_header: str) -> None:
    with sandbox_for(role_header) as sandbox:
        sandbox.write_export(tmp_path / "users.csv")
        dataset = sandbox.dataset
        manifest = export(sandbox, tmp_path, fmt)
        out = tmp_path / "out"

        # Nothing over the limit, every file owner-only; the limit forced a split.
        limit = int(float(SMALL_MB) * 1000 * 1000)
        for path in out.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
        parts = [f for f in manifest["files"] if f["name"].startswith(("kinde-users-", "fusionauth-users-"))]
        assert all(f["bytes"] <= limit and (out / f["name"]).stat().st_size == f["bytes"] for f in parts)
        assert sum(1 for f in parts if f["name"].startswith("kinde-users-")) > 1

        # Every Clerk user is in exactly one place: a user file, api-users.csv, or skipped.
        ids = listed_ids(out, manifest)
        assert not ids["files"] & ids["api"]
        skipped = sum(manifest["skipped"].values())
        assert len(ids["files"]) + len(ids["api"]) + skipped == USERS
        assert sum(manifest["users_by_file_format"].values()) == len(ids["files"])
        assert "firebase-scrypt passwords are not carried by Kinde's import files" in manifest["api_path"]

        upload_all(sandbox, out, fmt, manifest)
        state = kinde_state(sandbox)
        assert {u["provided_id"] for u in state["users"]} == ids["files"]
        # the CSV's rows carry password_verified TRUE: no one-time code in the strict reading
        custom_ndjson = frozenset(custom_ndjson_ids(out, manifest))
        imported_hashers = check_sign_ins(sandbox, dataset, ids["files"], code_if_unverified=custom_ndjson)
        assert imported_hashers >= FILE_HASHERS
        members = [u for u in state["users"] if u["organizations"]]
        assert members and all(o["roles"] for u in members for o in u["organizations"])

        # The rest by the API path, in the same test: only the listed users are written.
        result = run_cli(
            "run", "--clerk-export", "users.csv", "--only-file", "out/api-users.csv", "--yes", "--json",
            cwd=tmp_path, env=cli_env(sandbox, **FAST),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        summary = json.loads(result.stdout)
        assert summary["created"] == len(ids["api"])
        state = kinde_state(sandbox)
        assert state["duplicate_creations"] == []
        assert {u["provided_id"] for u in state["users"]} == ids["files"] | ids["api"]
        assert "scrypt_firebase" in check_sign_ins(sandbox, dataset, ids["api"])
        assert_no_digest_outside_files(tmp_path, dataset, [manifest["_stdout"], result.stdout, result.stderr])


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    with sandbox_for() as sandbox:
        sandbox.write_export(tmp_path / "users.csv")
        result = run_cli(
            "export", "--out", "out", "--clerk-export", "users.csv", "--dry-run",
            cwd=tmp_path, env=cli_env(sandbox, **FAST),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert not (tmp_path / "out").exists()
        assert "for the API path (api-users.csv)" in result.stdout
        assert "kinde-users-0001.ndjson" in result.stdout
        assert kinde_state(sandbox)["roles"] == []


def test_only_file_that_is_not_a_list_of_clerk_ids_is_refused(tmp_path: Path) -> None:
    with sandbox_for() as sandbox:
        sandbox.write_export(tmp_path / "users.csv")
        (tmp_path / "wrong.csv").write_text("clerk_id,reason\nsomebody,why\n")
        result = run_cli(
            "run", "--clerk-export", "users.csv", "--only-file", "wrong.csv", "--yes",
            cwd=tmp_path, env=cli_env(sandbox, **FAST),
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "wrong.csv" in result.stderr and "Traceback" not in result.stderr
