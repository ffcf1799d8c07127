"""`migrator lazy init` in-process (CliRunner), and `sandbox serve --workflow`'s checks."""

from __future__ import annotations

import json
from importlib.resources.abc import Traversable
from pathlib import Path

from migrator.demo import ServeRequest, serve_options
from migrator.lazy.workflow_files import SETTINGS_FILE, source
from tests.e2e import cli_env, run_cli

CLERK_KEY = "sk_live_never_in_the_folder_123"
KINDE_SECRET = "kinde-secret-never-in-the-folder"


def _shipped(node: Traversable, prefix: str = "") -> set[str]:
    names: set[str] = set()
    for child in node.iterdir():
        if child.name in {"node_modules", "dist"}:
            continue
        path = f"{prefix}{child.name}"
        names |= _shipped(child, path + "/") if child.is_dir() else {path}
    return names


def _written(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


def test_init_writes_the_kinde_layout_with_the_clerk_url_and_no_secret(tmp_path: Path) -> None:
    env = cli_env(
        CLERK_API_URL="https://clerk.internal.example/v1",
        CLERK_SECRET_KEY=CLERK_KEY,
        KINDE_MANAGEMENT_CLIENT_SECRET=KINDE_SECRET,
    )
    out = tmp_path / "kinde-workflows"
    result = run_cli("lazy", "init", "--out", out, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert _written(out) == _shipped(source())
    assert json.loads((out / "kinde.json").read_text()) == {"rootDir": "kindeSrc", "version": "2024-12-09"}
    assert (out / SETTINGS_FILE.parent / "Workflow.ts").is_file()
    settings = json.loads((out / SETTINGS_FILE).read_text())
    assert settings["clerk_api_url"] == "https://clerk.internal.example/v1"
    assert settings["users_in_kinde"] is False
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert CLERK_KEY not in text and KINDE_SECRET not in text, path
    assert "CLERK_SECRET_KEY (sensitive)" in result.stdout
    assert CLERK_KEY not in result.stdout + result.stderr


def test_init_users_in_kinde_is_the_other_reading(tmp_path: Path) -> None:
    out = tmp_path / "wf"
    assert run_cli("lazy", "init", "--out", out, "--users-in-kinde", cwd=tmp_path, env=cli_env()).returncode == 0
    assert json.loads((out / SETTINGS_FILE).read_text())["users_in_kinde"] is True


def test_init_takes_the_reading_the_runs_use_from_the_settings(tmp_path: Path) -> None:
    """The run (lazy_users_in_kinde: the cohort created without a password) and the workflow read Kinde the same way."""
    out = tmp_path / "wf"
    env = cli_env(LAZY_USERS_IN_KINDE="true")
    assert run_cli("lazy", "init", "--out", out, cwd=tmp_path, env=env).returncode == 0
    assert json.loads((out / SETTINGS_FILE).read_text())["users_in_kinde"] is True


def test_init_refuses_a_folder_that_holds_files_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    out.mkdir()
    (out / "README.md").write_text("mine")
    result = run_cli("lazy", "init", "--out", out, cwd=tmp_path, env=cli_env())
    assert result.returncode == 2
    assert "not an empty directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert _written(out) == {"README.md"}


def test_serve_takes_the_workflow_folder(tmp_path: Path) -> None:
    assert serve_options(ServeRequest(workflow=tmp_path)).kinde.workflow == tmp_path


def test_serve_refuses_a_folder_that_is_not_a_workflow(tmp_path: Path) -> None:
    result = run_cli("sandbox", "serve", "--users", "5", "--workflow", tmp_path, cwd=tmp_path, env=cli_env())
    assert result.returncode == 2
    assert "no kinde.json" in result.stderr
    assert "Traceback" not in result.stderr
