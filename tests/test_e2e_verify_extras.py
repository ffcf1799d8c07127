"""Issue 14 end to end: `migrator verify` reads back the properties, social identities and role permissions
a run wrote, names each one changed behind its back, and reads none of them when the run wrote none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.e2e import cli_env, kinde_state, run_cli
from tests.test_e2e_metadata import FAST, prepare
from tests.test_e2e_verify import findings

PROPERTIES_READ = "GET /api/v1/users/{user_id}/properties"
ROLE_PERMISSIONS_READ = "GET /api/v1/roles/{role_id}/permissions"


def verify(cwd: Path, env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    result = run_cli("verify", "--json", cwd=cwd, env=env)
    assert "Traceback" not in result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def reads(state: dict[str, Any], route: str) -> int:
    return state["requests"]["by_route"].get(route, {}).get("total", 0)


def test_verify_names_changed_properties_social_identities_and_role_permissions(sandbox_factory, tmp_path) -> None:
    sandbox = sandbox_factory(users=120)
    env = prepare(sandbox, tmp_path)
    result = run_cli("run", "--yes", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    code, clean = verify(tmp_path, env)
    assert code == 0 and clean["counts"]["drift"] == clean["counts"]["incomplete"] == 0, clean["examples"]

    users = kinde_state(sandbox)["users"]
    with_plan = next(u for u in users if "plan" in u["properties"])
    with_social = next(u for u in users if any(i["type"] == "social" for i in u["identities"]))
    social_value = next(i["value"] for i in with_social["identities"] if i["type"] == "social")
    door = httpx.Client(base_url=f"{sandbox.kinde_url}/_sandbox", timeout=30)
    assert door.patch(f"/users/{with_plan['id']}", json={"properties": {"plan": "tampered"}}).status_code == 200
    assert door.patch(f"/users/{with_social['id']}", json={"remove_social": [social_value]}).status_code == 200
    assert door.patch("/roles/viewer", json={"remove_permissions": ["reports:read"]}).status_code == 200

    code, failed = verify(tmp_path, env)
    rows = findings(tmp_path, failed["reports"]["verify"])
    seen = {(r["kind"], r["clerk_id"], r["field"]): r for r in rows}
    assert code == 1
    plan_row = seen[("drift", with_plan["provided_id"], "property:plan")]
    assert plan_row["found"] == "tampered" and plan_row["expected"] == with_plan["properties"]["plan"]
    assert seen[("incomplete", with_social["provided_id"], "social")]["expected"].endswith(social_value)
    assert seen[("incomplete", "", "role_permission")]["expected"] == "viewer: reports:read"
    assert len(rows) == 3, rows


def test_verify_reads_no_properties_when_the_run_wrote_none(sandbox_factory, tmp_path: Path) -> None:
    """Without [properties] no property is read; role permissions (always migrated) are read once per role."""
    sandbox = sandbox_factory(users=40)
    sandbox.write_export(tmp_path / "users.csv")
    env = cli_env(sandbox, **FAST)
    assert run_cli("run", "--clerk-export", "users.csv", "--yes", cwd=tmp_path, env=env).returncode == 0
    before = kinde_state(sandbox)
    code, result = verify(tmp_path, env)
    assert code == 0, result
    after = kinde_state(sandbox)
    assert reads(after, PROPERTIES_READ) == 0
    with_permissions = [r for r in after["roles"] if r["permissions"]]
    assert reads(after, ROLE_PERMISSIONS_READ) - reads(before, ROLE_PERMISSIONS_READ) == len(with_permissions)
