"""Catch-ups end to end: after a full run, Clerk changes while the sandbox serves; `migrator sync`
brings exactly those changes over (no other write), and a second catch-up writes nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from migrator.config import Settings
from migrator.errors import EXIT_INTERRUPTED
from migrator.events import Event, PhaseAdvanced
from migrator.journal import Journal, RunMode
from migrator.models import PasswordImport
from migrator.passwords import translate
from migrator.render import plan_table
from migrator.reports import Plan
from migrator.runs.api import Sync, run_migration
from migrator.sandbox.clerk_app import ClerkBehaviour
from migrator.sandbox.generator import Dataset
from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import clerk_password, cli_env, kinde_state, run_cli, sign_in, write_requests

USERS = 400
FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200"}


@dataclass
class Step:
    result: subprocess.CompletedProcess[str]
    writes: int  # write requests this command sent to Kinde
    state: dict[str, Any]

    @property
    def output(self) -> dict[str, Any]:
        return json.loads(self.result.stdout)


def migrator(sandbox: Sandbox, workdir: Path, *args: str, stdin: str | None = None) -> Step:
    before = write_requests(kinde_state(sandbox))
    result = run_cli(*args, cwd=workdir, env=cli_env(sandbox, **FAST), stdin=stdin)
    assert "Traceback" not in result.stdout + result.stderr
    state = kinde_state(sandbox)
    return Step(result, write_requests(state) - before, state)


def change_clerk(sandbox: Sandbox, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{sandbox.clerk_url.removesuffix('/v1')}/_sandbox/users", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def by_provided_id(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {u["provided_id"]: u for u in state["users"] if u["provided_id"]}


def importable_bcrypt_users(dataset: Dataset) -> list[int]:
    found = []
    for i in range(60, dataset.n):
        secret = dataset.password(i)
        expected = dataset.expected(i)
        if (
            secret
            and secret[0] == "bcrypt"
            and isinstance(translate(*secret), PasswordImport)
            and expected["eligible"]
            and expected["email"]
            and not expected["banned"]
            and not dataset.changed_after_export(i)
        ):
            found.append(i)
    return found


@dataclass
class Changes:
    added: list[str]
    renamed: list[str]
    banned: str
    password: str
    old_password: str
    deleted: list[str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    workdir = tmp_path_factory.mktemp("cutover")
    with Sandbox(SandboxOptions(users=USERS)) as sandbox:
        sandbox.write_export(workdir / "users.csv")
        yield sandbox, workdir


@pytest.fixture(scope="module")
def full_run(world: tuple[Sandbox, Path]) -> Step:
    sandbox, workdir = world
    step = migrator(sandbox, workdir, "run", "--clerk-export", "users.csv", "--yes", "--json")
    assert step.result.returncode == 0, step.result.stderr
    return step


@pytest.fixture(scope="module")
def changes(world: tuple[Sandbox, Path], full_run: Step) -> Changes:
    sandbox, _ = world
    dataset = sandbox.dataset
    candidates = importable_bcrypt_users(dataset)
    renamed = [dataset.user_id(i) for i in candidates[:2]]
    banned, password = dataset.user_id(candidates[2]), dataset.user_id(candidates[3])
    deleted = [dataset.user_id(i) for i in candidates[4:6]]
    return make_changes(sandbox, renamed, banned, password, deleted)


def make_changes(sandbox: Sandbox, renamed: list[str], banned: str, password: str, deleted: list[str]) -> Changes:
    """What happens in Clerk before a catch-up: 3 sign-ups, two renames, a ban, a new password, deletions."""
    old_password = clerk_password(sandbox, password)
    answer = change_clerk(
        sandbox,
        {
            "add": 3,
            "change": {
                renamed[0]: {"first_name": "Renamed"},
                renamed[1]: {"last_name": "Changed"},
                banned: {"banned": True},
            },
            "password": [password],
            "delete": deleted,
        },
    )
    return Changes(answer["added"], renamed, banned, password, old_password, deleted)


@pytest.fixture(scope="module")
def catch_up(world: tuple[Sandbox, Path], full_run: Step, changes: Changes) -> Step:
    sandbox, workdir = world
    sandbox.write_export(workdir / "users-new.csv")  # a fresh export: the changed password's new digest
    # The export is made after the change: its time, to the second, rounded up.
    now = (datetime.now(UTC) + timedelta(seconds=1)).isoformat(timespec="seconds")
    return migrator(
        sandbox, workdir, "sync", "--clerk-export", "users-new.csv", "--export-time", now,
        "--delete-removed", "--yes", "--json",
    )  # fmt: skip


@pytest.fixture(scope="module")
def second_catch_up(world: tuple[Sandbox, Path], catch_up: Step) -> Step:
    sandbox, workdir = world
    return migrator(sandbox, workdir, "sync", "--yes", "--json")


def test_a_catch_up_brings_exactly_the_changes_over(full_run: Step, catch_up: Step, changes: Changes) -> None:
    assert catch_up.result.returncode == 0, catch_up.result.stderr
    before, after = by_provided_id(full_run.state), by_provided_id(catch_up.state)
    assert set(after) == (set(before) - set(changes.deleted)) | set(changes.added)
    touched = {cid for cid in before if cid in after and before[cid] != after[cid]}
    assert touched == {*changes.renamed, changes.banned}  # a new password of the same method looks alike here
    assert after[changes.renamed[0]]["given_name"] == "Renamed"
    assert after[changes.renamed[1]]["family_name"] == "Changed"
    assert after[changes.banned]["is_suspended"] is True
    assert catch_up.output["mode"] == RunMode.SYNC
    assert catch_up.output["created"] == 3


def test_the_changed_password_signs_in_and_the_old_one_does_not(
    world: tuple[Sandbox, Path], catch_up: Step, changes: Changes
) -> None:
    sandbox, _ = world
    user = by_provided_id(catch_up.state)[changes.password]
    email = next(i["value"] for i in user["identities"] if i["type"] == "email")
    new_password = clerk_password(sandbox, changes.password)
    assert new_password != changes.old_password
    assert sign_in(sandbox, email, new_password) == 200
    assert sign_in(sandbox, email, changes.old_password) == 401


def test_a_second_catch_up_writes_nothing(second_catch_up: Step) -> None:
    assert second_catch_up.result.returncode == 0, second_catch_up.result.stderr
    assert second_catch_up.writes == 0
    assert second_catch_up.output["created"] == 0


def test_status_shows_the_chain_of_runs(world: tuple[Sandbox, Path], second_catch_up: Step) -> None:
    sandbox, workdir = world
    result = run_cli("status", cwd=workdir, env=cli_env(sandbox))
    assert result.returncode == 0, result.stderr
    assert "Runs: 1 run (completed) | 2 sync<-1 (completed) | 3 sync<-2 (completed)" in result.stdout


def patch_requests(state: dict[str, Any]) -> int:
    return state["requests"]["by_route"].get("PATCH /api/v1/user", {}).get("total", 0)


def test_a_killed_catch_up_resumes_and_writes_each_change_once(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=300)
    sandbox.write_export(tmp_path / "users.csv")
    assert migrator(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--yes").result.returncode == 0
    renamed = [sandbox.dataset.user_id(i) for i in importable_bcrypt_users(sandbox.dataset)[:4]]
    change_clerk(sandbox, {"change": {cid: {"first_name": f"New{k}"} for k, cid in enumerate(renamed)}})
    settings = Settings(**{k.lower(): v for k, v in sandbox.env().items()}, state_dir=tmp_path / ".migrator",
                        kinde_max_rps=2000, kinde_initial_rps=200)  # fmt: skip
    patches_before = patch_requests(kinde_state(sandbox))
    applied: list[int] = []

    def die_after_two_updates(event: Event) -> None:
        if isinstance(event, PhaseAdvanced) and event.phase == "update":
            applied.append(event.completed)
            if event.completed == 2:
                raise KeyboardInterrupt

    journal = Journal(settings.state_dir)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(run_migration(settings, journal, Sync(), on_event=die_after_two_updates, confirm=lambda p: True))
    journal.close()
    assert patch_requests(kinde_state(sandbox)) - patches_before == 2

    resumed = migrator(sandbox, tmp_path, "resume", "--yes", "--json")
    assert resumed.result.returncode == 0, resumed.result.stderr
    assert resumed.output["mode"] == RunMode.SYNC
    users = by_provided_id(resumed.state)
    assert [users[cid]["given_name"] for cid in renamed] == [f"New{k}" for k in range(4)]
    assert patch_requests(resumed.state) - patches_before == 4


def test_when_a_ban_does_not_move_updated_at_a_full_catch_up_still_suspends(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=300, clerk=ClerkBehaviour(bans_and_passwords_bump_updated_at=False))
    sandbox.write_export(tmp_path / "users.csv")
    assert migrator(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--yes").result.returncode == 0
    banned = sandbox.dataset.user_id(importable_bcrypt_users(sandbox.dataset)[0])
    change_clerk(sandbox, {"change": {banned: {"banned": True}}})

    quick = migrator(sandbox, tmp_path, "sync", "--yes", "--json")
    assert quick.result.returncode == 0, quick.result.stderr
    assert by_provided_id(quick.state)[banned]["is_suspended"] is False  # Clerk gave no sign of the change

    full = migrator(sandbox, tmp_path, "sync", "--full", "--yes", "--json")
    assert full.result.returncode == 0, full.result.stderr
    assert by_provided_id(full.state)[banned]["is_suspended"] is True
    assert full.writes == 1  # every user compared, only the banned one written


def test_an_identity_removed_in_clerk_is_removed_from_kinde_once(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=120)
    dataset = sandbox.dataset
    sandbox.write_export(tmp_path / "users.csv")
    assert migrator(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--yes", "--json").result.returncode == 0
    picked = next(
        i for i in range(dataset.n)
        if dataset.expected(i)["eligible"] and dataset.expected(i)["username"] and dataset.expected(i)["email"]
    )  # fmt: skip
    clerk_id, username = dataset.user_id(picked), dataset.expected(picked)["username"]
    before = {i["type"] for i in by_provided_id(kinde_state(sandbox))[clerk_id]["identities"]}
    assert {"username", "email"} <= before
    change_clerk(sandbox, {"change": {clerk_id: {"username": None}}})

    catch_up = migrator(sandbox, tmp_path, "sync", "--yes", "--json")
    assert catch_up.result.returncode == 0, catch_up.result.stderr
    identities = by_provided_id(catch_up.state)[clerk_id]["identities"]
    assert username.lower() not in {i["value"].lower() for i in identities}
    assert {i["type"] for i in identities} == before - {"username"}  # the rest stays
    assert catch_up.state["requests"]["by_route"]["DELETE /api/v1/identities/{identity_id}"]["total"] == 1
    again = migrator(sandbox, tmp_path, "sync", "--yes", "--json")
    assert again.result.returncode == 0 and again.writes == 0


def declined_catch_up(sandbox_factory, workdir: Path, action: Sync) -> tuple[Plan, int, Any]:
    """A full run, 2 users renamed and 3 deleted in Clerk, then ``action`` declined: (the plan asked, writes,
    the sandbox)."""
    sandbox = sandbox_factory(users=120)
    sandbox.write_export(workdir / "users.csv")
    assert migrator(sandbox, workdir, "run", "--clerk-export", "users.csv", "--yes").result.returncode == 0
    ours = sorted(by_provided_id(kinde_state(sandbox)))
    change_clerk(sandbox, {"change": {cid: {"first_name": "Renamed"} for cid in ours[:2]}, "delete": ours[2:5]})
    settings = Settings(**{k.lower(): v for k, v in sandbox.env().items()}, state_dir=workdir / ".migrator",
                        kinde_max_rps=2000, kinde_initial_rps=200)  # fmt: skip
    asked: list[Plan] = []
    writes_before = write_requests(kinde_state(sandbox))
    journal = Journal(settings.state_dir)
    try:
        summary = asyncio.run(
            run_migration(
                settings, journal, action, on_event=lambda e: None, confirm=lambda p: asked.append(p) or False
            )
        )
    finally:
        journal.close()
    assert summary.exit_code == EXIT_INTERRUPTED
    return asked[0], write_requests(kinde_state(sandbox)) - writes_before, sandbox


@pytest.mark.parametrize(("delete_removed", "counts"), [(True, (2, 3, 0)), (False, (2, 0, 3))])
def test_the_sync_confirmation_counts_updates_and_deletions_and_declining_writes_nothing(
    sandbox_factory, tmp_path: Path, delete_removed: bool, counts: tuple[int, int, int]
) -> None:
    plan, writes, _ = declined_catch_up(sandbox_factory, tmp_path, Sync(delete_removed=delete_removed))
    assert writes == 0  # only updates and deletions to write, and declined: nothing written
    assert (plan.users_to_update, plan.users_to_delete, plan.users_gone_listed) == counts
    shown = Console(width=200, record=True)
    shown.print(plan_table(plan, title="About to write to Kinde"))
    text = " ".join(shown.export_text().replace("│", " ").split())
    assert "Users to update in Kinde 2" in text
    assert ("Users to delete from Kinde (gone from Clerk) 3" in text) == delete_removed
    assert ("Gone from Clerk, listed only (--delete-removed deletes) 3" in text) != delete_removed


def test_a_catch_up_after_a_declined_one_still_brings_its_changes(sandbox_factory, tmp_path: Path) -> None:
    """A declined catch-up wrote nothing, so a catch-up from the run before it must not take its plans for
    what Kinde holds (a plain `sync` refuses to follow the declined one until it is resumed)."""
    _, writes, sandbox = declined_catch_up(sandbox_factory, tmp_path, Sync())
    assert writes == 0
    assert migrator(sandbox, tmp_path, "sync", "--yes").result.returncode == 2
    after = migrator(sandbox, tmp_path, "sync", "--since", "1", "--yes", "--json")
    assert after.result.returncode == 0, after.result.stdout + after.result.stderr
    renamed = [u for u in kinde_state(sandbox)["users"] if u["given_name"] == "Renamed"]
    assert len(renamed) == 2
