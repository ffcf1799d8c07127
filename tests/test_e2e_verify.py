"""End to end: `migrator verify` proves a run from Kinde's answers, and the id map rewrites an app's table.

One sandbox and one run serve the module, in order: a verify of the clean run passes; then users are
deleted, duplicated and altered behind the migrator's back (sandbox-only doors) and verify names each
one with its kind; the id map and its SQL are checked against a SQLite table of Clerk ids.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.people_csv import read_csv
from migrator.sandbox.kinde_app import KindeSandboxConfig
from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import cli_env, kinde_state, run_cli

USERS = 300
FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200"}


def cli(sandbox: Sandbox, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args, cwd=workdir, env=cli_env(sandbox, **FAST))
    assert "Traceback" not in result.stdout + result.stderr
    return result


def verify_json(sandbox: Sandbox, workdir: Path) -> tuple[int, dict[str, Any]]:
    result = cli(sandbox, workdir, "verify", "--json")
    return result.returncode, json.loads(result.stdout)


def findings(workdir: Path, report: str) -> list[dict[str, str]]:
    """A report's rows, read back through the reader that strips the spreadsheet guard."""
    with (workdir / report).open(newline="", encoding="utf-8") as handle:
        header, *rows = read_csv(handle)
    return [dict(zip(header, row, strict=True)) for row in rows]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    workdir = tmp_path_factory.mktemp("verify")
    with Sandbox(SandboxOptions(users=USERS, kinde=KindeSandboxConfig(default_org_joins_new_users=True))) as sandbox:
        sandbox.write_export(workdir / "users.csv")
        run = cli(sandbox, workdir, "run", "--clerk-export", "users.csv", "--yes", "--json")
        assert run.returncode == 0, run.stderr[-3000:]
        yield sandbox, workdir, json.loads(run.stdout)


def test_the_run_names_its_reports_in_its_own_folder(world: Any) -> None:
    _, workdir, summary = world
    folder = workdir / ".migrator" / "runs" / str(summary["run_id"])
    names = {"summary", "failures", "skipped", "id_map", "org_map", "password_resets", "mfa_reenrol", "report"}
    assert set(summary["reports"]) == names
    for path in summary["reports"].values():
        assert (workdir / path).parent == folder
        assert oct((workdir / path).stat().st_mode & 0o777) == "0o600"
    assert json.loads((folder / "summary.json").read_text())["run"]["created"] == summary["created"]
    skipped = findings(workdir, summary["reports"]["skipped"])
    assert len(skipped) == sum(summary["skipped"].values()) > 0  # the generator designs a few conflicts


def test_verify_passes_after_a_clean_run(world: Any) -> None:
    """Also with Kinde putting every new user in its default organization (not drift)."""
    sandbox, workdir, summary = world
    code, result = verify_json(sandbox, workdir)
    assert code == 0, result
    assert result["verdict"] == "passed"
    assert result["counts"] == {"missing": 0, "duplicated": 0, "unexpected": 0, "drift": 0, "incomplete": 0}
    assert result["kinde_users"] == result["expected_users"] == summary["created"]
    assert findings(workdir, result["reports"]["verify"]) == []
    status = cli(sandbox, workdir, "status", "--json")
    assert json.loads(status.stdout)["verify"]["verdict"] == "passed"


def test_id_map_has_every_migrated_user_and_its_sql_leaves_no_clerk_id(world: Any, tmp_path: Path) -> None:
    sandbox, workdir, summary = world
    users = kinde_state(sandbox)["users"]
    kinde_users = {u["provided_id"]: u["id"] for u in users}
    rows = findings(workdir, summary["reports"]["id_map"])
    assert {r["clerk_user_id"]: r["kinde_user_id"] for r in rows} == kinde_users
    emails = {u["id"]: next((i["value"].lower() for i in u["identities"] if i["type"] == "email"), "") for u in users}
    assert {r["kinde_user_id"]: r["email"] for r in rows} == emails

    app_db = tmp_path / "app.sqlite3"
    with sqlite3.connect(app_db) as db:
        db.execute("CREATE TABLE accounts(id INTEGER PRIMARY KEY, clerk_user_id TEXT)")
        db.executemany("INSERT INTO accounts(clerk_user_id) VALUES (?)", [(c,) for c in kinde_users] + [("other",)])
    result = cli(sandbox, workdir, "report", "id-map", "--sql", "accounts.clerk_user_id", "--dialect", "sqlite")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("UPDATE") == 1
    with sqlite3.connect(app_db) as db:
        db.executescript(result.stdout)
        after = [r[0] for r in db.execute("SELECT clerk_user_id FROM accounts ORDER BY id")]
    assert after == [*kinde_users.values(), "other"]  # every Clerk id rewritten, nothing else touched

    refused = cli(sandbox, workdir, "report", "id-map", "--sql", "accounts; DROP TABLE x")
    assert refused.returncode == 2 and "TABLE.COLUMN" in refused.stderr


def test_verify_names_each_change_made_behind_its_back(world: Any) -> None:
    sandbox, workdir, _ = world
    state = kinde_state(sandbox)
    members = [u for u in state["users"] if any(o["code"] != default(state) for o in u["organizations"])]
    plain = [u for u in state["users"] if u not in members]
    deleted, twin_of, renamed = plain[0], plain[1], plain[2]
    left = members[0]
    left_org = next(o["code"] for o in left["organizations"] if o["code"] != default(state))
    door = httpx.Client(base_url=f"{sandbox.kinde_url}/_sandbox/users", timeout=30)
    assert door.delete(f"/{deleted['id']}").status_code == 200
    twin = door.post(f"/{twin_of['id']}/duplicate").json()["id"]
    assert door.patch(f"/{renamed['id']}", json={"given_name": "Renamed"}).status_code == 200
    assert door.patch(f"/{left['id']}", json={"leave_organizations": [left_org]}).status_code == 200
    stranger = door.post(f"/{plain[3]['id']}/duplicate", json={"provided_id": "user_unknown123"}).json()["id"]

    code, result = verify_json(sandbox, workdir)
    assert code == 1
    assert result["verdict"] == "failed"
    rows = findings(workdir, result["reports"]["verify"])
    seen = {(r["kind"], r["clerk_id"], r["field"]) for r in rows}
    assert ("missing", deleted["provided_id"], "user") in seen
    assert ("duplicated", twin_of["provided_id"], "clerk_id") in seen
    assert ("duplicated", twin_of["provided_id"], "email") in seen
    assert ("drift", renamed["provided_id"], "given_name") in seen
    assert ("incomplete", left["provided_id"], "membership") in seen
    assert ("unexpected", "user_unknown123", "provided_id") in seen
    renamed_row = next(r for r in rows if r["field"] == "given_name")
    assert renamed_row["found"] == "Renamed" and renamed_row["kinde_id"] == renamed["id"]
    duplicated = next(r for r in rows if r["kind"] == "duplicated" and r["field"] == "clerk_id")
    assert set(duplicated["kinde_id"].split()) == {twin_of["id"], twin}
    assert stranger in {r["kinde_id"] for r in rows}
    assert len(rows) == 7, rows  # nothing else: the stranger shares plain[3]'s email too
    assert sum(result["counts"].values()) == len(rows)

    status = cli(sandbox, workdir, "status")
    assert "Last verify" in status.stdout and "failed" in status.stdout
    summary_json = json.loads((workdir / result["reports"]["summary"]).read_text())
    assert summary_json["verify"]["counts"] == result["counts"] and "run" in summary_json


def default(state: dict[str, Any]) -> str:
    return next(o["code"] for o in state["organizations"] if o["is_default"])


def test_no_report_holds_a_secret_or_a_digest(world: Any) -> None:
    sandbox, workdir, _ = world
    folder = workdir / ".migrator" / "runs"
    blob = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert sandbox.secret_key.encode() not in blob
    assert sandbox.kinde_config.client_secret.encode() not in blob
    assert b"$2" not in blob  # no bcrypt digest
    assert {oct(p.stat().st_mode & 0o777) for p in folder.rglob("*") if p.is_file()} == {"0o600"}
    assert not [p for p in folder.rglob(".*.tmp")]
    assert os.stat(folder / "1").st_mode & 0o077 == 0


def test_identities_paged_one_by_one_still_verify_clean(tmp_path: Path) -> None:
    """Kinde's identities endpoint has no documented page size: one per page must still be read whole."""
    config = KindeSandboxConfig(identities_page_size=1)
    with Sandbox(SandboxOptions(users=40, kinde=config)) as sandbox:
        sandbox.write_export(tmp_path / "users.csv")
        assert cli(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--yes").returncode == 0
        code, result = verify_json(sandbox, tmp_path)
        state = kinde_state(sandbox)
    assert code == 0, result
    held = sum(len(user["identities"]) for user in state["users"])
    assert held > len(state["users"])  # some users do need a second page
    assert state["requests"]["by_route"]["GET /api/v1/users/{user_id}/identities"]["total"] == held
