"""Real data's shapes end to end: external accounts in every shape Clerk has served, and Clerk's JSON export.

The sandbox serves a share of its users' external accounts as Clerk's older shapes (legacy ``google_account``
objects, bare provider names, an account with nothing Kinde could match, an entry naming no provider) and
writes its export as CSV or JSON; the real CLI runs against it over loopback.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from migrator.clerk.accounts import read_external_account
from migrator.sandbox.server import Sandbox
from tests.e2e import clerk_password, cli_env, kinde_state, run_cli, sign_in, write_requests

FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200", "MAX_ATTEMPTS": "2"}
GOOGLE, GITHUB = "conn_google0001", "conn_github0001"
# The table spells one provider bare and one as Clerk does now: both name their provider.
CONFIG = f'[social_connections]\ngoogle = "{GOOGLE}"\noauth_github = "{GITHUB}"\n'
CONNECTIONS = {"oauth_google": GOOGLE, "oauth_github": GITHUB}


def prepare(sandbox: Sandbox, cwd: Path, export_format: str = "csv") -> dict[str, str]:
    (cwd / "config").mkdir(exist_ok=True)
    (cwd / "config" / "migrator.toml").write_text(CONFIG, encoding="utf-8")
    export = cwd / "clerk-export.dat"
    sandbox.write_export(export, export_format)  # type: ignore[arg-type]
    return cli_env(sandbox, CLERK_EXPORT=str(export), **FAST)


def migrated_users(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    dataset = sandbox.dataset
    return {dataset.user_id(i): dataset.user(i) for i in range(dataset.n) if dataset.expected(i)["eligible"]}


def test_every_mapped_account_is_linked_or_named_whatever_its_shape(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=300, account_shapes=0.7)
    dataset = sandbox.dataset
    shapes = {dataset.account_shape(i) for i in range(dataset.n)}
    assert shapes >= {"legacy", "bare", "legacy_bare", "no_identity", "unknown"}, shapes
    env = prepare(sandbox, tmp_path)
    dry = run_cli("run", "--dry-run", "--json", cwd=tmp_path, env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    planned = json.loads(dry.stdout)["plan"]["social_not_carried"]
    result = run_cli("run", "--yes", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "that no Kinde identity can carry" in result.stdout + result.stderr
    kinde = {u["provided_id"]: u for u in kinde_state(sandbox)["users"]}

    linked, named = 0, set()
    for clerk_id, clerk in migrated_users(sandbox).items():
        social = {(i["connection_id"], i["value"]) for i in kinde[clerk_id]["identities"] if i["type"] == "social"}
        wanted = set()
        for raw in clerk["external_accounts"]:
            account = read_external_account(raw)
            connection = CONNECTIONS.get(account.provider or "")
            if account.provider is None or (connection and account.value is None):
                named.add(clerk_id)
            elif connection:
                wanted.add((connection, account.value))
        assert social == wanted, clerk_id
        linked += len(wanted)
    assert linked and named
    assert sum(planned.values()) == len(named) and set(planned) <= {"oauth_google", "oauth_github", "unknown"}

    verified = run_cli("verify", "--json", cwd=tmp_path, env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr  # not blocking: nothing could add them
    outcome = json.loads(verified.stdout)
    assert outcome["counts"]["not_carried"] == len(named) and outcome["counts"]["incomplete"] == 0
    with (tmp_path / outcome["reports"]["verify"]).open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["kind"] == "not_carried"]
    assert {row["clerk_id"] for row in rows} == named
    assert all("not linked" in row["found"] for row in rows)

    status = json.loads(run_cli("status", "--json", cwd=tmp_path, env=env).stdout)
    kinds = {item["kind"]: item["count"] for item in status["warning_kinds"]}
    not_linked = sum(
        count for kind, count in kinds.items() if kind.startswith("external_accounts") and "not linked" in kind
    )
    assert not_linked == len(rows)


@pytest.mark.parametrize("export_format", ["list", "joined", "ndjson"])
def test_a_run_from_the_json_export_plans_and_imports_the_passwords_the_csv_does(
    sandbox_factory, tmp_path: Path, export_format: str
) -> None:
    sandbox = sandbox_factory(users=120)
    by_csv = tmp_path / "csv"
    by_json = tmp_path / "json"
    by_csv.mkdir(), by_json.mkdir()
    csv_plan = run_cli("run", "--dry-run", "--json", cwd=by_csv, env=prepare(sandbox, by_csv))
    env = prepare(sandbox, by_json, export_format)
    json_plan = run_cli("run", "--dry-run", "--json", cwd=by_json, env=env)
    assert csv_plan.returncode == json_plan.returncode == 0, json_plan.stdout + json_plan.stderr
    plan_of = {name: json.loads(r.stdout)["plan"] for name, r in (("csv", csv_plan), ("json", json_plan))}
    password_keys = [key for key in plan_of["csv"] if "password" in key]
    assert password_keys
    assert {k: plan_of["json"][k] for k in password_keys} == {k: plan_of["csv"][k] for k in password_keys}

    result = run_cli("run", "--yes", cwd=by_json, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    dataset = sandbox.dataset
    signed_in = 0
    for i in range(dataset.n):
        expected = dataset.expected(i)
        if expected["eligible"] and expected["hasher"] == "bcrypt" and expected["email"] and not expected["banned"]:
            assert sign_in(sandbox, expected["email"], clerk_password(sandbox, dataset.user_id(i))) == 200, i
            signed_in += 1
    assert signed_in > 10


def test_a_broken_json_export_stops_the_run_before_any_write(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=30)
    env = prepare(sandbox, tmp_path, "list")
    export = Path(env["CLERK_EXPORT"])
    users = json.loads(export.read_text(encoding="utf-8"))
    users[4]["password_hasher"] = ["bcrypt"]
    export.write_text(json.dumps(users), encoding="utf-8")
    result = run_cli("run", "--yes", cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{export}: user 5 ({users[4]['id']}): field 'password_hasher'" in result.stderr
    assert "Traceback" not in result.stderr
    assert write_requests(kinde_state(sandbox)) == 0
