"""End to end: a run asks Kinde for the scopes its work needs, no more, and checks them, in one order, before
the run is recorded and before its first write.

Local inputs (the export) come first, then Clerk's key, then Kinde's token, then the scopes this run's
data needs: a malformed export or a wrong Clerk key is never answered with a scope refusal, and a refusal
leaves no run behind (``migrator runs`` is empty) and nothing written to Kinde.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from migrator.kinde.scopes import ORGANIZATIONS, ROLES, SOCIAL_IDENTITIES, WRITE_USERS
from migrator.sandbox.clerk_app import ClerkBehaviour
from migrator.sandbox.kinde_app import ALL_SCOPES, KindeSandboxConfig
from migrator.sandbox.server import Sandbox
from tests.e2e import cli_env, kinde_state, run_cli, write_requests

FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200", "MAX_ATTEMPTS": "2"}
UNREACHABLE = {"KINDE_DOMAIN": "http://127.0.0.1:1", "CLERK_API_URL": "http://127.0.0.1:1/v1"}
USERS = 60
# What README's scope table says every run that writes users needs, and nothing else.
MINIMAL = frozenset({"read:users"}) | WRITE_USERS
WITH_ORGANIZATIONS = MINIMAL | ORGANIZATIONS | ROLES


def migrator(sandbox: Sandbox, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, env=cli_env(sandbox, **FAST, **env))


def recorded_runs(sandbox: Sandbox, cwd: Path) -> list[dict[str, Any]]:
    result = migrator(sandbox, cwd, "runs", "--json", **UNREACHABLE)
    if "no run recorded" in result.stdout + result.stderr or not (cwd / ".migrator").exists():
        return []
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def refused_before_anything(sandbox: Sandbox, cwd: Path, result: subprocess.CompletedProcess[str], code: int) -> str:
    """A clean refusal: the exit code, no traceback, no run recorded, no resume hint, nothing written."""
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output and "migrator resume" not in output
    assert recorded_runs(sandbox, cwd) == []
    state = kinde_state(sandbox)
    assert write_requests(state) == 0 and state["users"] == []
    return result.stderr


def eligible(sandbox: Sandbox) -> set[str]:
    dataset = sandbox.dataset
    return {dataset.user_id(i) for i in range(dataset.n) if dataset.expected(i)["eligible"]}


def test_a_minimal_token_migrates_a_clerk_without_organizations(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(
        users=USERS, clerk=ClerkBehaviour(organizations="none"), kinde=KindeSandboxConfig(scopes=MINIMAL)
    )
    sandbox.write_export(tmp_path / "users.csv")
    result = migrator(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--yes", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    state = kinde_state(sandbox)
    assert sorted(u["provided_id"] for u in state["users"]) == sorted(eligible(sandbox))
    assert [o for o in state["organizations"] if o["external_id"]] == [] and state[
        "roles"
    ] == []  # Kinde's default org only
    (run,) = recorded_runs(sandbox, tmp_path)
    assert run["state"] == "completed" and run["failed"] == 0 and run["pending"] == 0

    # nothing left: said before settings are compared or anything is contacted (both APIs unreachable)
    for command in ("resume", "retry-failed"):
        done = migrator(sandbox, tmp_path, command, DUPLICATE_IDENTITIES="skip-all", **UNREACHABLE)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "run 1 is completed: nothing" in done.stdout and "continuing although" not in done.stderr

    # deleting needs delete:users: named with what needs it, before a run is recorded or anything asked
    sweep = migrator(sandbox, tmp_path, "sync", "--delete-removed", "--clerk-export", "users.csv", "--yes")
    assert sweep.returncode == 3, sweep.stdout + sweep.stderr
    assert "--delete-removed deletes users gone from Clerk: grant delete:users" in sweep.stderr
    undo = migrator(sandbox, tmp_path, "undo", "1", "--yes")
    assert undo.returncode == 3, undo.stdout + undo.stderr
    assert f"the undo takes back {len(eligible(sandbox))} user(s): grant delete:users" in undo.stderr
    assert [r["id"] for r in recorded_runs(sandbox, tmp_path)] == [1]
    assert len(kinde_state(sandbox)["users"]) == len(eligible(sandbox))


def test_roles_without_permissions_need_no_permission_scope(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(
        users=USERS,
        clerk=ClerkBehaviour(role_permissions="none"),
        kinde=KindeSandboxConfig(scopes=WITH_ORGANIZATIONS | {"read:organization_users"}),
    )
    sandbox.write_export(tmp_path / "users.csv")
    result = migrator(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert kinde_state(sandbox)["organizations"]


@pytest.fixture(scope="module")
def clerk_with_everything() -> Any:
    """Organizations, roles carrying permissions: every family of scopes has data that needs it. The token
    is swapped per test (``kinde_config.scopes``); every test is refused before writing."""
    from migrator.sandbox.server import SandboxOptions

    with Sandbox(SandboxOptions(users=USERS)) as sandbox:
        yield sandbox


def grant(sandbox: Sandbox, scopes: frozenset[str]) -> None:
    sandbox.kinde_config.scopes = scopes  # read by the token endpoint at each request


SOCIAL_CONFIG = '[social_connections]\noauth_google = "conn_google0001"\n'
PROPERTIES_CONFIG = '[properties]\n"public_metadata.plan" = { key = "plan" }\n'


@pytest.mark.parametrize(
    ("granted", "config", "args", "named"),
    [
        (
            MINIMAL,
            "",
            [],
            [
                "organization (their memberships carry roles)",
                "create:organizations",
                "read:roles",
                "migrate_organizations = false",
            ],
        ),
        (
            WITH_ORGANIZATIONS,
            "",
            [],
            [
                "roles carry",
                "permissions: grant",
                "read:permissions",
                "update:role_permissions",
                "migrate_organizations = false",
            ],
        ),
        (
            ALL_SCOPES - SOCIAL_IDENTITIES,
            SOCIAL_CONFIG,
            [],
            [
                "social sign-in is mapped for oauth_google",
                "create:user_identities",
                "drop the social_connections setting",
            ],
        ),
        (
            ALL_SCOPES - {"update:user_properties"},
            PROPERTIES_CONFIG,
            [],
            ["maps user metadata to plan", "update:user_properties"],
        ),
        (
            ALL_SCOPES - {"read:user_identities"},
            "",
            ["--sample", "10"],
            ["the canary reads its users back", "read:user_identities"],
        ),
        (MINIMAL | ROLES | ORGANIZATIONS - {"create:organization_users"}, "", [], ["create:organization_users"]),
    ],
    ids=["organizations", "permissions", "social", "properties", "canary-verify", "memberships"],
)
def test_each_missing_scope_is_named_with_the_data_that_needs_it_before_any_write(
    clerk_with_everything: Sandbox,
    tmp_path: Path,
    granted: frozenset[str],
    config: str,
    args: list[str],
    named: list[str],
) -> None:
    sandbox = clerk_with_everything
    grant(sandbox, granted)
    sandbox.write_export(tmp_path / "users.csv")
    if config:
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "migrator.toml").write_text(config)
    result = migrator(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--yes", *args)
    message = refused_before_anything(sandbox, tmp_path, result, 3)
    for text in named:
        assert text in message, (text, message)
    assert "lacks the scope" in message


def write_bad_export(sandbox: Sandbox, tmp_path: Path, kind: str) -> tuple[str, list[str]]:
    """An export broken one way; the texts its refusal must name."""
    sandbox.write_export(tmp_path / "users.csv")
    lines = (tmp_path / "users.csv").read_text().splitlines()
    if kind == "no-id-column":
        lines[0] = "user_id" + lines[0][2:]
        named = ["row 1", "'id' column"]
    elif kind == "duplicate-id":
        lines.append(lines[12])
        named = [f"row {len(lines)}", "row 13"]
    else:  # a 10 MB cell
        cells = lines[5].split(",")
        cells[1] = "x" * 10_000_000
        lines[5] = ",".join(cells)
        named = ["row 6"]
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    return "bad.csv", ["bad.csv", *named]


@pytest.mark.parametrize("kind", ["no-id-column", "duplicate-id", "huge-cell"])
@pytest.mark.parametrize("command", [["run"], ["run", "--sample", "5"], ["export", "--out", "files"]])
def test_a_bad_export_is_named_before_credentials_and_leaves_no_run(
    clerk_with_everything: Sandbox, tmp_path: Path, kind: str, command: list[str]
) -> None:
    sandbox = clerk_with_everything
    grant(sandbox, frozenset({"read:users"}))  # a scope refusal would come first were the order wrong
    name, named = write_bad_export(sandbox, tmp_path, kind)
    yes = ["--yes"] if command[0] == "run" else []
    result = migrator(sandbox, tmp_path, *command, "--clerk-export", name, *yes, CLERK_SECRET_KEY="sk_test_wrong")
    message = refused_before_anything(sandbox, tmp_path, result, 2)
    for text in named:
        assert text in message, (text, message)
    assert "scope" not in message and "CLERK_SECRET_KEY" not in message


@pytest.mark.parametrize("clerk", ["wrong-key", "closed-port"])
@pytest.mark.parametrize("command", [["run"], ["run", "--sample", "5"], ["export", "--out", "files"]])
def test_clerk_is_checked_before_kinde_and_its_problem_named(
    clerk_with_everything: Sandbox, tmp_path: Path, clerk: str, command: list[str]
) -> None:
    sandbox = clerk_with_everything
    grant(sandbox, frozenset({"read:users"}))
    sandbox.write_export(tmp_path / "users.csv")
    env = {"CLERK_SECRET_KEY": "sk_test_wrong"} if clerk == "wrong-key" else {"CLERK_API_URL": "http://127.0.0.1:1/v1"}
    yes = ["--yes"] if command[0] == "run" else []
    result = migrator(sandbox, tmp_path, *command, "--clerk-export", "users.csv", *yes, **env)
    message = refused_before_anything(sandbox, tmp_path, result, 3)
    assert "Clerk" in message and "scope" not in message
    if clerk == "wrong-key":
        assert "CLERK_SECRET_KEY" in message and "sk_test_wrong" not in message
