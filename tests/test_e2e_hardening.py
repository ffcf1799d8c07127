"""What the real APIs may answer that our defaults do not: every run still ends by itself, with an
exit code that tells the truth, and never creates a user twice.

Each case flips one sandbox switch (``ClerkBehaviour``, ``KindeSandboxConfig``) and drives the CLI
(or, where a hook inside the run is needed, the library entry point) against the sandbox over
loopback sockets.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from migrator.config import Settings
from migrator.events import Event, PhaseStarted
from migrator.journal import Journal
from migrator.reports import Summary
from migrator.runs.api import Start, run_migration
from migrator.sandbox.clerk_app import ClerkBehaviour
from migrator.sandbox.kinde_app import KindeSandboxConfig
from migrator.sandbox.server import Sandbox
from tests.e2e import cli_env, kinde_call, kinde_state, run_cli

FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200", "MAX_ATTEMPTS": "2"}


def eligible_ids(sandbox: Sandbox) -> set[str]:
    dataset = sandbox.dataset
    return {dataset.user_id(i) for i in range(dataset.n) if dataset.expected(i)["eligible"]}


def assert_every_eligible_user_once(sandbox: Sandbox) -> dict[str, Any]:
    state = kinde_state(sandbox)
    assert state["duplicate_creations"] == []
    assert {u["provided_id"] for u in state["users"]} == eligible_ids(sandbox)
    return state


def cli(sandbox: Sandbox, cwd: Path, *args: str) -> Any:
    export = cwd / "clerk-export.csv"
    if not export.exists():
        sandbox.write_export(export)
    return run_cli(*args, cwd=cwd, env=cli_env(sandbox, CLERK_EXPORT=str(export), **FAST))


def test_a_cursor_the_server_refuses_falls_back_to_offsets(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=1200, clerk=ClerkBehaviour(cursor="rejected"))
    result = cli(sandbox, tmp_path, "run", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_every_eligible_user_once(sandbox)
    statuses = sandbox.clerk_app.state.request_counts["statuses"]
    assert statuses["422"] == 1  # asked once with the cursor, then offsets for good


def test_a_clerk_outage_mid_fetch_ends_the_run_and_resume_finishes_despite_an_ignored_cursor(
    sandbox_factory, tmp_path: Path
) -> None:
    behaviour = ClerkBehaviour(outage_after_pages=1)
    sandbox = sandbox_factory(users=1200, clerk=behaviour)
    first = cli(sandbox, tmp_path, "run", "--yes")
    assert first.returncode == 3, first.stdout + first.stderr
    assert "migrator resume 1" in first.stderr
    assert kinde_state(sandbox)["users"] == []  # stopped in the fetch: nothing written

    behaviour.outage_after_pages = None  # Clerk is back, but (an older API version) ignores the cursor
    behaviour.cursor = "ignored"
    second = cli(sandbox, tmp_path, "resume", "--yes")
    assert second.returncode == 0, second.stdout + second.stderr
    assert_every_eligible_user_once(sandbox)
    journal = Journal(tmp_path / ".migrator")
    try:
        assert journal.users.staged_count(1) == 1200
    finally:
        journal.close()


def test_identities_kinde_refuses_inside_a_create_fail_the_user_until_retried(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=300, kinde=KindeSandboxConfig(refused_phone_prefixes=("+55",)))
    refused = {
        sandbox.dataset.user_id(i)
        for i in range(300)
        if sandbox.dataset.expected(i)["eligible"] and (sandbox.dataset.expected(i)["phone"] or "").startswith("+55")
    }
    assert refused
    first = cli(sandbox, tmp_path, "run", "--yes", "--json")
    assert first.returncode == 1, first.stdout + first.stderr
    summary = json.loads(first.stdout)
    assert summary["failed"] == len(refused)
    assert [f["code"] for f in summary["failures"]] == ["IDENTITY_NOT_CREATED"]
    status = json.loads(cli(sandbox, tmp_path, "status", "--json").stdout)
    assert status["steps"]["identities"]["pending"] == len(refused)

    sandbox.kinde_config.refused_phone_prefixes = ()
    retried = cli(sandbox, tmp_path, "retry-failed", "--yes", "--json")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    state = assert_every_eligible_user_once(sandbox)
    phones = {u["provided_id"]: [i["value"] for i in u["identities"] if i["type"] == "phone"] for u in state["users"]}
    for clerk_id in refused:
        assert phones[clerk_id] and phones[clerk_id][0].startswith("+55")


# -- memberships: an in-run hook changes Kinde just before the organizations stage -----------------


def migrate_with_hook(sandbox: Sandbox, tmp_path: Path, before_organizations) -> tuple[Summary, Journal]:
    export = tmp_path / "clerk-export.csv"
    sandbox.write_export(export)
    settings = Settings(**{k.lower(): v for k, v in sandbox.env().items()}, clerk_export=export,
                        state_dir=tmp_path / "state", kinde_max_rps=2000, kinde_initial_rps=200)  # fmt: skip
    journal = Journal(settings.state_dir)

    def on_event(event: Event) -> None:
        if isinstance(event, PhaseStarted) and event.phase == "organizations":
            before_organizations()

    summary = asyncio.run(run_migration(settings, journal, Start(), on_event=on_event, confirm=lambda plan: True))
    return summary, journal


def test_a_member_already_in_the_organization_answered_400_is_not_a_failure(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=400, kinde=KindeSandboxConfig(existing_member_status=400))
    for org in sandbox.dataset.organizations():  # organizations exist already: the run adopts them
        created = kinde_call(
            sandbox, "POST", "/api/v1/organization", json={"name": org["name"], "external_id": org["id"]}
        )
        assert created.status_code == 200, created.text
    early: list[str] = []

    def add_some_members_first() -> None:
        """Three Clerk members of one organization are already in it in Kinde (an earlier, lost answer)."""
        state = kinde_state(sandbox)
        kinde_ids = {u["provided_id"]: u["id"] for u in state["users"]}
        org_id = next(iter(sandbox.dataset.memberships()))["organization"]["id"]
        code = next(o["code"] for o in state["organizations"] if o["external_id"] == org_id)
        members = [
            m["public_user_data"]["user_id"] for m in sandbox.dataset.memberships() if m["organization"]["id"] == org_id
        ]
        early.extend(kinde_ids[m] for m in members if m in kinde_ids)
        del early[3:]
        body = {"users": [{"id": kinde_id} for kinde_id in early]}
        assert kinde_call(sandbox, "POST", f"/api/v1/organizations/{code}/users", json=body).status_code == 200

    summary, journal = migrate_with_hook(sandbox, tmp_path, add_some_members_first)
    journal.close()
    assert early
    assert summary.exit_code == 0, (summary.failures, summary.memberships_failed)
    assert summary.memberships_failed == 0
    assert summary.memberships_added == summary.plan.memberships_pending > 0
    by_route = kinde_state(sandbox)["requests"]["by_route"]
    assert by_route["POST /api/v1/organizations/{org_code}/users"]["by_status"].get("400", 0) > 0


def test_a_refused_member_is_isolated_and_the_rest_of_its_batch_is_added(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=400)
    members_by_user: dict[str, int] = {}
    for membership in sandbox.dataset.memberships():
        user_id = membership["public_user_data"]["user_id"]
        members_by_user[user_id] = members_by_user.get(user_id, 0) + 1
    gone: list[str] = []

    def delete_one_member() -> None:
        users = kinde_state(sandbox)["users"]
        victim = next(u for u in users if u["provided_id"] in members_by_user)
        gone.append(victim["provided_id"])
        assert kinde_call(sandbox, "DELETE", "/api/v1/user", params={"id": victim["id"]}).status_code == 200

    summary, journal = migrate_with_hook(sandbox, tmp_path, delete_one_member)
    try:
        failed = journal.organizations.failed_memberships(summary.run_id)
    finally:
        journal.close()
    assert summary.exit_code == 1
    assert {m.clerk_user_id for m in failed} == set(gone)
    assert summary.memberships_failed == members_by_user[gone[0]]
    assert summary.memberships_added == summary.plan.memberships_pending - summary.memberships_failed
