"""End to end: a catch-up after an import (`migrator sync --since <export run>`), and the undo of an export.

`migrator export` writes the files, the sandbox's dashboard import ingests them, `run --only-file` migrates
the users no file carries; then Clerk changes, and the catch-up first learns which Kinde user each exported
user became (provided_id = Clerk id), then brings exactly the changes over. An export whose files are not
all in Kinde is refused (nothing written, the absent users listed), and `undo <export run>` takes the
imported users back out.
"""

from __future__ import annotations

import asyncio
import csv
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from migrator.config import Settings
from migrator.events import Event, PhaseAdvanced
from migrator.journal import Journal, RunMode
from migrator.runs.api import Sync, run_migration
from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import clerk_password, kinde_state, sign_in
from tests.test_e2e_cutover import (
    Changes,
    Step,
    by_provided_id,
    change_clerk,
    importable_bcrypt_users,
    make_changes,
    migrator,
    patch_requests,
)
from tests.test_e2e_import_files import FORMAT_OF_PART, listed_ids, upload, upload_all

USERS = 240
SMALL_MB = "0.01"  # several user files: a partial upload is possible


def export(sandbox: Sandbox, workdir: Path) -> tuple[int, dict[str, Any], dict[str, set[str]]]:
    """`migrator export` of every user (the run id, the manifest, the Clerk ids per file kind)."""
    step = migrator(
        sandbox, workdir, "export", "--format", "kinde-ndjson", "--out", "out", "--clerk-export", "users.csv",
        "--max-file-mb", SMALL_MB, "--create-roles", "--json",
    )  # fmt: skip
    assert step.result.returncode == 0, step.result.stderr[-3000:]
    manifest = step.output
    return manifest["run_id"], manifest, listed_ids(workdir / "out", manifest)


def only_file(sandbox: Sandbox, workdir: Path, path: str) -> Step:
    step = migrator(sandbox, workdir, "run", "--clerk-export", "users.csv", "--only-file", path, "--yes", "--json")
    assert step.result.returncode == 0, step.result.stderr[-3000:]
    return step


def file_users(sandbox: Sandbox, ids: dict[str, set[str]]) -> list[str]:
    """Users in an import file with an importable bcrypt password, an email, not banned: good to change."""
    dataset = sandbox.dataset
    return [dataset.user_id(i) for i in importable_bcrypt_users(dataset) if dataset.user_id(i) in ids["files"]]


def settings_for(sandbox: Sandbox, workdir: Path) -> Settings:
    env = {k.lower(): v for k, v in sandbox.env().items()}
    return Settings(**env, state_dir=workdir / ".migrator", kinde_max_rps=2000, kinde_initial_rps=200)


@dataclass
class World:
    sandbox: Sandbox
    workdir: Path
    export_run: int
    ids: dict[str, set[str]]
    imported: Step  # Kinde after the upload and `run --only-file`
    changes: Changes
    catch_up: Step


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    workdir = tmp_path_factory.mktemp("import-sync")
    with Sandbox(SandboxOptions(users=USERS)) as sandbox:
        sandbox.write_export(workdir / "users.csv")
        export_run, manifest, ids = export(sandbox, workdir)
        assert ids["api"]  # the dataset has users only the API carries (banned, reset requested, ...)
        upload_all(sandbox, workdir / "out", "kinde-ndjson", manifest)
        imported = only_file(sandbox, workdir, "out/api-users.csv")
        picked = file_users(sandbox, ids)
        renamed, banned, password = picked[:2], picked[2], picked[3]
        deleted = [picked[4], sorted(ids["api"] & set(by_provided_id(imported.state)))[0]]
        changes = make_changes(sandbox, renamed, banned, password, deleted)  # one of a file, one of api-users.csv
        sandbox.write_export(workdir / "users-new.csv")  # a fresh export: the changed password's new digest
        now = (datetime.now(UTC) + timedelta(seconds=1)).isoformat(timespec="seconds")
        catch_up = migrator(
            sandbox, workdir, "sync", "--since", str(export_run), "--clerk-export", "users-new.csv",
            "--export-time", now, "--delete-removed", "--yes", "--json",
        )  # fmt: skip
        yield World(sandbox, workdir, export_run, ids, imported, changes, catch_up)


def test_a_catch_up_after_an_import_brings_exactly_the_changes_over(world: World) -> None:
    catch_up, changes = world.catch_up, world.changes
    assert catch_up.result.returncode == 0, catch_up.result.stdout[-2000:] + catch_up.result.stderr[-3000:]
    before, after = by_provided_id(world.imported.state), by_provided_id(catch_up.state)
    assert set(before) == world.ids["files"] | world.ids["api"]
    assert set(after) == (set(before) - set(changes.deleted)) | set(changes.added)
    touched = {cid for cid in before if cid in after and before[cid] != after[cid]}
    assert touched == {*changes.renamed, changes.banned}
    assert after[changes.renamed[0]]["given_name"] == "Renamed"
    assert after[changes.renamed[1]]["family_name"] == "Changed"
    assert after[changes.banned]["is_suspended"] is True
    assert catch_up.state["duplicate_creations"] == []
    summary = catch_up.output
    assert (summary["mode"], summary["created"]) == ("sync", 3)
    assert "found in Kinde (created by its import)" in catch_up.result.stderr
    journal = Journal(world.workdir / ".migrator")
    try:
        assert journal.runs.get(summary["run_id"]).parent_run_id == world.export_run
    finally:
        journal.close()


def test_an_imported_user_who_changed_their_password_signs_in_with_the_new_one(world: World) -> None:
    user = by_provided_id(world.catch_up.state)[world.changes.password]
    email = next(i["value"] for i in user["identities"] if i["type"] == "email")
    new_password = clerk_password(world.sandbox, world.changes.password)
    assert new_password != world.changes.old_password
    assert sign_in(world.sandbox, email, new_password) == 200
    assert sign_in(world.sandbox, email, world.changes.old_password) == 401


def test_the_catch_up_again_since_the_export_writes_nothing(world: World) -> None:
    again = migrator(world.sandbox, world.workdir, "sync", "--since", str(world.export_run), "--yes", "--json")
    assert again.result.returncode == 0, again.result.stderr[-3000:]
    assert again.writes == 0 and again.output["created"] == 0
    assert "GET /api/v1/users" not in _routes_since(world.catch_up.state, again.state)  # every Kinde id known


def _routes_since(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    old = before["requests"]["by_route"]
    return {r for r, n in after["requests"]["by_route"].items() if n["total"] != old.get(r, {}).get("total", 0)}


def test_a_catch_up_after_a_partial_import_is_refused_and_writes_nothing(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=USERS)
    sandbox.write_export(tmp_path / "users.csv")
    export_run, manifest, ids = export(sandbox, tmp_path)
    out = tmp_path / "out"
    parts = [f["name"] for f in manifest["files"] if f["name"].startswith("kinde-users-")]
    assert len(parts) > 1
    upload(sandbox, out / "organizations.csv", "organizations")
    assert manifest["files"][0]["name"] == parts[0]
    upload(sandbox, out / parts[0], "kinde-ndjson")  # the rest not uploaded yet
    added = change_clerk(sandbox, {"add": 2, "change": {sorted(ids["files"])[0]: {"first_name": "Early"}}})["added"]

    refused = migrator(sandbox, tmp_path, "sync", "--since", str(export_run), "--delete-removed", "--yes")
    assert refused.result.returncode == 2, refused.result.stdout + refused.result.stderr
    message = " ".join(refused.result.stderr.split())
    assert f"run {export_run} is an export" in message and "are not in Kinde yet" in message
    assert f"migrator verify {export_run}" in message and "api-users.csv" in message
    assert "Traceback" not in message
    assert refused.writes == 0  # nothing created twice, nothing taken for deleted
    listed = tmp_path / ".migrator" / "runs" / str(export_run) / "not-in-kinde.csv"
    with listed.open() as handle:
        absent = {row["clerk_id"] for row in csv.DictReader(handle)}
    in_kinde = set(by_provided_id(kinde_state(sandbox)))
    assert absent == (ids["files"] | ids["api"]) - in_kinde
    assert _modes(tmp_path) == ["export"]  # no catch-up run was started

    # The operator uploads the rest and migrates api-users.csv, as the message says: then the catch-up runs.
    for item in manifest["files"][1:]:  # in the manifest's order: the first was uploaded above
        stem = item["name"].rsplit("-", 1)[0]
        if stem in FORMAT_OF_PART:
            upload(sandbox, out / item["name"], FORMAT_OF_PART[stem] or "kinde-ndjson")
    only_file(sandbox, tmp_path, "out/api-users.csv")
    catch_up = migrator(sandbox, tmp_path, "sync", "--since", str(export_run), "--yes", "--json")
    assert catch_up.result.returncode == 0, catch_up.result.stderr[-3000:]
    assert catch_up.output["created"] == 2 and catch_up.state["duplicate_creations"] == []
    users = by_provided_id(catch_up.state)
    assert set(users) == ids["files"] | ids["api"] | set(added)
    assert users[sorted(ids["files"])[0]]["given_name"] == "Early"
    assert not listed.exists()


def test_a_killed_catch_up_after_an_import_resumes_and_writes_each_change_once(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=USERS)
    sandbox.write_export(tmp_path / "users.csv")
    export_run, manifest, ids = export(sandbox, tmp_path)
    upload_all(sandbox, tmp_path / "out", "kinde-ndjson", manifest)
    only_file(sandbox, tmp_path, "out/api-users.csv")
    renamed = file_users(sandbox, ids)[:4]
    change_clerk(sandbox, {"change": {cid: {"first_name": f"New{k}"} for k, cid in enumerate(renamed)}})
    patches_before = patch_requests(kinde_state(sandbox))

    def die_after_two_updates(event: Event) -> None:
        if isinstance(event, PhaseAdvanced) and event.phase == "update" and event.completed == 2:
            raise KeyboardInterrupt

    journal = Journal(tmp_path / ".migrator")
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(
            run_migration(
                settings_for(sandbox, tmp_path), journal, Sync(since_run_id=export_run),
                on_event=die_after_two_updates, confirm=lambda plan: True,
            )
        )  # fmt: skip
    journal.close()
    assert patch_requests(kinde_state(sandbox)) - patches_before == 2

    resumed = migrator(sandbox, tmp_path, "resume", "--yes", "--json")
    assert resumed.result.returncode == 0, resumed.result.stderr[-3000:]
    assert resumed.output["mode"] == RunMode.SYNC
    users = by_provided_id(resumed.state)
    assert [users[cid]["given_name"] for cid in renamed] == [f"New{k}" for k in range(4)]
    assert patch_requests(resumed.state) - patches_before == 4


def test_undo_of_an_export_removes_the_imported_users_only(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=USERS)
    sandbox.write_export(tmp_path / "users.csv")
    export_run, manifest, ids = export(sandbox, tmp_path)
    upload_all(sandbox, tmp_path / "out", "kinde-ndjson", manifest)
    only_file(sandbox, tmp_path, "out/api-users.csv")

    dry = migrator(sandbox, tmp_path, "undo", str(export_run), "--dry-run", "--json")
    assert dry.result.returncode == 0 and dry.writes == 0, dry.result.stderr[-3000:]
    assert dry.output["planned"]["user"] == len(ids["files"])

    undone = migrator(sandbox, tmp_path, "undo", str(export_run), "--yes", "--json")
    assert undone.result.returncode == 0, undone.result.stderr[-3000:]
    assert undone.output["outcomes"]["user"] == {"deleted": len(ids["files"])}
    assert set(by_provided_id(undone.state)) == ids["api"]  # `run --only-file` made these: `undo` of that run
    assert undone.state["organizations"]  # the organization import made them: left, with a warning
    assert "organization import" in undone.result.stderr

    again = migrator(sandbox, tmp_path, "undo", str(export_run), "--yes", "--json")
    assert again.result.returncode == 0 and again.writes == 0 and again.output["already_done"] is True


def _modes(workdir: Path) -> list[str]:
    journal = Journal(workdir / ".migrator")
    try:
        return [run.mode for run in journal.runs.all()]
    finally:
        journal.close()


def test_a_dry_run_export_is_no_base_for_a_catch_up_or_an_undo(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=60)
    sandbox.write_export(tmp_path / "users.csv")
    dry = migrator(sandbox, tmp_path, "export", "--out", "out", "--clerk-export", "users.csv", "--dry-run")
    assert dry.result.returncode == 0, dry.result.stderr[-3000:]
    for args in (("sync", "--since", "1", "--yes"), ("sync", "--yes"), ("undo", "1", "--yes")):
        refused = migrator(sandbox, tmp_path, *args)
        assert refused.result.returncode == 2, (args, refused.result.stdout + refused.result.stderr)
        assert "run 1 is an export that wrote no import files" in " ".join(refused.result.stderr.split()), args
        assert refused.writes == 0
