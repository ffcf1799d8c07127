"""End to end: ``migrator run`` moves 2,000 generated Clerk users into the Kinde sandbox.

The real CLI runs (in process: ``tests.e2e.run_cli``) against both emulators on loopback. One
sandbox serves the whole module, in order: a dry run on the empty Kinde, the real run, then a second
run that must find everything done. Kinde's ``/_sandbox/state`` is compared with
``Dataset.expected(i)`` for every user.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.journal import RunMode
from migrator.sandbox.generator import Dataset
from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import cli_env, kinde_state, run_cli, write_requests

USERS = 2000
FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200"}


@dataclass
class Step:
    """One CLI invocation and Kinde as it left it."""

    result: subprocess.CompletedProcess[str]
    writes_before: int
    writes_after: int
    state: dict[str, Any]

    @property
    def output(self) -> dict[str, Any]:
        return json.loads(self.result.stdout)


def migrator(sandbox: Sandbox, workdir: Path, *args: str) -> Step:
    before = write_requests(kinde_state(sandbox))
    result = run_cli(*args, cwd=workdir, env=cli_env(sandbox, **FAST))
    assert "Traceback" not in result.stdout + result.stderr
    state = kinde_state(sandbox)
    return Step(result, before, write_requests(state), state)


@pytest.fixture(scope="module")
def sandbox() -> Any:
    with Sandbox(SandboxOptions(users=USERS)) as running:
        yield running


@pytest.fixture(scope="module")
def dataset(sandbox: Sandbox) -> Dataset:
    return sandbox.dataset


@pytest.fixture(scope="module")
def expected(dataset: Dataset) -> dict[str, dict[str, Any]]:
    """Clerk user id -> what a correct migration leaves in Kinde."""
    return {dataset.user_id(i): dataset.expected(i) for i in range(dataset.n)}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox) -> Path:
    path = tmp_path_factory.mktemp("run")
    sandbox.write_export(path / "users.csv")
    return path


@pytest.fixture(scope="module")
def dry_run(sandbox: Sandbox, workdir: Path) -> Step:
    return migrator(sandbox, workdir, "run", "--clerk-export", "users.csv", "--dry-run", "--json")


@pytest.fixture(scope="module")
def first_run(dry_run: Step, sandbox: Sandbox, workdir: Path) -> Step:
    return migrator(sandbox, workdir, "run", "--clerk-export", "users.csv", "--yes", "--json")


@pytest.fixture(scope="module")
def second_run(first_run: Step, sandbox: Sandbox, workdir: Path) -> Step:
    return migrator(sandbox, workdir, "run", "--clerk-export", "users.csv", "--yes", "--json")


@pytest.fixture(scope="module")
def first_status(first_run: Step, sandbox: Sandbox, workdir: Path) -> dict[str, Any]:
    result = run_cli("status", str(first_run.output["run_id"]), "--json", cwd=workdir, env=cli_env(sandbox))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def skips(expected: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {clerk_id: e["skip_reason"] for clerk_id, e in expected.items() if not e["eligible"]}


def identity_values(user: dict[str, Any], kind: str) -> list[Any]:
    return [(i["value"], i["is_verified"]) for i in user["identities"] if i["type"] == kind]


def test_dry_run_reads_everything_writes_nothing_and_plans_the_dataset(
    dry_run: Step, expected: dict[str, dict[str, Any]], dataset: Dataset
) -> None:
    assert dry_run.result.returncode == 0, dry_run.result.stderr
    assert dry_run.writes_before == dry_run.writes_after == 0
    assert dry_run.state["users"] == []
    routes = dry_run.state["requests"]["by_route"]
    assert dry_run.state["tokens_issued"] >= 1 and routes["GET /api/v1/users"]["total"] > 0  # it did look
    summary = dry_run.output
    plan = summary["plan"]
    eligible = [clerk_id for clerk_id, e in expected.items() if e["eligible"]]
    with_password = [c for c in eligible if dataset.user(dataset.index_of(c))["password_enabled"]]
    assert summary["mode"] == RunMode.DRY_RUN and summary["created"] == 0
    assert plan["source_users"] == plan["staged"] == USERS
    assert plan["to_create"] == len(eligible) and plan["already_present"] == 0
    assert plan["skipped"] == dict(Counter(skips(expected).values()))
    assert plan["password_imports"]["bcrypt"] == sum(expected[c]["hasher"] == "bcrypt" for c in eligible)
    assert sum(plan["password_imports"].values()) + plan["password_resets"] == len(with_password)
    assert plan["password_missing"] == 1  # the generator's user 29: a password, no digest


def test_every_eligible_user_is_in_kinde_once_with_the_right_identities(
    first_run: Step, expected: dict[str, dict[str, Any]]
) -> None:
    assert first_run.result.returncode == 0, first_run.result.stderr
    by_clerk_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for user in first_run.state["users"]:
        by_clerk_id[user["provided_id"]].append(user)
    wrong = []
    for clerk_id, e in expected.items():
        found = by_clerk_id.get(clerk_id, [])
        if not e["eligible"]:
            if found:
                wrong.append(f"{clerk_id}: skipped ({e['skip_reason']}) but in Kinde")
            continue
        if len(found) != 1:
            wrong.append(f"{clerk_id}: {len(found)} Kinde users")
            continue
        user = found[0]
        emails = identity_values(user, "email")
        if (emails[:1] or [None]) != ([(e["email"], e["email_verified"])] if e["email"] else [None]):
            wrong.append(f"{clerk_id}: emails {emails}, expected {e['email']} verified={e['email_verified']}")
        if [v for v, _ in identity_values(user, "username")] != ([e["username"]] if e["username"] else []):
            wrong.append(f"{clerk_id}: usernames {identity_values(user, 'username')}, expected {e['username']}")
        if [v for v, _ in identity_values(user, "phone")] != ([e["phone"]] if e["phone"] else []):
            wrong.append(f"{clerk_id}: phones {identity_values(user, 'phone')}, expected {e['phone']}")
        if user["is_suspended"] != e["banned"]:
            wrong.append(f"{clerk_id}: is_suspended {user['is_suspended']}, banned {e['banned']}")
    assert wrong == []
    assert len(first_run.state["users"]) == sum(e["eligible"] for e in expected.values())
    assert first_run.state["duplicate_creations"] == []


def test_the_json_summary_counts_what_happened(first_run: Step, expected: dict[str, dict[str, Any]]) -> None:
    summary = first_run.output
    eligible = sum(e["eligible"] for e in expected.values())
    assert (summary["mode"], summary["exit_code"], summary["failed"], summary["pending"]) == ("run", 0, 0, 0)
    assert summary["created"] == eligible and summary["already_present"] == 0
    assert summary["passwords_set"]["bcrypt"] == sum(
        e["eligible"] and e["hasher"] == "bcrypt" for e in expected.values()
    )


def test_skipped_users_are_absent_and_listed_with_their_reason(
    first_run: Step, first_status: dict[str, Any], expected: dict[str, dict[str, Any]]
) -> None:
    wanted = skips(expected)
    assert set(wanted.values()) == {"duplicate_username", "no_identifier"}
    in_kinde = {user["provided_id"] for user in first_run.state["users"]}
    assert in_kinde.isdisjoint(wanted)
    for listing in (first_run.output["skipped_users"], first_status["skipped_users"]):
        assert {entry["clerk_id"]: entry["reason"] for entry in listing} == wanted
        assert all(entry["detail"] for entry in listing)
    assert first_run.output["skipped"] == first_status["skipped"] == dict(Counter(wanted.values()))


def test_bcrypt_users_sign_in_with_their_clerk_password(
    first_run: Step, sandbox: Sandbox, expected: dict[str, dict[str, Any]]
) -> None:
    """Same endpoints as ``tests.e2e.clerk_password``/``sign_in``, over one keep-alive client:
    a client per request costs ~25 ms, too much for a thousand users."""
    assert first_run.result.returncode == 0
    bcrypt = {clerk_id: e for clerk_id, e in expected.items() if e["eligible"] and e["hasher"] == "bcrypt"}
    clerk_base = sandbox.clerk_url.removesuffix("/v1")
    refused = []
    with httpx.Client(timeout=30) as client:

        def sign_in_status(email: str, password: str) -> int:
            answer = client.post(f"{sandbox.kinde_url}/_sandbox/sign-in", json={"email": email, "password": password})
            return answer.status_code

        for clerk_id, e in bcrypt.items():
            if not e["email"]:
                continue
            plaintext = client.get(f"{clerk_base}/_sandbox/users/{clerk_id}/password").json()["password"]
            outcome = (sign_in_status(e["email"], plaintext), sign_in_status(e["email"], plaintext + "!"))
            if outcome != (200, 401):
                refused.append((clerk_id, outcome))
    assert refused == []
    assert sum(1 for e in bcrypt.values() if e["email"]) > 1000
    # Username-only users cannot use the email sign-in check: their hash must still be bcrypt.
    methods = {user["provided_id"]: user["password_method"] for user in first_run.state["users"]}
    assert {methods[clerk_id] for clerk_id, e in bcrypt.items() if not e["email"]} == {"bcrypt"}


def test_a_second_run_writes_nothing_and_creates_nothing(second_run: Step, first_run: Step) -> None:
    assert second_run.result.returncode == 0, second_run.result.stderr
    assert second_run.writes_after == second_run.writes_before
    summary = second_run.output
    assert summary["created"] == 0 and summary["failed"] == 0
    assert summary["already_present"] == first_run.output["created"]
    assert len(second_run.state["users"]) == len(first_run.state["users"])
    assert second_run.state["duplicate_creations"] == []


def test_a_second_runs_summary_does_not_claim_what_the_first_did(second_run: Step, first_run: Step) -> None:
    summary = second_run.output
    assert summary["passwords_set"] == {} and summary["password_resets"] == 0
    first = first_run.output
    assert summary["done_earlier"] >= sum(first["passwords_set"].values()) + first["password_resets"] > 0


def test_status_json_describes_the_run(first_status: dict[str, Any], first_run: Step) -> None:
    assert first_status["run"]["id"] == first_run.output["run_id"]
    assert first_status["run"]["status"] == "completed"
    assert first_status["steps"]["state"]["done"] == first_run.output["created"]
    assert first_status["failures"] == []


@pytest.mark.parametrize(
    "command",
    [["run"], ["resume"], ["retry-failed"], ["status"], ["demo"], ["sandbox", "serve"]],
    ids=lambda command: " ".join(command),
)
def test_every_command_has_help_with_an_example(command: list[str], tmp_path: Path) -> None:
    result = run_cli(*command, "--help", cwd=tmp_path, env=cli_env())
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert "Example" in result.stdout and f"migrator {' '.join(command)} " in result.stdout


def test_run_help_documents_the_exit_codes(tmp_path: Path) -> None:
    result = run_cli("run", "--help", cwd=tmp_path, env=cli_env())
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "Exit codes" in text
    for code in ("0 every eligible user is in Kinde", "1 ", "2 bad configuration or input", "3 stopped by"):
        assert code in text


@pytest.fixture
def small(sandbox_factory: Any, tmp_path: Path) -> tuple[Sandbox, Path]:
    sandbox = sandbox_factory(users=60)
    sandbox.write_export(tmp_path / "users.csv")
    return sandbox, tmp_path


def test_without_a_terminal_or_yes_a_real_run_refuses(small: tuple[Sandbox, Path]) -> None:
    sandbox, workdir = small
    result = run_cli("run", "--clerk-export", "users.csv", cwd=workdir, env=cli_env(sandbox, **FAST))
    assert result.returncode == 2
    assert "--yes" in result.stderr and "Traceback" not in result.stdout + result.stderr
    state = kinde_state(sandbox)
    assert write_requests(state) == 0 and state["users"] == []


def run_in_terminal(workdir: Path, sandbox: Sandbox, answer: str) -> subprocess.CompletedProcess[str]:
    """``migrator run`` with a terminal on stdin (a pty), typing ``answer`` at the prompt."""
    controller, terminal = os.openpty()
    try:
        os.write(controller, answer.encode() + b"\n")
        return subprocess.run(
            [sys.executable, "-m", "migrator", "run", "--clerk-export", "users.csv"],
            cwd=workdir,
            env={**cli_env(sandbox, **FAST), "HOME": str(workdir)},
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.close(terminal)
        os.close(controller)


def test_with_a_terminal_the_plan_is_shown_and_no_means_nothing_is_written(small: tuple[Sandbox, Path]) -> None:
    sandbox, workdir = small
    eligible = sum(sandbox.dataset.expected(i)["eligible"] for i in range(sandbox.dataset.n))

    declined = run_in_terminal(workdir, sandbox, "n")
    question = declined.stdout.partition("About to write to Kinde")[2].partition("Proceed?")[0]
    assert re.search(rf"To create in Kinde\s*│\s*{eligible}\s*│", question)
    assert re.search(r"Skipped: duplicate_username\s*│\s*2\s*│", question)
    assert "nothing was written" in declined.stdout + declined.stderr
    assert write_requests(kinde_state(sandbox)) == 0

    accepted = run_in_terminal(workdir, sandbox, "y")
    assert accepted.returncode == 0, accepted.stderr
    assert len(kinde_state(sandbox)["users"]) == eligible
