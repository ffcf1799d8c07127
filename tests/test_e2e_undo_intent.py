"""Undo takes back a role or an organization a run created even when the run was killed between Kinde's
create and the journal's record of it, end to end against the sandbox.

The run records its intent just before each create; the resume, looking before it re-sends, finds the
role or organization and, the intent being its own, records it as created. The rule, both ways: an
intent of the run and the object found under our key / external_id = ours; no intent = found, kept by
the undo (a role that existed before the run), and "already exists" in answer to our first clean send
= someone else's, made since we looked.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.config import Settings
from migrator.journal import Journal
from migrator.runs.api import Start, Undo, run_migration, run_undo
from migrator.sandbox.server import Sandbox
from migrator.stages.undo import UNDO_KINDS
from tests.e2e import cli_env, kinde_call, kinde_state, run_cli

FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200", "MAX_ATTEMPTS": "2"}
ROLES, ORGANIZATIONS = "/api/v1/roles", "/api/v1/organization"
VOLATILE = ("requests", "creations_by_provided_id", "duplicate_creations", "tokens_issued", "tokens_refused_as_expired")


class KillAfterCreate(httpx.AsyncHTTPTransport):
    """Passes requests on; once Kinde has answered the first ``POST path``, the process is "killed" (the
    answer never reaches the migrator, so the journal never records the create)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path, self.killed = path, False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.method == "POST" and request.url.path == self.path and not self.killed:
            assert response.status_code in (200, 201), response.text  # Kinde did create it
            self.killed = True
            raise KeyboardInterrupt
        return response


class SomeoneElseCreatesFirst(httpx.AsyncHTTPTransport):
    """Before the migrator's first ``POST /api/v1/roles`` reaches Kinde, another tool creates that role."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__()
        self.sandbox, self.raced = sandbox, ""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == ROLES and not self.raced:
            body = json.loads(request.content)
            self.raced = body["key"]
            created = await asyncio.to_thread(
                kinde_call, self.sandbox, "POST", ROLES, json={"key": body["key"], "name": "Theirs"}
            )
            assert created.status_code == 201, created.text
        return await super().handle_async_request(request)


def settings_for(sandbox: Sandbox, cwd: Path) -> Settings:
    return Settings(**{k.lower(): v for k, v in sandbox.env().items()}, clerk_export=cwd / "clerk-export.csv",
                    state_dir=cwd / ".migrator", kinde_max_rps=2000, kinde_initial_rps=200)  # fmt: skip


def migrate_until_killed(sandbox: Sandbox, cwd: Path, path: str) -> None:
    """``migrator run``, killed right after Kinde answered the first create at ``path``."""
    sandbox.write_export(cwd / "clerk-export.csv")
    journal = Journal(cwd / ".migrator")
    try:
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(
                run_migration(
                    settings_for(sandbox, cwd),
                    journal,
                    Start(),
                    on_event=lambda event: None,
                    confirm=lambda plan: True,
                    kinde_transport=KillAfterCreate(path),
                )
            )
    finally:
        journal.close()


def cli(sandbox: Sandbox, cwd: Path, *args: str) -> Any:
    env = cli_env(sandbox, CLERK_EXPORT=str(cwd / "clerk-export.csv"), **FAST)
    result = run_cli(*args, "--json", cwd=cwd, env=env)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def content(state: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in state.items() if key not in VOLATILE}


def a_role_kinde_had_before(sandbox: Sandbox) -> str:
    """``admin``: one of the run's roles, there before the run (the run finds it; its undo keeps it)."""
    created = kinde_call(sandbox, "POST", ROLES, json={"key": "admin", "name": "Admin (ours, not Clerk's)"})
    assert created.status_code == 201, created.text
    return "admin"


@pytest.mark.parametrize("path", [ROLES, ORGANIZATIONS], ids=["role", "organization"])
def test_what_a_killed_run_created_before_recording_it_is_undone_after_the_resume(
    path: str, sandbox_factory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(users=200)
    kept = a_role_kinde_had_before(sandbox)
    before = kinde_state(sandbox)
    migrate_until_killed(sandbox, tmp_path, path)
    killed = kinde_state(sandbox)
    roles = {r["key"] for r in killed["roles"]}
    organizations = {o["external_id"] for o in killed["organizations"] if o["external_id"]}
    first_organization = min(o["id"] for o in sandbox.dataset.organizations())  # the run goes in id order
    if path == ROLES:
        assert roles - {r["key"] for r in before["roles"]} == {"billing_manager"}  # the first role the run lacked
    else:
        assert organizations == {first_organization}
    journal = Journal(tmp_path / ".migrator")
    unrecorded = [r.key for r in journal.organizations.roles(1) if r.create_intent] + [
        o.clerk_org_id for o in journal.organizations.all(1) if o.create_intent
    ]
    journal.close()
    assert unrecorded == (["billing_manager"] if path == ROLES else [first_organization])

    resumed = cli(sandbox, tmp_path, "resume", "--yes")
    assert resumed["exit_code"] == 0
    migrated = kinde_state(sandbox)
    assert len([r for r in migrated["roles"] if r["key"] == "billing_manager"]) == 1  # never created twice
    assert len([o for o in migrated["organizations"] if o["external_id"]]) == len(sandbox.dataset.organizations())

    undone = cli(sandbox, tmp_path, "undo", "1", "--yes")
    assert undone["outcomes"]["role"] == {"deleted": 4}  # the run's 5 roles but admin, found
    assert undone["outcomes"]["organization"] == {"deleted": len(sandbox.dataset.organizations())}
    after = kinde_state(sandbox)
    assert {r["key"] for r in after["roles"]} == {kept}
    assert content(after) == content(before)


def test_an_undo_without_the_resume_finds_the_organization_by_external_id(sandbox_factory, tmp_path: Path) -> None:
    """The run is killed right after Kinde created its first organization and never resumed: the undo, with no
    Kinde code in the journal, finds the organization by its external_id (the Clerk id) and deletes it."""
    sandbox = sandbox_factory(users=200)
    before = kinde_state(sandbox)
    migrate_until_killed(sandbox, tmp_path, ORGANIZATIONS)
    assert len([o for o in kinde_state(sandbox)["organizations"] if o["external_id"]]) == 1

    dry = cli(sandbox, tmp_path, "undo", "1", "--dry-run")
    assert dry["planned"]["organization"] == 1 and dry["planned"]["role"] == 5
    undone = cli(sandbox, tmp_path, "undo", "1", "--yes")
    assert undone["outcomes"]["organization"] == {"deleted": 1}
    assert content(kinde_state(sandbox)) == content(before)


def test_a_role_someone_else_creates_between_the_look_and_the_create_is_kept(sandbox_factory, tmp_path: Path) -> None:
    """Kinde answers our first clean create "already exists": the role is someone else's, made since we
    looked; the run uses it, its undo keeps it."""
    sandbox = sandbox_factory(users=200)
    sandbox.write_export(tmp_path / "clerk-export.csv")
    race = SomeoneElseCreatesFirst(sandbox)
    journal = Journal(tmp_path / ".migrator")
    try:
        run = run_migration(
            settings_for(sandbox, tmp_path),
            journal,
            Start(),
            on_event=lambda event: None,
            confirm=lambda plan: True,
            kinde_transport=race,
        )
        summary = asyncio.run(run)
        assert summary.exit_code == 0
        assert race.raced == "admin"  # the first role of the run, in key order
        assert "admin" not in journal.organizations.roles_created_by_run(1) and "billing_manager" in journal.organizations.roles_created_by_run(1)
    finally:
        journal.close()

    undone = cli(sandbox, tmp_path, "undo", "1", "--yes")
    assert undone["outcomes"]["role"] == {"deleted": 4}
    assert [(r["key"], r["name"]) for r in kinde_state(sandbox)["roles"]] == [("admin", "Theirs")]


# -- `migrator status` of an undo run ------------------------------------------------------------------


class KillAfterDeletes(httpx.AsyncHTTPTransport):
    """Passes requests on; after Kinde answered ``n`` user deletions, the undo's process is "killed"."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.method == "DELETE" and request.url.path.startswith("/api/v1/user"):
            self.left -= 1
            if self.left == 0:
                raise KeyboardInterrupt
        return response


def someone_else_joins(sandbox: Sandbox, org_code: str) -> None:
    """A user of another tool becomes a member of an organization the run created: the undo must keep it."""
    body = {"profile": {"given_name": "Other"}, "identities": [{"type": "email", "details": {"email": "o@else.test"}}]}
    other = kinde_call(sandbox, "POST", "/api/v1/user", json=body).json()
    added = kinde_call(
        sandbox, "POST", f"/api/v1/organizations/{org_code}/users", json={"users": [{"id": other["id"]}]}
    )
    assert added.status_code == 200, added.text


def test_status_of_an_undo_run_shows_its_deletions_not_an_empty_table_of_user_steps(
    sandbox_factory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(users=200)
    a_role_kinde_had_before(sandbox)
    sandbox.write_export(tmp_path / "clerk-export.csv")
    assert cli(sandbox, tmp_path, "run", "--yes")["exit_code"] == 0
    users_created = len(kinde_state(sandbox)["users"])  # Kinde had none before the run
    joined = min(o["id"] for o in sandbox.dataset.organizations())
    code = next(o["code"] for o in kinde_state(sandbox)["organizations"] if o["external_id"] == joined)
    someone_else_joins(sandbox, code)
    journal = Journal(tmp_path / ".migrator")
    try:
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(
                run_undo(settings_for(sandbox, tmp_path), journal, Undo(1), on_event=lambda event: None,
                         confirm=lambda planned: True, kinde_transport=KillAfterDeletes(3))
            )  # fmt: skip
    finally:
        journal.close()
    env = cli_env(sandbox, **FAST)

    stopped = run_cli("status", cwd=tmp_path, env=env)  # the latest run: the undo
    assert stopped.returncode == 0, stopped.stderr
    assert "Run 2 (undo of run 1): interrupted" in stopped.stdout
    assert "`migrator undo 1` continues it" in stopped.stdout and "migrator resume" not in stopped.stdout
    halfway = json.loads(run_cli("status", "2", "--json", cwd=tmp_path, env=env).stdout)["undo"]
    users = next(item["states"] for item in halfway["deletions"] if item["kind"] == "user")
    assert users.get("deleted", 0) <= 3 and users["pending"] > 0  # killed at the third deletion (or in flight)

    assert cli(sandbox, tmp_path, "undo", "1", "--yes")["exit_code"] == 0
    shown = run_cli("status", "2", cwd=tmp_path, env=env)
    assert shown.returncode == 0 and "Traceback" not in shown.stdout + shown.stderr
    for per_user in ("Users fetched", "lookup", "password", "Failed"):
        assert per_user not in shown.stdout
    assert "Run 2 (undo of run 1): completed" in shown.stdout
    assert f"organization {joined}: 1 member(s) this run did not create are still in it: kept" in shown.stdout
    undo = json.loads(run_cli("status", "2", "--json", cwd=tmp_path, env=env).stdout)["undo"]
    assert undo["base_run_id"] == 1
    deletions = {item["kind"]: item["states"] for item in undo["deletions"]}
    assert [item["kind"] for item in undo["deletions"]] == [k for k in UNDO_KINDS if k in deletions]  # undo's order
    assert set(deletions["role_permission"]) == {"deleted"}  # what the run attached to admin, a role it found
    assert deletions["user"] == {"deleted": users_created}
    assert deletions["organization"] == {"deleted": len(sandbox.dataset.organizations()) - 1, "kept": 1}
    assert deletions["role"] == {"deleted": 4}
    assert undo["kept"] == [
        {"kind": "organization", "key": joined, "detail": "1 member(s) this run did not create are still in it: kept"}
    ]
    assert undo["failed"] == []
    assert "organizations" in shown.stdout and "roles" in shown.stdout  # the table's rows
    listed = run_cli("status", "2", "--failed", "--csv", cwd=tmp_path, env=env)  # the items, not users
    assert listed.returncode == 0, listed.stderr
    assert list(csv.DictReader(io.StringIO(listed.stdout))) == [
        {"state": "kept", "kind": "organization", "key": joined, "detail": undo["kept"][0]["detail"]}
    ]
