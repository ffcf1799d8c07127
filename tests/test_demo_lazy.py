"""`migrator demo --lazy`: the demo with the lazy policy, argon2 users of the cohort signing in with their old
password through the workflow under Node, then `lazy status` and `lazy finish`; without Node it says so."""

from __future__ import annotations

from pathlib import Path

from tests.e2e import cli_env, run_cli
from tests.workflow_node import ensure_workflow_modules


def test_demo_lazy_without_node_says_so_and_starts_nothing(tmp_path: Path) -> None:
    result = run_cli("demo", "--lazy", "--users", "50", cwd=tmp_path, env=cli_env(PATH=str(tmp_path)))
    assert result.returncode == 2
    assert "Node.js" in result.stderr and "Traceback" not in result.stderr
    assert "Starting the sandbox" not in result.stdout


def test_demo_lazy_moves_argon2_users_at_sign_in_then_closes_the_window(tmp_path: Path) -> None:
    ensure_workflow_modules()
    result = run_cli("demo", "--lazy", "--users", "300", "--sign-ins", "3", cwd=tmp_path, env=cli_env())
    assert result.returncode == 0, result.stdout + result.stderr
    for step in ("$ migrator lazy init", "$ migrator lazy setup", "$ migrator lazy status", "$ migrator lazy finish"):
        assert step in result.stdout
    assert "Every one moved at sign-in, without a reset." in result.stdout
    assert "Traceback" not in result.stderr
