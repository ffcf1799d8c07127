"""End to end: `migrator export` with mapped social connections. The Custom NDJSON carries each mapped
external account as an ``oauth2:*`` identity, the sandbox's import links it to the business's connection,
and `migrator verify` of the export run finds a social identity Kinde lost; the Custom CSV cannot carry
them, so those users go to api-users.csv with the reason. The run folder holds the run's reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import httpx

from migrator.sandbox.kinde_app import KindeSandboxConfig
from migrator.sandbox.server import Sandbox, SandboxOptions
from migrator.stages.export_files import SOCIAL_BY_API
from tests.e2e import cli_env, kinde_state, run_cli
from tests.test_e2e_import_files import FAST, listed_ids, upload_all
from tests.test_e2e_metadata import totp_users
from tests.test_e2e_verify import findings

USERS = 150
GOOGLE, GITHUB = "conn_google0001", "conn_github0001"
CONNECTIONS = {"oauth_google": GOOGLE, "oauth_github": GITHUB}
CONFIG = f'[social_connections]\noauth_google = "{GOOGLE}"\noauth_github = "{GITHUB}"\n'


def sandbox_with_connections() -> Sandbox:
    kinde = KindeSandboxConfig(import_connections=(("google", GOOGLE), ("github", GITHUB)))
    return Sandbox(SandboxOptions(users=USERS, kinde=kinde))


def prepare(sandbox: Sandbox, cwd: Path) -> dict[str, str]:
    (cwd / "config").mkdir(exist_ok=True)
    (cwd / "config" / "migrator.toml").write_text(CONFIG, encoding="utf-8")
    sandbox.write_export(cwd / "users.csv")
    return cli_env(sandbox, **FAST)


def export(cwd: Path, env: dict[str, str], fmt: str, *extra: str) -> tuple[dict[str, Any], str]:
    result = run_cli(
        "export", "--format", fmt, "--out", "out", "--clerk-export", "users.csv", "--create-roles", *extra,
        cwd=cwd, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((cwd / "out" / "manifest.json").read_text()), result.stdout


def mapped(sandbox: Sandbox, clerk_id: str) -> set[tuple[str, str]]:
    """(connection, value) of each of the user's Clerk accounts on a mapped provider."""
    user = sandbox.dataset.user(sandbox.dataset.index_of(clerk_id) or 0)
    return {
        (CONNECTIONS[a["provider"]], a["email_address"])
        for a in user["external_accounts"]
        if a["provider"] in CONNECTIONS
    }


def verify(cwd: Path, env: dict[str, str], run_id: int) -> tuple[int, dict[str, Any]]:
    result = run_cli("verify", str(run_id), "--json", cwd=cwd, env=env)
    assert "Traceback" not in result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def test_ndjson_carries_mapped_social_identities_and_verify_checks_them(tmp_path: Path) -> None:
    with sandbox_with_connections() as sandbox:
        env = prepare(sandbox, tmp_path)
        manifest, output = export(tmp_path, env, "kinde-ndjson")
        run_id, out = manifest["run_id"], tmp_path / "out"

        # Each file user's mapped accounts are its oauth2 identities; the manifest counts them.
        in_files: dict[str, set[tuple[str, str]]] = {}
        for item in manifest["files"]:
            if item["name"].startswith("kinde-users-"):
                for line in (out / item["name"]).read_text().splitlines():
                    record = json.loads(line)
                    assert "email" not in record and "email_verified" not in record
                    social = [i for i in record["identities"] if i["type"].startswith("oauth2:")]
                    in_files[record["id"]] = {
                        ({"oauth2:google": GOOGLE, "oauth2:github": GITHUB}[i["type"]], i["identity"]) for i in social
                    }
                    assert all(i["provider"] == i["type"].removeprefix("oauth2:") for i in social)
        assert all(in_files[clerk_id] == mapped(sandbox, clerk_id) for clerk_id in in_files)
        with_social = {clerk_id for clerk_id, social in in_files.items() if social}
        assert with_social
        counted = sum(manifest["social_identities"].values())
        assert counted == sum(len(social) for social in in_files.values())
        assert set(manifest["social_identities"]) <= {"oauth2:google", "oauth2:github"}

        # The run folder has the run's reports, and the output names them.
        folder = tmp_path / ".migrator" / "runs" / str(run_id)
        assert tmp_path / manifest["reports"]["summary"] == folder / "summary.json"
        for name, path in manifest["reports"].items():
            assert f"Report ({name.replace('_', ' ')}): {path}" in output
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["run"]["skipped"] == manifest["skipped"] and summary["run"]["users"] == USERS
        with (folder / "skipped.csv").open(newline="") as handle:
            skipped = list(csv.DictReader(handle))
        assert len(skipped) == sum(manifest["skipped"].values()) > 0
        assert all(row["reason"] in manifest["skipped"] for row in skipped)
        with (folder / "mfa-reenrol.csv").open(newline="") as handle:
            mfa = {row["clerk_id"] for row in csv.DictReader(handle)}
        assert mfa == totp_users(tmp_path / "users.csv")[0]
        assert tmp_path / manifest["reports"]["password_resets"] == out / "api-users.csv"

        # Imported, the identities are on the business's connections; verify finds them all.
        upload_all(sandbox, out, "kinde-ndjson", manifest)
        users = {u["provided_id"]: u for u in kinde_state(sandbox)["users"]}
        for clerk_id, wanted in in_files.items():
            held = {(i["connection_id"], i["value"]) for i in users[clerk_id]["identities"] if i["type"] == "social"}
            assert held == wanted, clerk_id
        code, clean = verify(tmp_path, env, run_id)
        assert code == 0 and clean["counts"]["incomplete"] == 0, clean["counts"]
        assert json.loads((folder / "summary.json").read_text())["run"] == summary["run"]  # verify adds, keeps

        # A social identity Kinde lost is incomplete, as after an API run.
        lost = sorted(with_social)[0]
        value = sorted(in_files[lost])[0][1]
        answer = httpx.patch(f"{sandbox.kinde_url}/_sandbox/users/{users[lost]['id']}", json={"remove_social": [value]})
        assert answer.status_code == 200, answer.text
        code, failed = verify(tmp_path, env, run_id)
        assert code == 1 and failed["counts"]["incomplete"] >= 1, failed["counts"]
        rows = findings(tmp_path, failed["reports"]["verify"])
        assert {(r["clerk_id"], r["field"], r["expected"]) for r in rows if r["kind"] == "incomplete"} == {
            (lost, "social", f"{c}: {v}") for c, v in in_files[lost] if v == value
        }


def test_csv_sends_users_with_mapped_accounts_to_the_api_and_marks_passwords_verified(tmp_path: Path) -> None:
    with sandbox_with_connections() as sandbox:
        env = prepare(sandbox, tmp_path)
        manifest, _ = export(tmp_path, env, "kinde-csv")
        out = tmp_path / "out"
        ids = listed_ids(out, manifest)
        assert ids["files"] and not any(mapped(sandbox, clerk_id) for clerk_id in ids["files"])
        social_api = {clerk_id for clerk_id in ids["api"] if mapped(sandbox, clerk_id)}
        assert social_api
        assert manifest["not_carried"][SOCIAL_BY_API] == len(social_api)
        with (out / "api-users.csv").open(newline="") as handle:
            reasons = {row["clerk_id"]: row["reason"] for row in csv.DictReader(handle)}
        assert any(
            "are not carried by the Custom CSV" in reasons[c] and "social identities" in reasons[c] for c in social_api
        )

        rows = [
            row
            for item in manifest["files"]
            if item["name"].startswith("kinde-users-")
            for row in csv.DictReader((out / item["name"]).open(newline=""))
        ]
        assert any(row["hashed_password"] for row in rows) and any(not row["hashed_password"] for row in rows)
        assert all(row["password_verified"] == ("TRUE" if row["hashed_password"] else "") for row in rows)
