"""Deletions counted only on proof, end to end against the sandbox over loopback.

``undo`` and ``sync --delete-removed`` count a user, organization or role "deleted" only when Kinde confirmed
the DELETE, and "already-gone" only when Kinde proved it absent: its not-found answer (400 or 404
``USER_NOT_FOUND``, ``ORGANIZATION_NOT_FOUND``, ``ROLE_NOT_FOUND``: both readings are played), or a list of
Kinde's that lacks it. A Kinde that refuses the route itself (404 ``ROUTE_NOT_FOUND``) proves nothing: the
command stops with exit 3 and counts nothing as deleted; once the route answers again, the undo continues,
and a second undo sends nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.journal import DeletionState, Journal
from migrator.kinde.client import not_found_subject
from migrator.sandbox.kinde_app import KindeSandboxConfig
from migrator.sandbox.server import Sandbox
from tests.e2e import kinde_call, kinde_state, write_requests
from tests.test_e2e_canary_undo import cli

USERS = 80
ORGANIZED = 200  # the generator's smallest dataset with two organizations
READINGS = [pytest.param(400, id="not-found-400"), pytest.param(404, id="not-found-404")]


def migrated(sandbox_factory, tmp_path: Path, status: int = 404, users: int = USERS) -> tuple[Sandbox, int]:
    """A sandbox whose Kinde answers an unknown user, organization and role with ``status``, after a full run."""
    config = KindeSandboxConfig(
        unknown_user_status=status, unknown_organization_status=status, unknown_role_status=status
    )
    sandbox = sandbox_factory(users=users, kinde=config)
    result = cli(sandbox, tmp_path, "run", "--yes", "--json")
    assert result.returncode == 0, result.stderr
    return sandbox, json.loads(result.stdout)["run_id"]


def ours(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [u for u in kinde_state(sandbox)["users"] if u["provided_id"]]


def delete_elsewhere(sandbox: Sandbox, users: list[dict[str, Any]]) -> None:
    """Another tool of the same tenant deletes these users first."""
    for user in users:
        answer = kinde_call(sandbox, "DELETE", "/api/v1/user", params={"id": user["id"]})
        assert answer.status_code == 200, answer.text


def latest_run(sandbox: Sandbox, cwd: Path) -> int:
    return max(r["id"] for r in json.loads(cli(sandbox, cwd, "runs", "--json").stdout))


def undo_status(sandbox: Sandbox, cwd: Path, undo_run: int) -> dict[str, dict[str, int]]:
    result = cli(sandbox, cwd, "status", str(undo_run), "--json")
    assert result.returncode == 0, result.stderr
    return {item["kind"]: item["states"] for item in json.loads(result.stdout)["undo"]["deletions"]}


@pytest.mark.parametrize("status", READINGS)
def test_undo_counts_users_and_organizations_deleted_elsewhere_as_already_gone(
    sandbox_factory, tmp_path: Path, status: int
) -> None:
    sandbox, run_id = migrated(sandbox_factory, tmp_path, status, ORGANIZED)
    users = ours(sandbox)
    delete_elsewhere(sandbox, users[:3])
    organization = next(o for o in kinde_state(sandbox)["organizations"] if not o["is_default"])
    assert kinde_call(sandbox, "DELETE", f"/api/v1/organization/{organization['code']}").status_code == 200
    organizations = [o for o in kinde_state(sandbox)["organizations"] if not o["is_default"]]
    assert organizations

    result = cli(sandbox, tmp_path, "undo", str(run_id), "--yes", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["outcomes"]["user"] == {"deleted": len(users) - 3, "already-gone": 3}
    assert summary["outcomes"]["organization"] == {"deleted": len(organizations), "already-gone": 1}
    after = kinde_state(sandbox)
    assert after["users"] == []
    assert [o for o in after["organizations"] if not o["is_default"]] == []

    states = undo_status(sandbox, tmp_path, summary["run_id"])
    assert states["user"] == {"deleted": len(users) - 3, "already-gone": 3}
    text = cli(sandbox, tmp_path, "status", str(summary["run_id"])).stdout
    assert "already gone" in text

    verified = cli(sandbox, tmp_path, "verify", str(summary["run_id"]), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    verdict = json.loads(verified.stdout)
    assert (verdict["verdict"], verdict["counts"], verdict["expected_users"]) == ("passed", {"not_gone": 0}, len(users))

    before = write_requests(kinde_state(sandbox))
    again = cli(sandbox, tmp_path, "undo", str(run_id), "--yes", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["already_done"] is True
    assert write_requests(kinde_state(sandbox)) == before


def test_undo_stops_with_exit_3_and_counts_nothing_when_kinde_refuses_the_user_route(
    sandbox_factory, tmp_path: Path
) -> None:
    sandbox, run_id = migrated(sandbox_factory, tmp_path)
    users = ours(sandbox)
    sandbox.kinde_config.refused_route = "user"  # 404 ROUTE_NOT_FOUND on /api/v1/user, whatever the method
    before = write_requests(kinde_state(sandbox))

    result = cli(sandbox, tmp_path, "undo", str(run_id), "--yes")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "ROUTE_NOT_FOUND" in result.stdout + result.stderr
    assert "deleted" not in result.stdout
    state = kinde_state(sandbox)
    assert len(ours(sandbox)) == len(users)
    assert state["requests"]["by_route"].get("DELETE /api/v1/user", {}).get("total", 0) == 0
    assert write_requests(state) == before
    undo_run = latest_run(sandbox, tmp_path)
    states = undo_status(sandbox, tmp_path, undo_run)
    assert not states.get("user", {}).get("deleted") and not states.get("user", {}).get("already-gone")

    sandbox.kinde_config.refused_route = "none"  # the route answers again: the undo continues
    resumed = cli(sandbox, tmp_path, "undo", str(run_id), "--yes", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["outcomes"]["user"] == {"deleted": len(users)}
    assert ours(sandbox) == []
    again = cli(sandbox, tmp_path, "undo", str(run_id), "--yes", "--json")
    assert json.loads(again.stdout)["already_done"] is True


@pytest.mark.parametrize("route", ["organization", "role"])
def test_undo_stops_with_exit_3_when_kinde_refuses_the_organization_or_role_route(
    sandbox_factory, tmp_path: Path, route: str
) -> None:
    sandbox, run_id = migrated(sandbox_factory, tmp_path)
    sandbox.kinde_config.refused_route = route
    result = cli(sandbox, tmp_path, "undo", str(run_id), "--yes")
    assert result.returncode == 3, result.stdout + result.stderr
    undo_run = latest_run(sandbox, tmp_path)
    states = undo_status(sandbox, tmp_path, undo_run)[route]
    assert not states.get("deleted") and not states.get("already-gone"), states
    remaining = kinde_state(sandbox)["roles" if route == "role" else "organizations"]
    assert remaining


def change_clerk(sandbox: Sandbox, body: dict[str, Any]) -> None:
    response = httpx.post(f"{sandbox.clerk_url.removesuffix('/v1')}/_sandbox/users", json=body, timeout=30)
    response.raise_for_status()


@pytest.mark.parametrize("status", READINGS)
def test_sync_delete_removed_counts_deleted_and_already_gone_apart(
    sandbox_factory, tmp_path: Path, status: int
) -> None:
    sandbox, _ = migrated(sandbox_factory, tmp_path, status)
    users = ours(sandbox)[:3]
    change_clerk(sandbox, {"delete": [u["provided_id"] for u in users]})
    delete_elsewhere(sandbox, users[:1])  # one of them is gone from Kinde already

    result = cli(sandbox, tmp_path, "sync", "--delete-removed", "--yes", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["deletions"] == {"deleted": 2, "already-gone": 1}
    assert not {u["id"] for u in users} & {u["id"] for u in kinde_state(sandbox)["users"]}
    status_report = json.loads(cli(sandbox, tmp_path, "status", str(summary["run_id"]), "--json").stdout)
    assert status_report["cutover"]["deletions"]["user"] == {"deleted": 2, "already-gone": 1}
    text = cli(sandbox, tmp_path, "status", str(summary["run_id"])).stdout
    assert "already-gone 1" in text


def test_sync_delete_removed_stops_with_exit_3_when_kinde_refuses_the_user_route(
    sandbox_factory, tmp_path: Path
) -> None:
    sandbox, _ = migrated(sandbox_factory, tmp_path)
    users = ours(sandbox)[:3]
    change_clerk(sandbox, {"delete": [u["provided_id"] for u in users]})
    sandbox.kinde_config.refused_route = "user"

    result = cli(sandbox, tmp_path, "sync", "--delete-removed", "--yes", "--json")
    assert result.returncode == 3, result.stdout + result.stderr
    assert {u["id"] for u in users} <= {u["id"] for u in kinde_state(sandbox)["users"]}
    sync_run = latest_run(sandbox, tmp_path)
    deletions = json.loads(cli(sandbox, tmp_path, "status", str(sync_run), "--json").stdout)["cutover"]["deletions"]
    assert not deletions["user"].get("deleted") and not deletions["user"].get("already-gone")


@pytest.mark.parametrize(
    ("status", "code", "subject"),
    [
        (400, "USER_NOT_FOUND", "user"),
        (404, "USER_NOT_FOUND", "user"),
        (404, "user_not_found", "user"),
        (400, "INVALID_USER_ID", "user"),
        (400, "ORGANIZATION_NOT_FOUND", "organization"),
        (404, "ORGANIZATION_INVALID", "organization"),
        (400, "ORG_NOT_FOUND", "organization"),
        (400, "ROLE_NOT_FOUND", "role"),
        (404, "ROLE_INVALID", "role"),
        (400, "INVALID_PERMISSION_ID", "permission"),
        (404, "ROUTE_NOT_FOUND", None),
        (404, None, None),
        (400, "INVALID_REQUEST", None),
        (400, "INVALID_PERMISSION_ID_ROLE", None),
        (403, "USER_NOT_FOUND", None),
        (500, "USER_NOT_FOUND", None),
    ],
)
def test_only_a_not_found_code_proves_absence(status: int, code: str | None, subject: str | None) -> None:
    assert not_found_subject(status, code) == subject


def test_verify_of_an_undo_fails_on_a_user_it_counted_deleted_that_kinde_still_has(
    sandbox_factory, tmp_path: Path
) -> None:
    sandbox, run_id = migrated(sandbox_factory, tmp_path)
    sandbox.kinde_config.refused_route = "user"
    assert cli(sandbox, tmp_path, "undo", str(run_id), "--yes").returncode == 3  # stopped: nothing deleted
    undo_run = latest_run(sandbox, tmp_path)
    journal = Journal(tmp_path / ".migrator")
    try:
        claimed = journal.cutover.deletions(undo_run, "user")[0]
        journal.cutover.record_deletion(undo_run, "user", claimed.key, DeletionState.DELETED)  # a claim without proof
    finally:
        journal.close()
    sandbox.kinde_config.refused_route = "none"

    verified = cli(sandbox, tmp_path, "verify", str(undo_run), "--json")
    assert verified.returncode == 1, verified.stdout + verified.stderr
    verdict = json.loads(verified.stdout)
    assert (verdict["verdict"], verdict["counts"]) == ("failed", {"not_gone": 1})
    assert [e["clerk_id"] for e in verdict["examples"]["not_gone"]] == [claimed.key]
