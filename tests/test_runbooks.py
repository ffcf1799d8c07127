"""Every command of the runbooks runs against the sandbox and exits as the runbook says
(``tests/runbook.py`` reads the ``$ migrator ...`` lines); the main and bulk-import runbooks' end states are checked too."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from migrator.kinde.scopes import ORGANIZATIONS, READ, ROLE_PERMISSIONS, ROLES, VERIFY_ORGANIZATIONS, VERIFY_READ
from tests.e2e import kinde_state
from tests.runbook import HOOKS, commands, granted_scopes, run_all, sandbox_options, stale_report_lines

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"


@pytest.mark.parametrize(
    "name",
    [
        "cutover.md",
        "rollback.md",
        "troubleshooting.md",
        "verify-and-sign-off.md",
        "resume-after-a-failure.md",
        "bulk-import-files.md",
    ],
)
def test_every_runbook_command_runs_as_documented(name: str, sandbox_factory, tmp_path: Path) -> None:
    path = RUNBOOKS / name
    assert len(commands(path)) >= 3
    sandbox = sandbox_factory(**vars(sandbox_options(path, 300)))
    ran = run_all(path, sandbox, tmp_path)
    for command, result in ran:
        assert "Traceback" not in result.stdout + result.stderr, command.line
        assert result.returncode == command.exit_code, f"{command.line}: {result.stdout}{result.stderr}"
    assert stale_report_lines(path, ran) == []
    state = kinde_state(sandbox)
    if name == "rollback.md":
        assert state["users"] == []  # the undo took the run back out
    if name == "cutover.md":
        gone = sandbox.dataset.user_id(250)  # deleted in Clerk before the catch-ups (runbook.change_clerk)
        assert gone not in {u["provided_id"] for u in state["users"]}
        assert sandbox.dataset.user_id(100) in {u["provided_id"] for u in state["users"]}
    if name == "bulk-import-files.md":  # export, dashboard import, --only-file, verify, catch-up since the export
        users = {u["provided_id"]: u for u in state["users"]}
        dataset = sandbox.dataset
        assert users[dataset.user_id(100)]["given_name"] == "Ada"  # renamed in Clerk after the export
        assert users[dataset.user_id(200)]["is_suspended"] is True  # banned after the export
        assert dataset.user_id(250) not in users  # deleted in Clerk: gone with --delete-removed
        assert state["duplicate_creations"] == []


def test_the_main_runbook_migrates_everyone_and_names_who_failed_and_why(sandbox_factory, tmp_path: Path) -> None:
    """migrate-clerk-to-kinde.md: credentials check, dry run, a run where three users fail (their phone is
    held by another application's Kinde user), status --failed, retry-failed once the operator removed
    those users, verify, runs, reports: everyone eligible ends in Kinde, and the failed three were named."""
    path = RUNBOOKS / "migrate-clerk-to-kinde.md"
    sandbox = sandbox_factory(**vars(sandbox_options(path, 300)))  # a token granted exactly the runbook's scopes
    taken = HOOKS[path.name](sandbox)
    ran = run_all(path, sandbox, tmp_path, taken)
    assert len(ran) >= 10
    for command, result in ran:
        assert "Traceback" not in result.stdout + result.stderr, command.line
        assert result.returncode == command.exit_code, f"{command.line}: {result.stdout}{result.stderr}"
    assert len(taken.clerk_ids) == 3
    assert stale_report_lines(path, ran) == []

    results = {command.line: result for command, result in ran}  # the last of two identical lines
    listed = results["migrator status --failed"].stdout
    for clerk_id in taken.clerk_ids:
        line = next(line for line in listed.splitlines() if clerk_id in line)
        assert "USER_ALREADY_EXISTS" in line and "already holds an identity" in line
        assert "(no provided_id)" in line  # another application's user: never "provided_id None"
    with (tmp_path / "failed.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert sorted(r["clerk_id"] for r in rows) == sorted(taken.clerk_ids)
    assert {r["code"] for r in rows} == {"USER_ALREADY_EXISTS"}

    eligible = {sandbox.dataset.user_id(i) for i in range(300) if sandbox.dataset.expected(i)["eligible"]}
    in_kinde = [u["provided_id"] for u in kinde_state(sandbox)["users"]]
    assert sorted(in_kinde) == sorted(eligible)  # everyone once; the other application's users are gone
    assert "Verify of run 2: passed" in results["migrator verify"].stdout


def test_the_main_runbook_names_the_scopes_its_data_needs_and_no_more() -> None:
    """Step 2 lists what a Clerk with organizations and role permissions needs, plus verify's reads: the
    runbook's test grants exactly these, so a scope the preflight wants and the runbook omits fails it."""
    listed = granted_scopes(RUNBOOKS / "migrate-clerk-to-kinde.md")
    users = READ | {"create:users", "update:users", "update:user_passwords"}
    assert listed == users | ORGANIZATIONS | ROLES | ROLE_PERMISSIONS | VERIFY_READ | VERIFY_ORGANIZATIONS
