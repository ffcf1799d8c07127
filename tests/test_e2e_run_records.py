"""Run records that tell the truth: nothing to do is said offline and leaves the run as it was; a failed
credential check leaves an aborted run (no resume hint); a dry run's reports say "would"; `runs` lists
every run with its kind and state."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from migrator.report_files import FAILURES, SKIPPED
from migrator.sandbox.kinde_app import KindeSandboxConfig
from tests.e2e import cli_env, run_cli

UNREACHABLE = {"KINDE_DOMAIN": "http://127.0.0.1:1", "CLERK_API_URL": "http://127.0.0.1:1/v1"}  # for read-only commands


def cli(sandbox: Any, cwd: Path, *args: str, **env: str):
    return run_cli(*args, cwd=cwd, env=cli_env(sandbox, KINDE_MAX_RPS="2000", KINDE_INITIAL_RPS="200", **env))


def runs(sandbox: Any, cwd: Path) -> dict[int, dict[str, Any]]:
    result = cli(sandbox, cwd, "runs", "--json", **UNREACHABLE)
    assert result.returncode == 0, result.stderr
    return {row["id"]: row for row in json.loads(result.stdout)}


def failed_ids(sandbox: Any, cwd: Path) -> set[str]:
    """The failed users as ``status --failed --csv`` lists them (checked against failures.csv)."""
    result = cli(sandbox, cwd, "status", "--failed", "--csv", **UNREACHABLE)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(result.stdout.splitlines()))
    with (cwd / ".migrator/runs/1" / FAILURES).open() as file:
        assert {r["clerk_id"] for r in csv.DictReader(file)} == {r["clerk_id"] for r in rows}
    assert all(r["code"] and r["message"] for r in rows)
    return {r["clerk_id"] for r in rows}


def test_finished_runs_and_dry_runs_are_recorded_and_a_failed_check_leaves_no_run(sandbox_factory, tmp_path: Path):
    sandbox = sandbox_factory(users=120)
    sandbox.write_export(tmp_path / "users.csv")
    dry = cli(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    with (tmp_path / ".migrator/runs/1/password-resets.csv").open() as file:
        actions = [row["action"] for row in csv.DictReader(file)]
    assert actions and all("would" in action for action in actions)

    bad = cli(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--yes", KINDE_MANAGEMENT_CLIENT_SECRET="wrong")
    assert bad.returncode == 3
    assert "migrator resume" not in bad.stdout + bad.stderr

    done = cli(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    before = runs(sandbox, tmp_path)
    assert [(r["kind"], r["state"]) for r in before.values()] == [("dry-run", "completed"), ("run", "completed")]

    sandbox.stop()  # both APIs gone: nothing may connect
    for command in ("retry-failed", "resume"):
        result = cli(sandbox, tmp_path, command)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "run 2 is completed: nothing" in result.stdout
    assert runs(sandbox, tmp_path) == before


def test_a_resume_that_fails_its_credential_check_leaves_the_finished_run_as_it_was(sandbox_factory, tmp_path: Path):
    sandbox = sandbox_factory(users=300, kinde=KindeSandboxConfig(refused_phone_prefixes=("+55",)))
    first = cli(sandbox, tmp_path, "-v", "run", "--without-export", "--yes")
    assert first.returncode == 1, first.stdout + first.stderr
    failed = failed_ids(sandbox, tmp_path)
    assert failed and all(clerk_id in first.stdout for clerk_id in failed)  # -v lists them under the summary
    before = runs(sandbox, tmp_path)
    assert before[1]["state"] == "completed-with-failures" and before[1]["failed"] > 0

    refused = cli(sandbox, tmp_path, "retry-failed", "--yes", KINDE_MANAGEMENT_CLIENT_SECRET="wrong")
    assert refused.returncode == 3
    assert runs(sandbox, tmp_path) == before  # not reopened, not marked failed, its end time kept

    sandbox.stop()
    offline = cli(sandbox, tmp_path, "resume")
    assert offline.returncode == 1
    assert "migrator retry-failed 1" in offline.stdout
    assert runs(sandbox, tmp_path) == before


def test_status_lists_who_failed_who_was_skipped_and_warnings_by_kind(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=300, kinde=KindeSandboxConfig(refused_phone_prefixes=("+55",)))
    assert cli(sandbox, tmp_path, "run", "--without-export", "--yes").returncode == 1
    failed = failed_ids(sandbox, tmp_path)
    with (tmp_path / ".migrator/runs/1" / SKIPPED).open() as file:
        skipped = {r["clerk_id"]: r["reason"] for r in csv.DictReader(file)}
    assert skipped

    human = cli(sandbox, tmp_path, "status", **UNREACHABLE, COLUMNS="80")
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    for clerk_id in failed:
        assert any(clerk_id in line and "IDENTITY_NOT_CREATED" in line for line in lines)
    for clerk_id, reason in skipped.items():
        assert any(clerk_id in line and reason in line for line in lines)
    assert "Warnings by kind" in human.stdout

    as_json = json.loads(cli(sandbox, tmp_path, "status", "--failed", "--json", **UNREACHABLE).stdout)
    assert {row["clerk_id"] for row in as_json["failed_users"]} == failed
    assert sum(kind["count"] for kind in as_json["warning_kinds"]) > 0

    wrong = cli(sandbox, tmp_path, "status", "--csv", **UNREACHABLE)
    assert wrong.returncode == 2 and "--failed" in wrong.stderr
