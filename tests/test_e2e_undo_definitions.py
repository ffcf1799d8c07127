"""Undo takes back every Kinde definition and attachment a run made (permissions, property definitions, role
permissions), end to end.

Kinde holds things of its own before the run: a role the run finds (``viewer``) carrying a permission
someone else attached, a permission the run finds, a user property definition the run finds, an
organization imported earlier (the run finds it by external_id) with a value in a property the run
finds, and a user of another tool with a value. The run (``[properties]``, ``[organization_properties]``,
role permissions) creates users, organizations, roles, permissions, property definitions and values,
and attaches a permission to the found role. Its undo must leave Kinde exactly as before, but for the
"Clerk" property categories, which Kinde's API cannot delete and the undo reports as kept.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.config import Settings
from migrator.journal import Journal
from migrator.runs.api import Undo, run_undo
from migrator.sandbox.kinde_app import ALL_SCOPES, KindeSandboxConfig
from migrator.sandbox.server import Sandbox
from tests.e2e import cli_env, kinde_call, kinde_state, run_cli, write_requests

FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200", "MAX_ATTEMPTS": "2"}
CONFIG = """
[properties]
"public_metadata.plan" = { key = "plan" }
"external_id" = { key = "app_user_id" }
"private_metadata" = { key = "clerk_private", type = "multi_line_text" }

[organization_properties]
"slug" = { key = "clerk_slug" }
"name" = { key = "clerk_org_name" }
"""
STRICT = KindeSandboxConfig(
    permission_delete_in_use="refuse", property_delete_with_values="refuse", property_null_value="refused"
)
VOLATILE = ("requests", "creations_by_provided_id", "duplicate_creations", "tokens_issued", "tokens_refused_as_expired")


def ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


def kinde_before_the_run(sandbox: Sandbox) -> dict[str, str]:
    """What another tool put in Kinde before the run; the ids the tests need later."""
    category = ok(kinde_call(sandbox, "POST", "/api/v1/property_categories", json={"name": "Legacy", "context": "usr"}))
    org_category = ok(
        kinde_call(sandbox, "POST", "/api/v1/property_categories", json={"name": "Legacy", "context": "org"})
    )
    for key, context, category_id in (
        ("plan", "usr", category["category"]["id"]),
        ("clerk_slug", "org", org_category["category"]["id"]),
    ):
        body = {"name": key, "key": key, "type": "single_line_text", "context": context, "is_private": False,
                "category_id": category_id}  # fmt: skip
        ok(kinde_call(sandbox, "POST", "/api/v1/properties", json=body))
    viewer = ok(kinde_call(sandbox, "POST", "/api/v1/roles", json={"key": "viewer", "name": "Viewer"}))["role"]["id"]
    ok(kinde_call(sandbox, "POST", "/api/v1/roles", json={"key": "legacy_admin", "name": "Legacy admin"}))
    for key in ("legacy:read", "sys_billing:read"):
        ok(kinde_call(sandbox, "POST", "/api/v1/permissions", json={"key": key, "name": key}))
    permissions = {
        p["key"]: p["id"]
        for p in ok(kinde_call(sandbox, "GET", "/api/v1/permissions", params={"page_size": 500}))["permissions"]
    }
    ok(kinde_call(sandbox, "PATCH", f"/api/v1/roles/{viewer}/permissions",
                  json={"permissions": [{"id": permissions["legacy:read"]}]}))  # fmt: skip
    clerk_org = sandbox.dataset.organizations()[0]
    org = ok(
        kinde_call(sandbox, "POST", "/api/v1/organization", json={"name": "Imported", "external_id": clerk_org["id"]})
    )
    code = org["organization"]["code"]
    ok(
        kinde_call(
            sandbox, "PATCH", f"/api/v1/organizations/{code}/properties", json={"properties": {"clerk_slug": "old"}}
        )
    )
    other = ok(kinde_call(sandbox, "POST", "/api/v1/user", json={
        "profile": {"given_name": "Other"}, "identities": [{"type": "email", "details": {"email": "o@else.example"}}]
    }))  # fmt: skip
    ok(kinde_call(sandbox, "PATCH", f"/api/v1/users/{other['id']}/properties", json={"properties": {"plan": "gold"}}))
    return {"other_user": other["id"], "imported_org": code}


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    """Kinde's content without counters; an empty value is no value (a Kinde that refuses null to clear)."""
    content = {key: value for key, value in state.items() if key not in VOLATILE and key != "property_categories"}
    for holder in (*content["users"], *content["organizations"]):
        holder["properties"] = {k: v for k, v in holder["properties"].items() if v != ""}
    return content


def categories(state: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["context"], c["name"]) for c in state["property_categories"]}


@pytest.fixture(params=["default", "strict"])
def migrated(request, sandbox_factory, tmp_path: Path) -> tuple[Sandbox, Path, dict[str, str], dict[str, Any], dict]:
    """A run with properties and permissions over a Kinde that held things before; (sandbox, cwd, env,
    the state before the run, the ids of what was there). ``strict``: a Kinde that refuses to delete a
    definition still in use and to clear a value with null."""
    sandbox = sandbox_factory(users=200, kinde=STRICT if request.param == "strict" else KindeSandboxConfig())
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "migrator.toml").write_text(CONFIG, encoding="utf-8")
    sandbox.write_export(tmp_path / "clerk-export.csv")
    env = cli_env(sandbox, CLERK_EXPORT=str(tmp_path / "clerk-export.csv"), **FAST)
    ids = kinde_before_the_run(sandbox)
    before = kinde_state(sandbox)
    result = run_cli("run", "--yes", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    ids["run"] = str(json.loads(result.stdout)["run_id"])
    after = kinde_state(sandbox)
    roles = {r["key"]: set(r["permissions"]) for r in after["roles"]}
    assert roles["viewer"] == {"legacy:read", "reports:read"}  # the run attached one to the role it found
    assert {p["key"] for p in after["properties"]} > {p["key"] for p in before["properties"]}
    imported = next(o for o in after["organizations"] if o["code"] == ids["imported_org"])
    assert imported["properties"]["clerk_slug"] == sandbox.dataset.organizations()[0]["slug"]
    return sandbox, tmp_path, env, before, ids


def undo(cwd: Path, env: dict[str, str], *args: str, run: str = "1") -> Any:
    result = run_cli("undo", run, *args, "--json", cwd=cwd, env=env)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def test_undo_leaves_kinde_exactly_as_before_the_run(migrated) -> None:
    sandbox, cwd, env, before, ids = migrated
    assert ids["run"] == "1"  # the undo helper's default
    dry = undo(cwd, env, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)["planned"]
    assert planned["organization_property"] == 2  # slug back to "old", the new name property cleared
    assert planned["role_permission"] == 1  # reports:read on viewer, a role the run found
    assert planned["permission"] == 10  # the 11 permissions the roles carry but sys_billing:read (found)
    assert planned["property"] == 3  # app_user_id, clerk_private, clerk_org_name (plan, clerk_slug: found)
    assert any("property_category" in note for note in json.loads(dry.stdout)["kept"])
    human = run_cli("undo", "1", "--dry-run", cwd=cwd, env=env)
    assert "property definitions" in human.stdout and "would keep" in human.stdout
    ran = kinde_state(sandbox)
    assert write_requests(ran) == write_requests(kinde_state(sandbox))

    result = undo(cwd, env, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    after = kinde_state(sandbox)
    assert comparable(after) == comparable(before)
    assert categories(after) - categories(before) == {("usr", "Clerk"), ("org", "Clerk")}
    summary = json.loads(result.stdout)
    assert summary["outcomes"]["property_category"] == {"kept": 2}
    assert summary["outcomes"]["permission"] == {"deleted": 10}
    assert summary["outcomes"]["property"] == {"deleted": 3}
    assert summary["outcomes"]["role_permission"] == {"deleted": 1}
    assert summary["outcomes"]["organization_property"] == {"deleted": 2}
    assert all("property_category" in note for note in summary["kept"])

    again = undo(cwd, env, "--yes")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["already_done"] is True
    assert write_requests(kinde_state(sandbox)) == write_requests(after)


def test_definitions_in_use_by_others_are_kept_and_reported(migrated) -> None:
    """After the run, another tool gives a user of its own a value of a property the run created, attaches
    a permission the run created to its own role, and changes a value the run wrote on the imported org."""
    sandbox, cwd, env, _, ids = migrated
    ok(kinde_call(sandbox, "PATCH", f"/api/v1/users/{ids['other_user']}/properties",
                  json={"properties": {"app_user_id": "crm-7"}}))  # fmt: skip
    roles = {
        r["key"]: r["id"] for r in ok(kinde_call(sandbox, "GET", "/api/v1/roles", params={"page_size": 500}))["roles"]
    }
    permissions = {
        p["key"]: p["id"]
        for p in ok(kinde_call(sandbox, "GET", "/api/v1/permissions", params={"page_size": 500}))["permissions"]
    }
    ok(kinde_call(sandbox, "PATCH", f"/api/v1/roles/{roles['legacy_admin']}/permissions",
                  json={"permissions": [{"id": permissions["tickets:manage"]}]}))  # fmt: skip
    ok(kinde_call(sandbox, "PATCH", f"/api/v1/organizations/{ids['imported_org']}/properties",
                  json={"properties": {"clerk_slug": "renamed"}}))  # fmt: skip

    result = undo(cwd, env, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    kept = "\n".join(summary["kept"])
    assert "property usr:app_user_id: 1 user(s)" in kept
    assert "permission tickets:manage: still attached to role(s) legacy_admin" in kept
    assert "organization_property" in kept and "changed since the run wrote it" in kept
    after = kinde_state(sandbox)
    assert "app_user_id" in {p["key"] for p in after["properties"]}
    assert "clerk_private" not in {p["key"] for p in after["properties"]}
    assert {r["key"]: set(r["permissions"]) for r in after["roles"]}["legacy_admin"] == {"tickets:manage"}
    other = next(u for u in after["users"] if u["id"] == ids["other_user"])
    assert other["properties"] == {"plan": "gold", "app_user_id": "crm-7"}
    imported = next(o for o in after["organizations"] if o["code"] == ids["imported_org"])
    assert imported["properties"] == {"clerk_slug": "renamed"}


class KillAfter(httpx.AsyncHTTPTransport):
    """Passes requests on; after the ``n``-th answer to ``route`` arrives, the process is "killed"."""

    def __init__(self, route: str, n: int) -> None:
        super().__init__()
        self.route, self.left = route, n

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if f"{request.method} {request.url.path}".startswith(self.route):
            self.left -= 1
            if self.left == 0:
                raise KeyboardInterrupt
        return response


def test_a_killed_undo_of_definitions_resumes_and_a_second_one_does_nothing(migrated) -> None:
    sandbox, cwd, env, before, ids = migrated
    settings = Settings(**{k.lower(): v for k, v in sandbox.env().items()}, state_dir=cwd / ".migrator",
                        kinde_max_rps=2000, kinde_initial_rps=200)  # fmt: skip
    journal = Journal(settings.state_dir)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(
            run_undo(
                settings,
                journal,
                Undo(int(ids["run"])),
                on_event=lambda e: None,
                confirm=lambda c: True,
                kinde_transport=KillAfter("DELETE /api/v1/permissions/", 3),
            )
        )
    journal.close()
    halfway = kinde_state(sandbox)
    assert 0 < len(halfway["permissions"]) - len(before["permissions"]) < 10  # killed among the permissions

    result = undo(cwd, env, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["outcomes"]["permission"] == {"deleted": 10}
    after = kinde_state(sandbox)
    assert comparable(after) == comparable(before)
    deletes = after["requests"]["by_route"]["DELETE /api/v1/permissions/{permission_id}"]["by_status"]
    assert deletes == {"200": 10}  # each permission deleted once: the resumed undo did not repeat one

    again = undo(cwd, env, "--yes")
    assert json.loads(again.stdout)["already_done"] is True
    assert write_requests(kinde_state(sandbox)) == write_requests(after)


@pytest.mark.parametrize("missing", ["delete:properties", "delete:permissions", "delete:role_permissions"])
def test_undo_refuses_a_token_known_to_lack_a_scope_it_needs(sandbox_factory, tmp_path: Path, missing: str) -> None:
    sandbox = sandbox_factory(users=200, kinde=KindeSandboxConfig(scopes=ALL_SCOPES - {missing}))
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "migrator.toml").write_text(CONFIG, encoding="utf-8")
    sandbox.write_export(tmp_path / "clerk-export.csv")
    env = cli_env(sandbox, CLERK_EXPORT=str(tmp_path / "clerk-export.csv"), **FAST)
    ok(kinde_call(sandbox, "POST", "/api/v1/roles", json={"key": "viewer", "name": "Viewer"}))  # found: attached to
    assert run_cli("run", "--yes", cwd=tmp_path, env=env).returncode == 0
    ran = kinde_state(sandbox)

    result = undo(tmp_path, env, "--yes")
    assert result.returncode == 3, result.stdout + result.stderr
    assert missing in result.stderr
    assert write_requests(kinde_state(sandbox)) == write_requests(ran)  # refused before anything was deleted
