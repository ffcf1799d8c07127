"""Every command of the runbooks runs against the sandbox and exits as the runbook says
(``tests/runbook.py`` reads the ``$ migrator ...`` lines); the main and bulk-import runbooks' end states are checked too."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from migrator.kinde.scopes import ORGANIZATIONS, READ, ROLE_PERMISSIONS, ROLES, VERIFY_ORGANIZATIONS, VERIFY_READ
from tests.e2e import kinde_state
from tests.runbook import (
    HOOKS,
    MAIN,
    LazySignIns,
    RunbookError,
    added_scopes,
    commands,
    granted_scopes,
    run_all,
    sandbox_options,
    stale_report_lines,
)

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"
# every runbook but the main one (tested below): a new runbook is run, and must state its scopes
OTHERS = sorted(path.name for path in RUNBOOKS.glob("*.md") if path.name != MAIN)
UNDO = {"delete:users", "delete:organizations", "delete:roles", "delete:permissions"}
# what each runbook adds to the main runbook's step 2 (its **Scopes** paragraph), found by running it
# with the main runbook's scopes and reading the refusals
ADDS = {
    "cutover.md": UNDO,  # the canary's undo; --delete-removed of the last catch-up
    "rollback.md": UNDO,  # the undo of a run with organizations, roles and permissions
    "bulk-import-files.md": {"delete:users"},  # the catch-up's --delete-removed
    "troubleshooting.md": set(),
    "verify-and-sign-off.md": set(),
    "resume-after-a-failure.md": set(),
    # `lazy setup` reads what Kinde holds, creates the workflow's variables, and updates them when run again;
    # `lazy finish` adds the identities of the plan the workflow could not send (read:user_identities, to read
    # what the moved users hold first, is in the main runbook's step 2)
    "lazy-migration.md": {
        "read:environment_variables",
        "create:environment_variables",
        "update:environment_variables",
        "create:user_identities",
    },
}


@pytest.mark.parametrize("name", OTHERS)
def test_every_runbook_command_runs_as_documented(name: str, sandbox_factory, tmp_path: Path) -> None:
    """With a token granted exactly the scopes the runbook states (the main runbook's step 2 plus its own
    **Scopes** paragraph): a scope its commands need and it omits is a refusal, exit 3, and fails here."""
    path = RUNBOOKS / name
    assert len(commands(path)) >= 3
    sandbox = sandbox_factory(**vars(sandbox_options(path, 300)))
    hook = HOOKS[name](sandbox, tmp_path) if name in HOOKS else None
    ran = run_all(path, sandbox, tmp_path, hook or (lambda command: None))
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
    if name == "lazy-migration.md":  # the users who signed in moved with their old password, once each
        assert isinstance(hook, LazySignIns) and len(hook.moved) == LazySignIns.SIGN_INS
        users = {u["provided_id"]: u for u in state["users"]}
        for clerk_id in hook.moved:
            assert users[clerk_id]["password_method"] == "bcrypt"
            assert users[clerk_id]["total_sign_ins"] == 1
        # the phone the workflow cannot send (Kinde needs its country): `lazy finish` added it
        expected = {sandbox.dataset.user_id(i): sandbox.dataset.expected(i) for i in range(sandbox.dataset.n)}
        phones = [(c, expected[c]["phone"]) for c in hook.moved if expected[c]["phone"]]
        assert phones, "none of the users who moved has a phone: pick others"
        for clerk_id, phone in phones:
            assert phone in [x["value"] for x in users[clerk_id]["identities"] if x["type"] == "phone"]
        assert state["duplicate_creations"] == []
        assert sandbox.secret_key not in state["workflow_log"]


def test_the_main_runbook_migrates_everyone_and_names_who_failed_and_why(sandbox_factory, tmp_path: Path) -> None:
    """migrate-clerk-to-kinde.md: credentials check, dry run, a run where three users fail (their phone is
    held by another application's Kinde user), status --failed, retry-failed once the operator removed
    those users, verify, runs, reports: everyone eligible ends in Kinde, and the failed three were named."""
    path = RUNBOOKS / "migrate-clerk-to-kinde.md"
    sandbox = sandbox_factory(**vars(sandbox_options(path, 300)))  # a token granted exactly the runbook's scopes
    taken = HOOKS[path.name](sandbox, tmp_path)
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


@pytest.mark.parametrize("name", OTHERS)
def test_each_runbook_adds_to_the_main_runbooks_scopes_what_its_commands_need(name: str) -> None:
    """Pinned: a scope dropped from a runbook fails its run above; one added without need fails here."""
    added = added_scopes(RUNBOOKS / name)
    assert set(added) == ADDS[name]
    assert granted_scopes(RUNBOOKS / name) == granted_scopes(RUNBOOKS / MAIN) | ADDS[name]


STATEMENT = "**Scopes**: the main runbook's [step 2](migrate-clerk-to-kinde.md#2-create-the-kinde-m2m-application)"


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("# A runbook\n\nNo statement.\n", "0 **Scopes** paragraphs"),
        (f"{STATEMENT}, nothing more.\n\n{STATEMENT}, nothing more.\n", "2 **Scopes** paragraphs"),
        ("**Scopes**: `read:users`, `delete:users`.\n", "not one paragraph"),
        (f"{STATEMENT}, plus:\n\n- `delete:users`: the undo.\n", "no list follows it directly"),
        (f"{STATEMENT}, plus:\n- `delete:users`\n", "not '- `verb:object`: why'"),
        (f"{STATEMENT}, plus:\n- `delete:users`, `delete:roles`: the undo.\n", "not '- `verb:object`: why'"),
        (f"{STATEMENT}, plus:\n- `delete:users`: the undo\n  deletes users.\n", "not '- `verb:object`: why'"),
        (f"{STATEMENT}, plus:\n- `delete:users`: a.\n- `delete:users`: b.\n", "delete:users is listed twice"),
        (f"{STATEMENT}, plus:\n- `read:users`: lookups.\n", "read:users already in the main runbook's step 2"),
        (f"{STATEMENT}, plus:\n- `delete:user`: the undo.\n", "delete:user: not a Kinde Management API scope"),
        (f"{STATEMENT}, nothing more:\n- `delete:users`: the undo.\n", "a list under ', nothing more'"),
        (f"{STATEMENT}.\n", "not one paragraph"),
    ],
)
def test_a_runbook_that_does_not_state_its_scopes_in_the_one_form_is_refused(
    text: str, refusal: str, tmp_path: Path
) -> None:
    """Never a fallback to every scope: a runbook whose statement is missing or malformed fails its test."""
    (tmp_path / MAIN).write_text((RUNBOOKS / MAIN).read_text())
    (tmp_path / "other.md").write_text(text)
    with pytest.raises(RunbookError, match=re.escape(refusal)):
        granted_scopes(tmp_path / "other.md")


def test_a_stated_list_grants_the_main_runbooks_scopes_plus_its_own(tmp_path: Path) -> None:
    (tmp_path / MAIN).write_text((RUNBOOKS / MAIN).read_text())
    other = tmp_path / "other.md"
    other.write_text(f"# Other\n\n{STATEMENT}, plus:\n- `delete:users`: the undo deletes users.\n\nThen more.\n")
    assert added_scopes(other) == {"delete:users": "the undo deletes users."}
    assert granted_scopes(other) == granted_scopes(tmp_path / MAIN) | {"delete:users"}
    other.write_text(f"{STATEMENT}, nothing more: it only reads\nthe journal.\n")
    assert granted_scopes(other) == granted_scopes(tmp_path / MAIN)
