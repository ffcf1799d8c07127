"""Every command of the cutover, rollback, troubleshooting and bulk-import runbooks runs against the sandbox and
exits as the runbook says (``tests/runbook.py`` reads the ``$ migrator ...`` lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import kinde_state
from tests.runbook import commands, run_all

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
    sandbox = sandbox_factory(users=300)
    for command, result in run_all(path, sandbox, tmp_path):
        assert "Traceback" not in result.stdout + result.stderr, command.line
        assert result.returncode == command.exit_code, f"{command.line}: {result.stdout}{result.stderr}"
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
