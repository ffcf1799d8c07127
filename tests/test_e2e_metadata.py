"""Issue 14 end to end: metadata as properties, social identities, role permissions and the MFA list.

The real CLI runs against the sandbox over loopback with a ``config/migrator.toml`` mapping Clerk
metadata to Kinde properties and two OAuth providers to Kinde connections.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import pytest

from migrator.sandbox.kinde_app import KindeSandboxConfig
from migrator.sandbox.server import Sandbox
from tests.e2e import cli_env, kinde_state, run_cli, start_cli, write_requests

FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200", "MAX_ATTEMPTS": "2"}
GOOGLE, GITHUB = "conn_google0001", "conn_github0001"
CONFIG = f"""
[social_connections]
oauth_google = "{GOOGLE}"
oauth_github = "{GITHUB}"

[properties]
"public_metadata.plan" = {{ key = "plan" }}
"external_id" = {{ key = "app_user_id" }}
"private_metadata" = {{ key = "clerk_private", type = "multi_line_text" }}

[organization_properties]
"slug" = {{ key = "clerk_slug" }}
"""
SOCIAL_ROUTE = "POST /api/v1/users/{user_id}/identities"
PROPERTIES_ROUTE = "PATCH /api/v1/users/{user_id}/properties"


def prepare(sandbox: Sandbox, cwd: Path) -> dict[str, str]:
    (cwd / "config").mkdir(exist_ok=True)
    (cwd / "config" / "migrator.toml").write_text(CONFIG, encoding="utf-8")
    export = cwd / "clerk-export.csv"
    sandbox.write_export(export)
    return cli_env(sandbox, CLERK_EXPORT=str(export), **FAST)


def eligible(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    dataset = sandbox.dataset
    return {dataset.user_id(i): dataset.user(i) for i in range(dataset.n) if dataset.expected(i)["eligible"]}


def totp_users(export: Path) -> tuple[set[str], set[str]]:
    """(ids with a TOTP secret in the export, the secrets themselves)."""
    with export.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["totp_secret"].strip()]
    return {row["id"] for row in rows}, {row["totp_secret"].strip() for row in rows}


def route_total(state: dict[str, Any], route: str) -> int:
    """Requests Kinde read on ``route`` (a 500 is a request the kill cut in half: nothing was applied)."""
    statuses = state["requests"]["by_route"].get(route, {}).get("by_status", {})
    return sum(n for status, n in statuses.items() if status != "500")


def assert_migrated_extras(sandbox: Sandbox, state: dict[str, Any]) -> None:
    users = {u["provided_id"]: u for u in state["users"]}
    definitions = {p["key"]: p for p in state["properties"]}
    assert definitions["plan"]["type"] == "single_line_text"
    assert definitions["clerk_private"]["type"] == "multi_line_text"
    assert definitions["clerk_slug"]["context"] == "org"
    google = github = 0
    for clerk_id, clerk in eligible(sandbox).items():
        properties = users[clerk_id]["properties"]
        assert properties.get("plan") == (clerk["public_metadata"] or {}).get("plan")
        assert properties.get("app_user_id") == clerk["external_id"]
        private = clerk["private_metadata"] or None
        assert (json.loads(properties["clerk_private"]) if "clerk_private" in properties else None) == private
        social = {(i["connection_id"], i["value"]) for i in users[clerk_id]["identities"] if i["type"] == "social"}
        wanted = {
            ({"oauth_google": GOOGLE, "oauth_github": GITHUB}[a["provider"]], a["email_address"])
            for a in clerk["external_accounts"]
            if a["provider"] in ("oauth_google", "oauth_github")
        }
        assert social == wanted, clerk_id
        google += any(a["provider"] == "oauth_google" for a in clerk["external_accounts"])
        github += any(a["provider"] == "oauth_github" for a in clerk["external_accounts"])
    assert google and github  # the dataset holds both kinds, so the loop above checked them
    roles = {r["key"]: set(r["permissions"]) for r in state["roles"]}
    assert roles["billing_manager"] == {"sys_billing:read", "sys_billing:manage", "invoices:read"}
    assert roles["viewer"] == {"reports:read"}
    slugs = {o["external_id"]: o["properties"].get("clerk_slug") for o in state["organizations"] if o["external_id"]}
    assert slugs == {org["id"]: org["slug"] for org in sandbox.dataset.organizations()}


def assert_no_secret_anywhere(cwd: Path, secrets: set[str], *outputs: str) -> None:
    assert secrets
    for path in (cwd / ".migrator").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(secret.encode() in content for secret in secrets), path
    assert not any(secret in output for secret in secrets for output in outputs)


def mfa_report(cwd: Path, run_id: int) -> dict[str, str]:
    path = cwd / ".migrator" / "runs" / str(run_id) / "mfa-reenrol.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["clerk_id"]: row["action"] for row in csv.DictReader(handle)}


def test_metadata_social_permissions_and_mfa_arrive_and_a_rerun_writes_nothing(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=300)
    env = prepare(sandbox, tmp_path)
    dry = run_cli("run", "--dry-run", "--json", cwd=tmp_path, env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    plan = json.loads(dry.stdout)["plan"]
    assert set(plan["properties_missing"]) >= {"plan (user, from public_metadata.plan)"}
    assert plan["social_unmapped"].get("oauth_microsoft", 0) > 0  # reported per provider, with users
    sample = plan["property_sample"]
    assert sample["properties"] or sample["social"]
    assert kinde_state(sandbox)["users"] == []

    result = run_cli("run", "--yes", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    state = kinde_state(sandbox)
    assert state["duplicate_creations"] == []
    assert_migrated_extras(sandbox, state)

    with_totp, secrets = totp_users(tmp_path / "clerk-export.csv")
    assert set(mfa_report(tmp_path, 2)) == with_totp
    assert_no_secret_anywhere(tmp_path, secrets, dry.stdout, dry.stderr, result.stdout, result.stderr)

    again = run_cli("run", "--yes", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert write_requests(kinde_state(sandbox)) == write_requests(state)  # compared, nothing sent again


def test_missing_property_definitions_stop_a_run_that_may_not_create_them(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=60)
    env = prepare(sandbox, tmp_path)
    result = run_cli("run", "--yes", "--no-create-properties", cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "plan (user, from public_metadata.plan)" in result.stderr
    assert write_requests(kinde_state(sandbox)) == 0


@pytest.mark.parametrize("connection_id_listed", [True, False])
def test_a_killed_run_resumes_without_a_duplicate_write(
    sandbox_factory, tmp_path: Path, connection_id_listed: bool
) -> None:
    """Killed while users get their properties and identities; the resume compares before writing.
    Kinde may list social identities without their connection: they are then matched by value."""
    sandbox = sandbox_factory(users=400, kinde=KindeSandboxConfig(identity_connection_id=connection_id_listed))
    env = prepare(sandbox, tmp_path)
    store = sandbox.kinde_app.state.store
    background = start_cli("run", "--yes", cwd=tmp_path, env={**env, "CONCURRENCY": "8"})
    deadline = time.monotonic() + 120
    try:
        while True:
            with store.lock:
                linked = sum(store.requests.by_route.get(SOCIAL_ROUTE, {}).values())
            if linked >= 10 or background.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.002)
    finally:
        background.kill()
        background.communicate()
    assert linked >= 10, "the run ended before the kill point"

    resumed = run_cli("resume", "--yes", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    state = kinde_state(sandbox)
    assert state["duplicate_creations"] == []
    assert_migrated_extras(sandbox, state)
    social = sum(1 for u in state["users"] for i in u["identities"] if i["type"] == "social")
    with_properties = sum(1 for u in state["users"] if u["properties"])
    assert route_total(state, SOCIAL_ROUTE) == social  # each identity sent once, none refused as a repeat
    assert route_total(state, PROPERTIES_ROUTE) == with_properties
