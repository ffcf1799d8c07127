"""End to end: Kinde's M2M token, whatever the tenant's tokens say (or do not say) about their scopes.

The real CLI runs against the sandbox on loopback, with the sandbox playing each reading of what
Kinde leaves open: scopes in the token's ``scope`` and/or ``scp`` claims or in neither, the token
answer's ``scope`` field absent, empty or present, opaque tokens, 401 or 403 for an expired token,
and a token that expires mid-run. A run refuses to start only on scopes it knows are missing.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from migrator.sandbox.kinde_app import ALL_SCOPES, KindeSandboxConfig
from migrator.sandbox.server import Sandbox
from tests.e2e import cli_env, kinde_state, run_cli, write_requests
from tests.test_e2e_secrets import files_under, leaks, sandbox_secrets

USERS = 60
FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200"}
EXIT_STOPPED = 3
SCOPE_NAME = re.compile(r"\b[a-z_]+:[a-z_]+\b")

SandboxFactory = Callable[..., Sandbox]


def migrate(sandbox: Sandbox, workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    sandbox.write_export(workdir / "users.csv")
    result = run_cli("run", "--clerk-export", "users.csv", *args, cwd=workdir, env=cli_env(sandbox, **FAST, **env))
    assert "Traceback" not in result.stdout + result.stderr
    return result


def everyone_migrated(sandbox: Sandbox) -> dict[str, Any]:
    """Every eligible Clerk user is in Kinde exactly once; returns Kinde's state."""
    state = kinde_state(sandbox)
    dataset = sandbox.dataset
    eligible = {dataset.user_id(i) for i in range(dataset.n) if dataset.expected(i)["eligible"]}
    assert eligible and sorted(u["provided_id"] for u in state["users"]) == sorted(eligible)
    assert state["duplicate_creations"] == []
    return state


def scopes_named(text: str) -> set[str]:
    return {name for name in SCOPE_NAME.findall(text) if name in ALL_SCOPES}


def no_secret_leaked(sandbox: Sandbox, workdir: Path, result: subprocess.CompletedProcess[str]) -> None:
    secrets = sandbox_secrets("sandbox", sandbox)
    assert any(" access token " in label for label in secrets)
    printed = {"stdout": result.stdout.encode(), "stderr": result.stderr.encode()}
    assert leaks({**printed, **files_under(workdir / ".migrator")}, secrets) == []


@pytest.mark.parametrize(
    "token",
    [
        KindeSandboxConfig(scope_claims="none", answer_scope="absent"),
        KindeSandboxConfig(scope_claims="none", answer_scope="empty"),
        KindeSandboxConfig(scope_claims="scope", answer_scope="empty"),
        KindeSandboxConfig(scope_claims="scp", answer_scope="absent"),
        KindeSandboxConfig(token_format="opaque", answer_scope="empty"),
    ],
    ids=["no-scopes-anywhere", "empty-scope-field", "scope-claim-only", "scp-claim-only", "opaque-token"],
)
def test_a_run_goes_ahead_when_the_token_lists_its_scopes_in_its_claims_or_nowhere(
    sandbox_factory: SandboxFactory, tmp_path: Path, token: KindeSandboxConfig
) -> None:
    sandbox = sandbox_factory(users=USERS, kinde=token)
    result = migrate(sandbox, tmp_path, "--yes")
    assert result.returncode == 0, result.stderr
    everyone_migrated(sandbox)


@pytest.mark.parametrize(
    ("scope_claims", "missing", "args"),
    [
        ("scp", {"create:users", "create:organizations"}, ["--yes"]),
        ("scope", {"update:user_passwords"}, ["--yes"]),
        ("both", {"read:users"}, ["--dry-run"]),
    ],
)
def test_scopes_the_token_claims_to_lack_stop_the_run_before_it_writes(
    sandbox_factory: SandboxFactory, tmp_path: Path, scope_claims: str, missing: set[str], args: list[str]
) -> None:
    config = KindeSandboxConfig(scopes=ALL_SCOPES - missing, scope_claims=scope_claims, answer_scope="absent")
    sandbox = sandbox_factory(users=USERS, kinde=config)
    result = migrate(sandbox, tmp_path, *args)
    assert result.returncode == EXIT_STOPPED, result.stdout + result.stderr
    assert scopes_named(result.stderr) == missing  # every missing scope, and no other
    assert "Manage scopes" in result.stderr
    state = kinde_state(sandbox)
    assert write_requests(state) == 0 and state["users"] == []
    assert "GET /api/v1/users" not in state["requests"]["by_route"]  # refused at the preflight


@pytest.mark.parametrize("status", [401, 403])
def test_a_token_that_expires_mid_run_is_renewed_once_and_the_run_completes(
    sandbox_factory: SandboxFactory, tmp_path: Path, status: int
) -> None:
    """Each token expires after 50 calls (its answer says an hour); 16 workers share it."""
    sandbox = sandbox_factory(users=USERS, kinde=KindeSandboxConfig(token_max_uses=50, bad_token_status=status))
    result = migrate(sandbox, tmp_path, "--yes")
    assert result.returncode == 0, result.stderr
    state = everyone_migrated(sandbox)
    expired = state["tokens_refused_as_expired"]
    assert expired >= 2  # it did expire mid-run, more than once
    assert state["tokens_issued"] == 1 + expired  # each expired token renewed exactly once
    assert state["requests"]["by_status"][str(status)] >= expired
    no_secret_leaked(sandbox, tmp_path, result)


@pytest.mark.parametrize("status", [403, 401])
def test_a_refusal_that_persists_after_renewal_stops_the_run_naming_the_endpoints_scope(
    sandbox_factory: SandboxFactory, tmp_path: Path, status: int
) -> None:
    """The token says nothing of its scopes, so the preflight lets it through; the first password
    import is refused, refused again with a fresh token, and the run stops naming the scope."""
    config = KindeSandboxConfig(
        scopes=ALL_SCOPES - {"update:user_passwords"},
        scope_claims="none",
        answer_scope="empty",
        missing_scope_status=status,
    )
    sandbox = sandbox_factory(users=USERS, kinde=config)
    result = migrate(sandbox, tmp_path, "--yes", CONCURRENCY="1")
    assert result.returncode == EXIT_STOPPED, result.stdout + result.stderr
    assert "Kinde PUT /api/v1/users/" in result.stderr and "fresh token" in result.stderr
    assert scopes_named(result.stderr) == {"update:user_passwords"}
    state = kinde_state(sandbox)
    assert state["tokens_issued"] == 2  # the one it started with, and one renewal
    assert state["requests"]["by_route"]["PUT /api/v1/users/{user_id}/password"]["by_status"] == {str(status): 2}
    no_secret_leaked(sandbox, tmp_path, result)
