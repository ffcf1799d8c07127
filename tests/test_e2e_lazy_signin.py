"""Lazy migration end to end, without a migration run: Clerk users whose digests Kinde cannot import
(argon2) and who are not in Kinde sign in to the sandbox's Kinde, whose sign-in runs the workflow
`migrator lazy init` wrote, under Node, against the sandbox's Clerk (verify_password) and Kinde's API.
Both readings of when Kinde fires the trigger are played (``workflow_fires_for``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.mapping import MappingOptions, plan_user
from migrator.models import UserPlan
from migrator.sandbox.clerk_app import ClerkBehaviour
from migrator.sandbox.generator import BANNED_USER, LOCKED_USER
from migrator.sandbox.kinde_app import KindeSandboxConfig
from migrator.sandbox.server import Sandbox, SandboxOptions
from migrator.sandbox.workflow import bundle_workflow, run_workflow
from tests.e2e import cli_env, kinde_call, kinde_state, run_cli
from tests.workflow_node import ensure_workflow_modules, lazy_candidate

USERS = 600
LOCKOUT = 3


def _workflow_folder(tmp: Path, *flags: str) -> Path:
    """The folder `migrator lazy init` writes (no node_modules: the sandbox resolves the project's)."""
    ensure_workflow_modules()
    out = tmp / "kinde-workflows"
    result = run_cli("lazy", "init", "--out", out, *flags, cwd=tmp, env=cli_env())
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    folder = _workflow_folder(tmp_path_factory.mktemp("lazy"))
    # Clerk's lockout after 3 failures, not 10: each sign-in here starts Node (the default count is
    # tested against the Clerk emulator alone).
    options = SandboxOptions(
        users=USERS, kinde=KindeSandboxConfig(workflow=folder), clerk=ClerkBehaviour(lockout_attempts=LOCKOUT)
    )
    with Sandbox(options) as running:
        yield running


def lazy_users(sandbox: Sandbox) -> list[int]:
    chosen = [i for i in range(USERS) if lazy_candidate(sandbox.dataset, i)]
    assert len(chosen) >= 4, "the default population has too few argon2 users for these tests"
    return chosen


def email_of(sandbox: Sandbox, i: int) -> str:
    user = sandbox.dataset.user(i)
    primary = user["primary_email_address_id"]
    return next(e["email_address"] for e in user["email_addresses"] if e["id"] == primary)


def sign_in(sandbox: Sandbox, email: str, password: str) -> httpx.Response:
    return httpx.post(f"{sandbox.kinde_url}/_sandbox/sign-in", json={"email": email, "password": password}, timeout=60)


def kinde_user(state: dict[str, Any], clerk_id: str) -> dict[str, Any] | None:
    return next((u for u in state["users"] if u["provided_id"] == clerk_id), None)


def clerk_verifications(sandbox: Sandbox) -> int:
    base = sandbox.clerk_url.removesuffix("/v1")
    counts = httpx.get(f"{base}/_sandbox/state", timeout=30).json()["requests"]
    return sum(n for route, n in counts.items() if "verify_password" in route)


def test_the_old_password_moves_the_user_and_the_next_sign_in_is_kindes_alone(sandbox: Sandbox) -> None:
    i = lazy_users(sandbox)[0]
    clerk_id = sandbox.dataset.user_id(i)
    email, password = email_of(sandbox, i), sandbox.dataset.clerk_password(clerk_id)
    assert password is not None
    assert kinde_user(kinde_state(sandbox), clerk_id) is None

    first = sign_in(sandbox, email, password)
    assert first.status_code == 200, first.text
    assert first.json()["password_method"] == "bcrypt"
    state = kinde_state(sandbox)
    created = kinde_user(state, clerk_id)
    assert created is not None
    plan = plan_user(sandbox.dataset.user(i), None, MappingOptions())
    assert isinstance(plan, UserPlan)
    # every identity a run sends but the phone (Kinde needs its country; `lazy finish` adds it)
    assert [(x["type"], x["value"], x.get("is_verified", False)) for x in created["identities"]] == [
        (x.type, x.value, x.is_verified if x.type != "username" else False)
        for x in plan.identities
        if x.type != "phone"
    ]
    assert (created["given_name"], created["family_name"]) == (plan.given_name, plan.family_name)
    assert state["creations_by_provided_id"][clerk_id] == 1
    runs = len(state["workflow_runs"])

    again = sign_in(sandbox, email, password)
    assert again.status_code == 200
    assert again.json()["id"] == created["id"]
    assert len(kinde_state(sandbox)["workflow_runs"]) == runs  # Kinde holds the password now


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(sandbox: Sandbox) -> None:
    i = lazy_users(sandbox)[1]
    clerk_id = sandbox.dataset.user_id(i)
    wrong = sign_in(sandbox, email_of(sandbox, i), "not-the-password-1")
    unknown = sign_in(sandbox, "nobody-at-all@example.com", "not-the-password-1")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert "password" in wrong.json()["errors"][0]["message"].lower()
    assert kinde_user(kinde_state(sandbox), clerk_id) is None


@pytest.mark.parametrize("i", [BANNED_USER, LOCKED_USER], ids=["banned", "locked"])
def test_banned_and_locked_clerk_users_are_refused_without_asking_clerk(sandbox: Sandbox, i: int) -> None:
    clerk_id = sandbox.dataset.user_id(i)
    password = sandbox.dataset.clerk_password(clerk_id)
    assert password is not None
    before = clerk_verifications(sandbox)
    refused = sign_in(sandbox, email_of(sandbox, i), password)
    assert refused.status_code == 401
    assert refused.json() == sign_in(sandbox, "nobody-at-all@example.com", "x").json()
    assert clerk_verifications(sandbox) == before
    assert kinde_user(kinde_state(sandbox), clerk_id) is None


def test_wrong_passwords_lock_the_clerk_user_and_then_the_right_one_is_refused(sandbox: Sandbox) -> None:
    i = lazy_users(sandbox)[2]
    clerk_id = sandbox.dataset.user_id(i)
    email, password = email_of(sandbox, i), sandbox.dataset.clerk_password(clerk_id)
    assert password is not None
    for attempt in range(LOCKOUT):
        assert sign_in(sandbox, email, f"guess-{attempt}").status_code == 401
    clerk = httpx.get(
        f"{sandbox.clerk_url}/users",
        params={"user_id": clerk_id},
        headers={"Authorization": f"Bearer {sandbox.secret_key}"},
        timeout=30,
    ).json()[0]
    assert clerk["locked"] is True
    assert sign_in(sandbox, email, password).status_code == 401
    assert kinde_user(kinde_state(sandbox), clerk_id) is None


def test_a_phone_only_user_is_not_handled(sandbox: Sandbox, tmp_path: Path) -> None:
    """Kinde's event carries only an email: a phone sign-in reaches the workflow without one."""
    dataset = sandbox.dataset
    i = next(i for i in range(USERS) if not dataset.user(i)["email_addresses"] and dataset.user(i)["phone_numbers"])
    bundle = bundle_workflow(sandbox.kinde_config.workflow, tmp_path)  # type: ignore[arg-type]
    before = clerk_verifications(sandbox)
    event = {
        "request": {"ip": "127.0.0.1", "userAgent": "test"},
        "context": {
            "auth": {"password": "whatever-1", "hasUserRecordInKinde": False},
            "domains": {"kindeDomain": sandbox.kinde_url},
            "application": {"clientId": "sandbox-application"},
            "workflow": {"trigger": "user:existing_password_provided"},
        },
    }
    env = {"CLERK_API_URL": (sandbox.clerk_url, False), "CLERK_SECRET_KEY": (sandbox.secret_key, True)}
    outcome = asyncio.run(run_workflow(bundle, event, env))
    assert outcome.outcome == "completed"
    assert clerk_verifications(sandbox) == before
    assert kinde_user(kinde_state(sandbox), dataset.user_id(i)) is None


def test_a_kinde_user_without_a_password_gets_the_one_time_code_when_the_trigger_does_not_fire(
    sandbox: Sandbox,
) -> None:
    email = "otp-only@example.com"
    created = kinde_call(
        sandbox, "POST", "/api/v1/user", json={"identities": [{"type": "email", "details": {"email": email}}]}
    )
    assert created.status_code == 200
    runs = len(kinde_state(sandbox)["workflow_runs"])
    answer = sign_in(sandbox, email, "anything-1")
    assert (answer.status_code, answer.json()["errors"][0]["code"]) == (401, "ONE_TIME_CODE_REQUIRED")
    assert len(kinde_state(sandbox)["workflow_runs"]) == runs


def test_no_password_hash_or_secret_reaches_the_workflow_log(sandbox: Sandbox) -> None:
    """Runs last in this module: every sign-in above has written to the log."""
    state = kinde_state(sandbox)
    log = state["workflow_log"] + json.dumps(state["workflow_runs"])
    assert "moved to Kinde" in log
    secrets = [sandbox.secret_key, sandbox.kinde_config.client_secret, "not-the-password-1", "guess-1"]
    secrets += [sandbox.dataset.clerk_password(sandbox.dataset.user_id(i)) or "" for i in lazy_users(sandbox)]
    for secret in filter(None, secrets):
        assert secret not in log


def test_users_kinde_holds_without_a_password_move_when_the_trigger_fires_for_them(tmp_path: Path) -> None:
    """The other reading: the run pre-created the user (provided_id = Clerk id) without a password."""
    folder = _workflow_folder(tmp_path, "--users-in-kinde")
    config = KindeSandboxConfig(workflow=folder, workflow_fires_for="passwordless")
    with Sandbox(SandboxOptions(users=USERS, kinde=config)) as sandbox:
        i = lazy_users(sandbox)[3]
        clerk_id = sandbox.dataset.user_id(i)
        email, password = email_of(sandbox, i), sandbox.dataset.clerk_password(clerk_id)
        assert password is not None
        identity = {"type": "email", "is_verified": True, "details": {"email": email}}
        created = kinde_call(sandbox, "POST", "/api/v1/user", json={"provided_id": clerk_id, "identities": [identity]})
        kinde_id = created.json()["id"]
        # The same Clerk user's email held in Kinde by a user this migration did not create.
        other_i = lazy_users(sandbox)[0]
        other_email = email_of(sandbox, other_i)
        other_password = sandbox.dataset.clerk_password(sandbox.dataset.user_id(other_i))
        assert other_password is not None
        stranger = {"type": "email", "is_verified": True, "details": {"email": other_email}}
        made = kinde_call(sandbox, "POST", "/api/v1/user", json={"provided_id": "user_2else", "identities": [stranger]})
        assert made.status_code == 200

        answer = sign_in(sandbox, email, password)
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"] == kinde_id
        assert kinde_state(sandbox)["creations_by_provided_id"][clerk_id] == 1
        # Not ours to touch, even with the right Clerk password: Kinde's one-time code.
        other = sign_in(sandbox, other_email, other_password)
        assert other.json()["errors"][0]["code"] == "ONE_TIME_CODE_REQUIRED"
        # An email Kinde does not hold: the trigger does not fire in this reading.
        absent = sign_in(sandbox, email_of(sandbox, lazy_users(sandbox)[1]), "anything-1")
        assert absent.status_code == 404


def test_an_event_without_hashed_password_stops_before_clerk_or_kinde_are_touched(tmp_path: Path) -> None:
    """The other reading of the event (Kinde's typings: only `password`): Kinde's API sets a password only from
    a hash, so the workflow stops the sign-in at once; the user stays in Clerk for the fallback."""
    folder = _workflow_folder(tmp_path)
    config = KindeSandboxConfig(workflow=folder, workflow_event_hash="absent")
    with Sandbox(SandboxOptions(users=USERS, kinde=config)) as sandbox:
        i = lazy_users(sandbox)[0]
        clerk_id = sandbox.dataset.user_id(i)
        password = sandbox.dataset.clerk_password(clerk_id)
        assert password is not None
        answer = sign_in(sandbox, email_of(sandbox, i), password)
        assert (answer.status_code, answer.json()["errors"][0]["code"]) == (502, "WORKFLOW_FAILED")
        state = kinde_state(sandbox)
        assert "no hashedPassword" in (state["workflow_runs"][-1]["error"] or "")
        assert kinde_user(state, clerk_id) is None
        assert clerk_verifications(sandbox) == 0
        assert password not in state["workflow_log"] + json.dumps(state["workflow_runs"])
