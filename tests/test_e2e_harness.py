"""The in-process CLI harness (``tests.e2e.run_cli``) behaves as a fresh process would.

The end-to-end tests trust it to give the CLI exactly the environment and directory they pass, to
leave the test process as it found it, and to show an escaping exception as Python would.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import migrator.cli.run
from tests.e2e import cli_env, run_cli


def test_the_cli_sees_only_the_environment_and_directory_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIR", "from-the-ambient-environment")
    before = Path.cwd()

    result = run_cli("status", cwd=tmp_path, env=cli_env())

    assert result.returncode == 2, result.stderr
    assert "no journal in .migrator" in result.stderr  # the default, not the ambient STATE_DIR
    assert Path.cwd() == before
    assert os.environ["STATE_DIR"] == "from-the-ambient-environment"

    given = run_cli("status", cwd=tmp_path, env=cli_env(STATE_DIR="given"))
    assert "no journal in given" in given.stderr


def test_an_exception_the_cli_lets_escape_is_a_traceback_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug, not an expected failure")

    monkeypatch.setattr(migrator.cli.run, "load_settings", broken)

    result = run_cli("status", cwd=tmp_path, env=cli_env())

    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: a bug, not an expected failure" in result.stderr


def test_stdin_is_a_pipe_not_a_terminal(tmp_path: Path) -> None:
    """As for a subprocess: a real run without --yes is refused, even with an answer piped in."""
    result = run_cli(
        "run",
        "--without-export",
        cwd=tmp_path,
        env=cli_env(
            CLERK_SECRET_KEY="sk_test_x",
            KINDE_DOMAIN="http://127.0.0.1:9",
            KINDE_MANAGEMENT_CLIENT_ID="id",
            KINDE_MANAGEMENT_CLIENT_SECRET="secret",
        ),
        stdin="y\n",
    )
    assert result.returncode == 2
    assert "no terminal to ask, pass --yes" in result.stderr
