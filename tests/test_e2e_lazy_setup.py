"""`migrator lazy setup` against the sandbox's Kinde (in-process CLI, real servers over loopback): the
workflow's environment variables created once, updated (never duplicated) on a re-run, refused before any
write when the token lacks a scope (with what to set by hand), `--print` calling nothing, and neither the
Clerk key nor the M2M secret ever printed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from migrator.lazy.workflow_files import ENVIRONMENT_VARIABLES
from migrator.sandbox.faults import FaultProfile
from migrator.sandbox.kinde_app import ALL_SCOPES, KindeSandboxConfig
from migrator.sandbox.server import Sandbox
from tests.e2e import cli_env, kinde_call, kinde_state, run_cli, sign_in
from tests.workflow_node import ensure_workflow_modules, lazy_candidate

NAMES = [name for name, _, _ in ENVIRONMENT_VARIABLES]


def variables(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    found = kinde_state(sandbox)["environment_variables"]
    assert len({v["key"] for v in found}) == len(found), found  # never duplicated
    return {v["key"]: v for v in found}


def held(sandbox: Sandbox) -> dict[str, tuple[str, bool]]:
    """The values Kinde holds (secrets too: read from the store, as only the workflow's kinde.env can)."""
    store = sandbox.kinde_app.state.store
    return {v.key: (v.value, v.is_secret) for v in store.environment_variables.values()}


def assert_no_secret(sandbox: Sandbox, *outputs: str) -> None:
    for output in outputs:
        assert sandbox.secret_key not in output
        assert sandbox.kinde_config.client_secret not in output


def test_setup_creates_the_variables_then_updates_them_never_twice(sandbox_factory: Any, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=20)
    env = cli_env(sandbox)
    first = run_cli("lazy", "setup", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr + first.stdout
    assert held(sandbox) == {
        "CLERK_SECRET_KEY": (sandbox.secret_key, True),
        "KINDE_WF_M2M_CLIENT_ID": (sandbox.kinde_config.client_id, False),
        "KINDE_WF_M2M_CLIENT_SECRET": (sandbox.kinde_config.client_secret, True),
    }
    assert variables(sandbox)["CLERK_SECRET_KEY"]["value"] is None
    for name in NAMES:
        assert f"{name}" in first.stdout and "created" in first.stdout

    again = run_cli("lazy", "setup", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert "KINDE_WF_M2M_CLIENT_ID: already set, left as is" in again.stdout
    assert "CLERK_SECRET_KEY (sensitive): updated" in again.stdout
    assert sorted(variables(sandbox)) == sorted(NAMES)
    assert_no_secret(sandbox, first.stdout, first.stderr, again.stdout, again.stderr)


def test_a_variable_set_by_hand_is_updated_in_place(sandbox_factory: Any, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=20)
    made = kinde_call(
        sandbox, "POST", "/api/v1/environment_variables", json={"key": "KINDE_WF_M2M_CLIENT_ID", "value": "old"}
    )
    assert made.status_code == 201
    result = run_cli("lazy", "setup", cwd=tmp_path, env=cli_env(sandbox))
    assert result.returncode == 0, result.stderr
    assert "KINDE_WF_M2M_CLIENT_ID: updated" in result.stdout
    assert variables(sandbox)["KINDE_WF_M2M_CLIENT_ID"]["id"] == made.json()["environment_variable"]["id"]
    assert held(sandbox)["KINDE_WF_M2M_CLIENT_ID"] == (sandbox.kinde_config.client_id, False)


def test_a_dedicated_workflow_application_is_used_when_configured(sandbox_factory: Any, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=20)
    env = cli_env(sandbox, LAZY_WORKFLOW_CLIENT_ID="wf-client", LAZY_WORKFLOW_CLIENT_SECRET="wf-secret-never-shown")
    result = run_cli("lazy", "setup", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert held(sandbox)["KINDE_WF_M2M_CLIENT_ID"] == ("wf-client", False)
    assert held(sandbox)["KINDE_WF_M2M_CLIENT_SECRET"] == ("wf-secret-never-shown", True)
    assert "wf-secret-never-shown" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("missing", "before"),
    [
        ("read:environment_variables", False),
        ("create:environment_variables", False),
        ("update:environment_variables", True),
    ],
)
def test_a_missing_scope_writes_nothing_and_says_what_to_set_by_hand(
    sandbox_factory: Any, tmp_path: Path, missing: str, before: bool
) -> None:
    sandbox = sandbox_factory(users=20, kinde=KindeSandboxConfig(scopes=ALL_SCOPES - {missing}))
    if before:  # an update is needed only for a variable Kinde already holds
        made = kinde_call(
            sandbox,
            "POST",
            "/api/v1/environment_variables",
            json={"key": "CLERK_SECRET_KEY", "value": "x", "is_secret": True},
        )
        assert made.status_code == 201
    start = held(sandbox)
    result = run_cli("lazy", "setup", cwd=tmp_path, env=cli_env(sandbox))
    assert result.returncode == 3, result.stdout + result.stderr
    assert missing in result.stderr
    assert held(sandbox) == start
    assert "CLERK_SECRET_KEY (sensitive) = the Clerk secret key you use for this migration" in result.stdout
    assert f"KINDE_WF_M2M_CLIENT_ID = {sandbox.kinde_config.client_id}" in result.stdout
    assert "KINDE_WF_M2M_CLIENT_SECRET (sensitive) = the client secret of the M2M application" in result.stdout
    assert "Traceback" not in result.stderr
    assert_no_secret(sandbox, result.stdout, result.stderr)


def test_print_calls_nothing_and_shows_no_secret(sandbox_factory: Any, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=20)
    requests = kinde_state(sandbox)["requests"]["total"]
    result = run_cli("lazy", "setup", "--print", cwd=tmp_path, env=cli_env(sandbox))
    assert result.returncode == 0, result.stderr
    assert kinde_state(sandbox)["requests"]["total"] == requests + 1  # the state read above, nothing else
    for name in NAMES:
        assert name in result.stdout
    assert "CLERK_SECRET_KEY (sensitive) = the Clerk secret key you use for this migration" in result.stdout
    assert_no_secret(sandbox, result.stdout, result.stderr)


def test_print_needs_no_credentials(tmp_path: Path) -> None:
    result = run_cli("lazy", "setup", "--print", cwd=tmp_path, env=cli_env())
    assert result.returncode == 0, result.stderr
    assert "KINDE_WF_M2M_CLIENT_ID = an M2M application with create:users" in result.stdout
    assert "KINDE_WF_M2M_CLIENT_SECRET (sensitive) = the client secret of an M2M application" in result.stdout


def test_without_credentials_setup_refuses_before_calling(tmp_path: Path) -> None:
    result = run_cli("lazy", "setup", cwd=tmp_path, env=cli_env())
    assert result.returncode == 2
    assert "CLERK_SECRET_KEY" in result.stderr


def test_the_workflow_reads_what_setup_wrote(sandbox_factory: Any, tmp_path: Path) -> None:
    """The sandbox's sign-in gives the workflow the variables Kinde holds: before `lazy setup` its default
    Clerk key is a wrong one (Clerk refuses the lookup: the sign-in stops), after it the user moves."""
    ensure_workflow_modules()
    folder = tmp_path / "kinde-workflows"
    made = run_cli("lazy", "init", "--out", folder, cwd=tmp_path, env=cli_env())
    assert made.returncode == 0, made.stderr
    config = KindeSandboxConfig(workflow=folder, workflow_env={"CLERK_SECRET_KEY": "sk_test_not_the_key"})
    sandbox = sandbox_factory(users=300, kinde=config)
    i = next(i for i in range(300) if lazy_candidate(sandbox.dataset, i))
    clerk_id = sandbox.dataset.user_id(i)
    password = sandbox.dataset.clerk_password(clerk_id)
    assert password is not None
    user = sandbox.dataset.user(i)
    email = next(e["email_address"] for e in user["email_addresses"] if e["id"] == user["primary_email_address_id"])

    assert sign_in(sandbox, email, password) == 502  # Clerk refused the workflow's key: failurePolicy stop
    result = run_cli("lazy", "setup", cwd=tmp_path, env=cli_env(sandbox))
    assert result.returncode == 0, result.stderr
    assert sign_in(sandbox, email, password) == 200
    state = kinde_state(sandbox)
    assert [u["provided_id"] for u in state["users"]] == [clerk_id]
    assert sandbox.secret_key not in state["workflow_log"]


@pytest.mark.parametrize("verbose", [False, True])
def test_retries_are_reported_by_the_one_rule(sandbox_factory: Any, tmp_path: Path, verbose: bool) -> None:
    """Kinde answers 429 now and then: setup retries, finishes, and shows each retry only with -v (no crash,
    no flood), as every command does."""
    sandbox = sandbox_factory(users=20, kinde_faults=FaultProfile(rate_limit_rate=0.6), fault_retry_after=0)
    sandbox.kinde_faults.exempt_prefixes = ("/_sandbox", "/oauth2")
    env = cli_env(sandbox, KINDE_MAX_ATTEMPTS="20")
    done = run_cli(*(["-v"] if verbose else []), "lazy", "setup", cwd=tmp_path, env=env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr + done.stdout
    assert sorted(variables(sandbox)) == sorted(NAMES)
    faults = sandbox.kinde_faults.stats
    retried = faults["rate_limited"]
    assert retried > 0  # the seeded faults were met
    shown = done.stderr.count("Kinde: retry ")
    assert shown == (retried if verbose else 0), done.stderr
    assert_no_secret(sandbox, done.stdout, done.stderr)
