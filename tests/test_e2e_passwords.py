"""End to end: users of every Clerk hasher go through the real CLI into the Kinde sandbox.

The sandbox computes each digest with the real algorithm from a known plaintext, in Clerk's export
format. After ``migrator run``, every user of an importable hasher must sign in with that plaintext,
and a wrong password must be refused. Every other password user follows ``UNIMPORTABLE_PASSWORDS``
(reset, no-password or skip) and is listed in the password report.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator import passwords
from migrator.mapping import NO_DIGEST_REASON
from migrator.models import PasswordUnimportable
from migrator.sandbox.generator import Dataset
from migrator.sandbox.hashing import CLERK_HASHERS, verify_kinde_password
from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import cli_env, kinde_state, run_cli

USERS = 400
EVERY_HASHER = dict.fromkeys(CLERK_HASHERS, 1.0)
FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200"}
REPORT_COLUMNS = ["clerk_id", "email", "hasher", "reason", "action"]
ACTIONS = {
    "reset": "password reset requested",
    "no-password": "created without a password",
    "skip": "skipped (password_not_importable)",
}
MISSING_DIGEST_WARNING = "{n} user(s) have a password in Clerk but no digest in the export: policy {policy}"


@dataclass(frozen=True)
class ClerkUser:
    """One generated Clerk user, as the test needs it."""

    clerk_id: str
    eligible: bool  # migrated at all (not skipped for a reason unrelated to passwords)
    email: str | None
    password_enabled: bool
    hasher: str | None  # None: no digest in the export
    digest: str | None = field(repr=False)
    plaintext: str | None = field(repr=False)


@dataclass
class Outcome:
    """One CLI run and what it left behind."""

    sandbox: Sandbox
    http: httpx.Client
    summary: dict[str, Any]
    stderr: str
    kinde: dict[str, dict[str, Any]]  # Kinde users by provided_id (the Clerk id)
    report: dict[str, dict[str, str]]  # password report rows by Clerk id


def clerk_users(dataset: Dataset) -> list[ClerkUser]:
    users = []
    for i in range(dataset.n):
        clerk_id, expected, secret = dataset.user_id(i), dataset.expected(i), dataset.password(i)
        users.append(
            ClerkUser(
                clerk_id=clerk_id,
                eligible=expected["eligible"],
                email=expected["email"],
                password_enabled=dataset.user(i)["password_enabled"],
                hasher=secret[0] if secret else None,
                digest=secret[1] if secret else None,
                plaintext=dataset.plaintext(clerk_id),
            )
        )
    return users


def generator_salt_position(users: list[ClerkUser]) -> str:
    """Where the generator put the salt of its md5_salted digests, found from one known plaintext."""
    user = next(u for u in users if u.hasher == "md5_salted")
    assert user.digest and user.plaintext
    salt, _, hashed = user.digest.rpartition("$")
    for position, data in (("prefix", salt + user.plaintext), ("suffix", user.plaintext + salt)):
        if hashlib.md5(data.encode()).hexdigest() == hashed:
            return position
    raise AssertionError("the generated md5_salted digest matches neither salt position")


def importable(user: ClerkUser, salt_position: str | None) -> bool:
    if user.hasher in passwords.NEEDS_SALT_POSITION:
        return salt_position is not None
    return user.hasher in passwords.IMPORTABLE_HASHERS


def expected_reason(user: ClerkUser) -> str:
    if user.hasher is None:
        return NO_DIGEST_REASON
    result = passwords.translate(user.hasher, user.digest)
    assert isinstance(result, PasswordUnimportable), user.hasher
    return result.reason


def wrong(password: str) -> str:
    return "not-" + password


def migrate(sandbox: Sandbox, http: httpx.Client, cwd: Path, *args: str, **env: str) -> Outcome:
    """``migrator run ARGS --yes --json`` in ``cwd``; the run must succeed."""
    result = run_cli("run", *args, "--yes", "--json", cwd=cwd, env=cli_env(sandbox, **FAST, **env))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    report_path = (cwd / summary["reports"]["password_resets"]).resolve()
    assert report_path == (cwd / ".migrator" / "runs" / str(summary["run_id"]) / "password-resets.csv").resolve()
    with report_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == REPORT_COLUMNS
        rows = list(reader)
    report = {row["clerk_id"]: row for row in rows}
    assert len(report) == len(rows), "a user is listed twice in the password report"
    state = kinde_state(sandbox)
    assert state["duplicate_creations"] == []
    kinde = {user["provided_id"]: user for user in state["users"] if user["provided_id"]}
    return Outcome(sandbox, http, summary, result.stderr, kinde, report)


def dry_run(sandbox: Sandbox, cwd: Path, *args: str) -> tuple[dict[str, Any], str]:
    result = run_cli("run", *args, "--dry-run", "--json", cwd=cwd, env=cli_env(sandbox, **FAST))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)["plan"], result.stderr


def sign_in(outcome: Outcome, email: str, password: str) -> int:
    """``POST /_sandbox/sign-in`` (as tests.e2e.sign_in, on one kept-alive connection)."""
    response = outcome.http.post(
        f"{outcome.sandbox.kinde_url}/_sandbox/sign-in", json={"email": email, "password": password}
    )
    return response.status_code


def signs_in(outcome: Outcome, user: ClerkUser, kinde_user: dict[str, Any], password: str) -> bool:
    """The sandbox's sign-in check; by email when the user has one, else on the stored record."""
    if user.email:
        status = sign_in(outcome, user.email, password)
        assert status in (200, 401), f"{user.clerk_id}: sign-in answered {status}"
        return status == 200
    store = outcome.sandbox.kinde_app.state.store
    with store.lock:
        record = store.users[kinde_user["id"]].password
    return record is not None and verify_kinde_password(record, password)


def sign_in_failures(outcome: Outcome, users: list[ClerkUser]) -> list[str]:
    """Every way the given users fail to sign in with their Clerk password (empty: all good)."""
    failures = []
    for user in users:
        assert user.plaintext
        kinde_user = outcome.kinde.get(user.clerk_id)
        if kinde_user is None:
            failures.append(f"{user.hasher} {user.clerk_id}: not in Kinde")
        elif kinde_user["password_method"] is None:
            failures.append(f"{user.hasher} {user.clerk_id}: no password in Kinde")
        elif kinde_user["is_password_reset_requested"]:
            failures.append(f"{user.hasher} {user.clerk_id}: a reset was requested")
        elif not signs_in(outcome, user, kinde_user, user.plaintext):
            failures.append(f"{user.hasher} {user.clerk_id}: the Clerk password is refused")
        elif signs_in(outcome, user, kinde_user, wrong(user.plaintext)):
            failures.append(f"{user.hasher} {user.clerk_id}: a wrong password is accepted")
    return failures


def check_unimportable(outcome: Outcome, users: list[ClerkUser], salt_position: str | None, policy: str) -> None:
    """Password users Kinde cannot verify: handled by ``policy`` and listed in the report."""
    problem_users = [u for u in users if u.password_enabled and not importable(u, salt_position)]
    assert set(outcome.report) == {u.clerk_id for u in problem_users}
    handled = [u for u in problem_users if u.eligible]
    assert {u.hasher for u in handled} >= set(CLERK_HASHERS) - passwords.IMPORTABLE_HASHERS - (
        passwords.NEEDS_SALT_POSITION if salt_position else set()
    )
    for user in handled:
        row = outcome.report[user.clerk_id]
        assert row["email"] == (user.email or "").lower(), user
        assert row["hasher"] == (user.hasher or ""), user
        assert row["reason"] == expected_reason(user), user
        assert row["action"] == ACTIONS[policy], user
        kinde_user = outcome.kinde.get(user.clerk_id)
        if policy == "skip":
            assert kinde_user is None, user
            continue
        assert kinde_user is not None, user
        assert kinde_user["password_method"] is None, user
        assert kinde_user["is_password_reset_requested"] is (policy == "reset"), user
        if user.email and user.plaintext:
            assert sign_in(outcome, user.email, user.plaintext) == 401, user
    if policy == "skip":  # mapped before duplicates are settled, so every one of them counts here
        assert outcome.summary["skipped"]["password_not_importable"] == len(problem_users)
    if policy == "reset":
        assert outcome.summary["password_resets"] == len(handled)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def start_sandbox() -> Iterator[Callable[[], Sandbox]]:
    """Sandboxes whose password users are spread evenly over every hasher; stopped at the end."""
    started: list[Sandbox] = []

    def start() -> Sandbox:
        sandbox = Sandbox(SandboxOptions(users=USERS, hasher_weights=EVERY_HASHER))
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def users() -> list[ClerkUser]:
    dataset = Dataset(USERS, hasher_weights=EVERY_HASHER)
    generated = clerk_users(dataset)
    for hasher in CLERK_HASHERS:  # the premise: every hasher has users to prove something with
        assert sum(u.eligible and u.hasher == hasher for u in generated) >= 5, hasher
    return generated


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export")
    Dataset(USERS, hasher_weights=EVERY_HASHER).write_export_csv(path / "clerk-export.csv")
    return path


@pytest.fixture(scope="module")
def default_run(
    start_sandbox: Callable[[], Sandbox],
    http: httpx.Client,
    export_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Any], str, Outcome]:
    """A dry run, then a run, both with the default settings: (dry-run plan, its stderr, the run)."""
    sandbox, cwd = start_sandbox(), tmp_path_factory.mktemp("default")
    export = str(export_dir / "clerk-export.csv")
    plan, stderr = dry_run(sandbox, cwd, "--clerk-export", export)
    assert kinde_state(sandbox)["users"] == [], "the dry run wrote to Kinde"
    return plan, stderr, migrate(sandbox, http, cwd, "--clerk-export", export)


# ----------------------------------------------------------------------------- tests


def test_every_importable_hasher_signs_in_with_the_clerk_password(
    default_run: tuple[dict[str, Any], str, Outcome], users: list[ClerkUser]
) -> None:
    outcome = default_run[2]
    provable = [u for u in users if u.eligible and u.hasher in passwords.IMPORTABLE_HASHERS]
    assert {u.hasher for u in provable} == passwords.IMPORTABLE_HASHERS
    assert sign_in_failures(outcome, provable) == []
    assert sum(outcome.summary["passwords_set"].values()) == len(provable)


@pytest.mark.parametrize("matching", [True, False], ids=["matching-position", "opposite-position"])
def test_salted_hashers_sign_in_only_with_the_right_salt_position(
    matching: bool,
    start_sandbox: Callable[[], Sandbox],
    http: httpx.Client,
    export_dir: Path,
    users: list[ClerkUser],
    tmp_path: Path,
) -> None:
    """The right position lets everyone in. The wrong one imports without an error and locks
    everyone out, which is why the migrator never guesses and why this check must see it."""
    position = generator_salt_position(users)
    if not matching:
        position = "suffix" if position == "prefix" else "prefix"
    outcome = migrate(
        start_sandbox(),
        http,
        tmp_path,
        "--clerk-export",
        str(export_dir / "clerk-export.csv"),
        SALTED_HASH_SALT_POSITION=position,
    )
    salted = [u for u in users if u.eligible and u.hasher in passwords.NEEDS_SALT_POSITION]
    assert {u.hasher for u in salted} == passwords.NEEDS_SALT_POSITION
    failures = sign_in_failures(outcome, salted)
    if matching:
        assert failures == []
        check_unimportable(outcome, users, position, "reset")
    else:
        assert len(failures) == len(salted)
        assert all(failure.endswith("the Clerk password is refused") for failure in failures)


def test_unimportable_passwords_are_reset_and_reported_by_default(
    default_run: tuple[dict[str, Any], str, Outcome], users: list[ClerkUser]
) -> None:
    check_unimportable(default_run[2], users, None, "reset")


@pytest.mark.parametrize(
    "policy, flags, env",
    [
        ("no-password", (), {"UNIMPORTABLE_PASSWORDS": "no-password"}),
        ("skip", ("--unimportable-passwords", "skip"), {}),
    ],
)
def test_unimportable_password_policy(
    policy: str,
    flags: tuple[str, ...],
    env: dict[str, str],
    start_sandbox: Callable[[], Sandbox],
    http: httpx.Client,
    export_dir: Path,
    users: list[ClerkUser],
    tmp_path: Path,
) -> None:
    outcome = migrate(
        start_sandbox(), http, tmp_path, "--clerk-export", str(export_dir / "clerk-export.csv"), *flags, **env
    )
    check_unimportable(outcome, users, None, policy)
    provable = [u for u in users if u.eligible and u.hasher in passwords.IMPORTABLE_HASHERS]
    assert all(outcome.kinde[u.clerk_id]["password_method"] for u in provable)


def test_missing_digest_is_counted_and_warned_about_in_the_dry_run(
    default_run: tuple[dict[str, Any], str, Outcome], users: list[ClerkUser]
) -> None:
    plan, stderr, outcome = default_run
    missing = [u for u in users if u.password_enabled and u.hasher is None]
    assert len(missing) == 1  # the generator's fixed problem user
    assert plan["password_missing"] == 1
    assert MISSING_DIGEST_WARNING.format(n=1, policy="reset") in stderr
    assert outcome.summary["plan"]["password_missing"] == 1
    assert MISSING_DIGEST_WARNING.format(n=1, policy="reset") in outcome.stderr
    assert outcome.report[missing[0].clerk_id]["reason"] == NO_DIGEST_REASON
    assert outcome.kinde[missing[0].clerk_id]["is_password_reset_requested"] is True


def test_without_an_export_every_password_user_follows_the_policy(
    start_sandbox: Callable[[], Sandbox], http: httpx.Client, users: list[ClerkUser], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    password_users = [u for u in users if u.password_enabled]
    plan, stderr = dry_run(sandbox, tmp_path)
    assert plan["password_missing"] == len(password_users)
    assert plan["password_imports"] == {}
    assert MISSING_DIGEST_WARNING.format(n=len(password_users), policy="reset") in stderr

    refused = run_cli("run", "--yes", cwd=tmp_path, env=cli_env(sandbox, **FAST))
    assert refused.returncode == 2, refused.stderr
    assert "--without-export" in refused.stderr  # nobody loses a password by forgetting the export
    outcome = migrate(sandbox, http, tmp_path, "--without-export")
    assert outcome.summary["passwords_set"] == {}
    assert set(outcome.report) == {u.clerk_id for u in password_users}
    for user in (u for u in password_users if u.eligible):
        row = outcome.report[user.clerk_id]
        assert (row["hasher"], row["reason"], row["action"]) == ("", NO_DIGEST_REASON, ACTIONS["reset"]), user
        kinde_user = outcome.kinde[user.clerk_id]
        assert kinde_user["password_method"] is None, user
        assert kinde_user["is_password_reset_requested"] is True, user
