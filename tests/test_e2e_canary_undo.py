"""Canaries and undo end to end, against the sandbox over loopback.

A canary of 50 migrates exactly those 50 (and their memberships, in only their organizations);
undo removes exactly what its run created and leaves a user created by someone else in the same
tenant untouched; a killed undo continues; a second undo writes nothing.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from migrator.config import Settings
from migrator.events import Event, Notice, PhaseAdvanced
from migrator.journal import Journal, RunMode
from migrator.runs.api import Canary, Undo, run_migration, run_undo
from migrator.sandbox.server import Sandbox
from migrator.stages.canary import sample_rank
from tests.e2e import cli_env, kinde_call, kinde_state, run_cli, write_requests

FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200"}
SAMPLE, SEED = 50, 7


def cli(sandbox: Sandbox, cwd: Path, *args: str) -> Any:
    export = cwd / "clerk-export.csv"
    if not export.exists():
        sandbox.write_export(export)
    result = run_cli(*args, cwd=cwd, env=cli_env(sandbox, CLERK_EXPORT=str(export), **FAST))
    assert "Traceback" not in result.stdout + result.stderr
    return result


def expected_sample(sandbox: Sandbox) -> set[str]:
    dataset = sandbox.dataset
    ranked = sorted((sample_rank(SEED, dataset.user_id(i)), dataset.user_id(i)) for i in range(dataset.n))
    return {clerk_id for _, clerk_id in ranked[:SAMPLE]}


def eligible(sandbox: Sandbox, ids: set[str]) -> set[str]:
    dataset = sandbox.dataset
    return {cid for cid in ids if dataset.expected(dataset.index_of(cid))["eligible"]}


def clerk_memberships(sandbox: Sandbox, ids: set[str]) -> set[tuple[str, str]]:
    """(clerk user id, clerk org id) of the chosen users."""
    return {
        (m["public_user_data"]["user_id"], m["organization"]["id"])
        for m in sandbox.dataset.memberships()
        if m["public_user_data"]["user_id"] in ids
    }


def kinde_memberships(state: dict[str, Any]) -> set[tuple[str, str]]:
    external = {o["code"]: o["external_id"] for o in state["organizations"]}
    return {(u["provided_id"], external[org["code"]]) for u in state["users"] for org in u["organizations"]}


@pytest.fixture
def canary(sandbox_factory, tmp_path: Path) -> tuple[Sandbox, Path, dict[str, Any]]:
    sandbox = sandbox_factory(users=400)
    result = cli(sandbox, tmp_path, "run", "--sample", str(SAMPLE), "--seed", str(SEED), "--yes", "--json")
    assert result.returncode == 0, result.stderr
    return sandbox, tmp_path, json.loads(result.stdout)


def test_a_canary_of_50_migrates_exactly_those_users_and_their_memberships(canary) -> None:
    sandbox, _, summary = canary
    chosen = expected_sample(sandbox)
    state = kinde_state(sandbox)
    assert summary["mode"] == RunMode.CANARY
    assert {u["provided_id"] for u in state["users"]} == eligible(sandbox, chosen)
    assert kinde_memberships(state) == clerk_memberships(sandbox, eligible(sandbox, chosen))
    organizations = {o["external_id"] for o in state["organizations"] if not o["is_default"]}
    assert organizations == {org for _, org in clerk_memberships(sandbox, eligible(sandbox, chosen))}


def test_the_same_seed_picks_the_same_sample_and_only_lists_ids(canary, tmp_path_factory) -> None:
    sandbox, _, _ = canary
    chosen = sorted(eligible(sandbox, expected_sample(sandbox)))[:3]
    workdir = tmp_path_factory.mktemp("only")
    (workdir / "ids.txt").write_text("\n".join(chosen[1:]) + "\n")
    result = cli(sandbox, workdir, "run", "--only", chosen[0], "--only-file", "ids.txt", "--yes", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["already_present"] == 3  # found in Kinde, not ours: nothing created
    assert json.loads(result.stdout)["created"] == 0


def test_undo_removes_what_its_run_created_and_nothing_else(canary) -> None:
    sandbox, workdir, summary = canary
    foreign = kinde_call(
        sandbox, "POST", "/api/v1/user",
        json={"profile": {"given_name": "Other"}, "identities": [{"type": "email", "details": {"email": "o@else.example"}}]},
    )  # fmt: skip
    assert foreign.status_code in (200, 201), foreign.text
    state = kinde_state(sandbox)
    ours = [u for u in state["users"] if u["provided_id"]]
    org_with_stranger = next(o for o in state["organizations"] if not o["is_default"])
    kinde_call(sandbox, "POST", f"/api/v1/organizations/{org_with_stranger['code']}/users",
               json={"users": [{"id": foreign.json()["id"]}]})  # fmt: skip
    relabelled = ours[0]  # someone else's tool took this user over since: no longer ours to delete
    kinde_call(sandbox, "PATCH", "/api/v1/user", params={"id": relabelled["id"]}, json={"provided_id": "crm-42"})

    before = write_requests(kinde_state(sandbox))
    dry = cli(sandbox, workdir, "undo", str(summary["run_id"]), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["planned"]["user"] == len(ours)
    assert write_requests(kinde_state(sandbox)) == before

    result = cli(sandbox, workdir, "undo", str(summary["run_id"]), "--yes", "--json")
    assert result.returncode == 0, result.stderr
    after = kinde_state(sandbox)
    assert {u["id"] for u in after["users"]} == {foreign.json()["id"], relabelled["id"]}
    still_used = {org_with_stranger["code"]} | {org["code"] for org in relabelled["organizations"]}
    assert {o["code"] for o in after["organizations"] if not o["is_default"]} == still_used
    outcome = json.loads(result.stdout)["outcomes"]
    assert outcome["user"] == {"deleted": len(ours) - 1, "kept": 1}

    again = cli(sandbox, workdir, "undo", str(summary["run_id"]), "--yes", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["already_done"] is True
    assert write_requests(kinde_state(sandbox)) == write_requests(after)


def test_a_killed_undo_continues_where_it_stopped(canary) -> None:
    sandbox, workdir, summary = canary
    ours = {u["id"] for u in kinde_state(sandbox)["users"]}
    settings = Settings(**{k.lower(): v for k, v in sandbox.env().items()}, state_dir=workdir / ".migrator",
                        kinde_max_rps=2000, kinde_initial_rps=200, concurrency=2)  # fmt: skip

    def stop_after_ten(event: Event) -> None:
        if isinstance(event, PhaseAdvanced) and event.phase == "undo" and event.completed >= 10:
            raise KeyboardInterrupt

    journal = Journal(settings.state_dir)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(
            run_undo(settings, journal, Undo(summary["run_id"]), on_event=stop_after_ten, confirm=lambda c: True)
        )
    journal.close()
    left = {u["id"] for u in kinde_state(sandbox)["users"]}
    assert left and left < ours

    result = cli(sandbox, workdir, "undo", str(summary["run_id"]), "--yes", "--json")
    assert result.returncode == 0, result.stderr
    assert kinde_state(sandbox)["users"] == []
    deleted = json.loads(result.stdout)["outcomes"]["user"]
    assert deleted == {"deleted": len(ours)}


def test_a_canary_verifies_its_own_users_and_names_verify_csv(canary) -> None:
    _, workdir, summary = canary
    assert summary["verification"]["verdict"] == "passed"
    assert summary["verification"]["counts"]["missing"] == 0
    verify_csv = workdir / summary["reports"]["verify"]
    assert verify_csv.name == "verify.csv"
    assert verify_csv.read_text().splitlines()[1:] == []  # the header only: no finding


def canary_run(sandbox: Sandbox, workdir: Path, only: list[str], on_event: Any = None) -> Any:
    export = workdir / "clerk-export.csv"
    if not export.exists():
        sandbox.write_export(export)
    settings = Settings(**{k.lower(): v for k, v in sandbox.env().items()}, clerk_export=export,
                        state_dir=workdir / "state", kinde_max_rps=2000, kinde_initial_rps=200)  # fmt: skip
    journal = Journal(settings.state_dir)
    try:
        return asyncio.run(
            run_migration(
                settings,
                journal,
                Canary(only=tuple(only)),
                on_event=on_event or (lambda event: None),
                confirm=lambda plan: True,
            )
        )
    finally:
        journal.close()


def test_a_canary_verify_ignores_other_users_and_fails_on_a_user_gone_missing(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=120)
    chosen = sorted(eligible(sandbox, {sandbox.dataset.user_id(i) for i in range(sandbox.dataset.n)}))
    stranger = kinde_call(sandbox, "POST", "/api/v1/user", json={
        "provided_id": "user_2strangerNotInThisJournal", "profile": {"given_name": "Stranger"},
        "identities": [{"type": "email", "details": {"email": "stranger@example.org"}}],
    })  # fmt: skip
    assert stranger.status_code == 200, stranger.text
    first = canary_run(sandbox, tmp_path, chosen[:5])
    second = canary_run(sandbox, tmp_path, chosen[5:8])  # Kinde holds the first canary's users and a stranger
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert second.verification["counts"] == {
        k: 0 for k in ("missing", "duplicated", "unexpected", "drift", "incomplete")
    }

    def delete_one_before_verify(event: Event) -> None:
        if isinstance(event, Notice) and event.message.startswith("verifying run"):
            ours = next(u for u in kinde_state(sandbox)["users"] if u["provided_id"] == chosen[8])
            assert kinde_call(sandbox, "DELETE", "/api/v1/user", params={"id": ours["id"]}).status_code == 200

    third = canary_run(sandbox, tmp_path, chosen[8:10], delete_one_before_verify)
    assert third.failed == 0 and third.created == 2  # the run itself went well
    assert third.verification["verdict"] == "failed"
    assert third.verification["counts"]["missing"] == 1
    assert third.exit_code == 1
    assert chosen[8] in Path(third.reports["verify"]).read_text()
