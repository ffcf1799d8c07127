"""End to end: users who changed their password after the export never get the old one back.

The sandbox's Clerk says (``password_last_updated_at``) that some users changed their password after
the export file was written; their digest in the export is the old password and their password in
Clerk is a new one. ``migrator run`` must give them the unimportable-password policy, list them in
the password report with the reason, and import everyone else's password as before.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator import passwords
from migrator.mapping import STALE_DIGEST_REASON, password_updated_at
from migrator.sandbox.generator import Dataset, PasswordHistory
from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import cli_env, kinde_state, run_cli

USERS = 160
CHANGED = 12
WEIGHTS = {"bcrypt": 1.0, "pbkdf2_sha256": 0.5, "argon2id": 0.3}
FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200"}
ACTIONS = {
    "reset": "password reset requested",
    "no-password": "created without a password",
    "skip": "skipped (password_not_importable)",
}
STALE_WARNING = "{n} user(s) changed their password after the export was made: policy {policy}"


@dataclass(frozen=True)
class Run:
    summary: dict[str, Any]
    stderr: str
    report: dict[str, dict[str, str]]
    kinde: dict[str, dict[str, Any]]  # by provided_id (the Clerk id)


def history(reading: str = "ms") -> PasswordHistory:
    return PasswordHistory(changed_after_export=CHANGED, timestamps=reading)  # type: ignore[arg-type]


def start(stack: list[Sandbox], reading: str = "ms", **options: Any) -> Sandbox:
    sandbox = Sandbox(SandboxOptions(users=USERS, hasher_weights=WEIGHTS, password_history=history(reading), **options))
    stack.append(sandbox)
    return sandbox


@pytest.fixture
def sandboxes() -> Iterator[list[Sandbox]]:
    started: list[Sandbox] = []
    yield started
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def read_report(cwd: Path, summary: dict[str, Any]) -> dict[str, dict[str, str]]:
    with (cwd / summary["reports"]["password_resets"]).open(newline="", encoding="utf-8") as handle:
        return {row["clerk_id"]: row for row in csv.DictReader(handle)}


def migrate(sandbox: Sandbox, cwd: Path, *args: str, **env: str) -> Run:
    result = run_cli("run", *args, "--yes", "--json", cwd=cwd, env=cli_env(sandbox, **FAST, **env))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    state = kinde_state(sandbox)
    assert state["duplicate_creations"] == []
    kinde = {user["provided_id"]: user for user in state["users"] if user["provided_id"]}
    return Run(summary, result.stderr, read_report(cwd, summary), kinde)


def dry_run(sandbox: Sandbox, cwd: Path, *args: str) -> Run:
    result = run_cli("run", *args, "--dry-run", "--json", cwd=cwd, env=cli_env(sandbox, **FAST))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    return Run(summary, result.stderr, read_report(cwd, summary), {})


def write_export(dataset: Dataset, cwd: Path) -> Path:
    path = cwd / "clerk-export.csv"
    dataset.write_export_csv(path)
    return path


def changed_users(dataset: Dataset) -> list[int]:
    changed = [i for i in range(dataset.n) if dataset.changed_after_export(i)]
    assert len(changed) == CHANGED
    assert sum(dataset.expected(i)["eligible"] for i in changed) >= CHANGED - 2  # the premise: most get migrated
    return changed


def signs_in(http: httpx.Client, sandbox: Sandbox, email: str, password: str) -> bool:
    response = http.post(f"{sandbox.kinde_url}/_sandbox/sign-in", json={"email": email, "password": password})
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def check_stale_users(run: Run, sandbox: Sandbox, http: httpx.Client, policy: str) -> None:
    dataset = sandbox.dataset
    changed = changed_users(dataset)
    stale_rows = {cid for cid, row in run.report.items() if row["reason"] == STALE_DIGEST_REASON}
    assert stale_rows == {dataset.user_id(i) for i in changed}
    assert run.summary["plan"]["password_problems"][STALE_DIGEST_REASON] == CHANGED
    assert STALE_WARNING.format(n=CHANGED, policy=policy) in run.stderr
    for i in changed:
        clerk_id, expected = dataset.user_id(i), dataset.expected(i)
        row = run.report[clerk_id]
        assert row["hasher"] == (dataset.password(i) or ("",))[0]
        if not expected["eligible"]:
            continue
        assert row["action"] == ACTIONS[policy], clerk_id
        kinde_user = run.kinde.get(clerk_id)
        if policy == "skip":
            assert kinde_user is None, clerk_id
            continue
        assert kinde_user is not None and kinde_user["password_method"] is None, clerk_id
        assert kinde_user["is_password_reset_requested"] is (policy == "reset"), clerk_id
        if expected["email"]:
            old, new = dataset.exported_plaintext(clerk_id), dataset.plaintext(clerk_id)
            assert old and new and old != new
            assert not signs_in(http, sandbox, expected["email"], old), f"{clerk_id} got its stale password"
            assert not signs_in(http, sandbox, expected["email"], new)


def check_everyone_else_signs_in(run: Run, sandbox: Sandbox, http: httpx.Client) -> None:
    dataset = sandbox.dataset
    others = [
        i
        for i in range(dataset.n)
        if not dataset.changed_after_export(i)
        and dataset.expected(i)["eligible"]
        and dataset.expected(i)["email"]
        and (dataset.password(i) or ("",))[0] in passwords.IMPORTABLE_HASHERS
    ]
    assert len(others) > 40
    for i in others:
        clerk_id = dataset.user_id(i)
        assert run.kinde[clerk_id]["password_method"], clerk_id
        plaintext = dataset.plaintext(clerk_id)
        assert plaintext and signs_in(http, sandbox, dataset.expected(i)["email"], plaintext), clerk_id
        assert clerk_id not in run.report


# ------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("reading", ["ms", "seconds", "null-until-changed"])
def test_users_who_changed_their_password_after_the_export_are_reset_and_reported(
    sandboxes: list[Sandbox], http: httpx.Client, tmp_path: Path, reading: str
) -> None:
    sandbox = start(sandboxes, reading)
    export = write_export(sandbox.dataset, tmp_path)
    plan = dry_run(sandbox, tmp_path, "--clerk-export", str(export))
    assert plan.summary["plan"]["password_problems"][STALE_DIGEST_REASON] == CHANGED
    assert STALE_WARNING.format(n=CHANGED, policy="reset") in plan.stderr

    run = migrate(sandbox, tmp_path, "--clerk-export", str(export))
    check_stale_users(run, sandbox, http, "reset")
    check_everyone_else_signs_in(run, sandbox, http)
    eligible_changed = sum(sandbox.dataset.expected(i)["eligible"] for i in changed_users(sandbox.dataset))
    argon = sum(
        sandbox.dataset.expected(i)["eligible"] and (sandbox.dataset.password(i) or ("",))[0] == "argon2id"
        for i in range(USERS)
        if not sandbox.dataset.changed_after_export(i)
    )
    no_digest = 1  # the generator's user 29
    assert run.summary["password_resets"] == eligible_changed + argon + no_digest


@pytest.mark.parametrize("policy", ["no-password", "skip"])
def test_stale_passwords_follow_the_unimportable_password_policy(
    sandboxes: list[Sandbox], http: httpx.Client, tmp_path: Path, policy: str
) -> None:
    sandbox = start(sandboxes)
    export = write_export(sandbox.dataset, tmp_path)
    run = migrate(sandbox, tmp_path, "--clerk-export", str(export), "--unimportable-passwords", policy)
    check_stale_users(run, sandbox, http, policy)
    check_everyone_else_signs_in(run, sandbox, http)


def test_export_time_option_overrides_the_file_time(sandboxes: list[Sandbox], tmp_path: Path) -> None:
    """A time earlier than the file's (the dashboard's export history shows when Clerk made it) makes
    every password updated since then stale, whatever the file's modification time says."""
    sandbox = start(sandboxes)
    dataset = sandbox.dataset
    export = write_export(dataset, tmp_path)
    os.utime(export)  # the file was copied today: its time says nothing about the digests
    cutoff_ms = dataset.created_at(USERS // 2)
    cutoff = datetime.fromtimestamp(cutoff_ms / 1000, UTC)

    def served_ms(i: int) -> int | None:
        when = password_updated_at(dataset.user(i)["password_last_updated_at"])
        return None if when is None else int(when.timestamp() * 1000)

    expected = {
        dataset.user_id(i)
        for i in range(USERS)
        if dataset.password(i) is not None and (served_ms(i) or 0) >= cutoff_ms and dataset.user(i)["password_enabled"]
    }
    assert CHANGED < len(expected) < USERS  # more than the users who changed after the file was written

    plan = dry_run(sandbox, tmp_path, "--clerk-export", str(export), "--export-time", cutoff.isoformat())
    stale = {cid for cid, row in plan.report.items() if row["reason"] == STALE_DIGEST_REASON}
    assert stale == expected
    assert plan.summary["plan"]["password_problems"][STALE_DIGEST_REASON] == len(expected)

    # Touched today and no --export-time: the file's time is after every change, so nothing is stale.
    touched = dry_run(sandbox, tmp_path, "--clerk-export", str(export))
    assert STALE_DIGEST_REASON not in touched.summary["plan"]["password_problems"]


def test_a_bad_export_time_is_refused_before_anything_runs(sandboxes: list[Sandbox], tmp_path: Path) -> None:
    sandbox = start(sandboxes)
    export = write_export(sandbox.dataset, tmp_path)
    result = run_cli(
        "run", "--clerk-export", str(export), "--export-time", "2025-06-01 12:00", "--yes",
        cwd=tmp_path, env=cli_env(sandbox, **FAST),
    )  # fmt: skip
    assert result.returncode == 2
    assert "CLERK_EXPORT_TIME" in result.stderr and "--export-time" in result.stderr and "timezone" in result.stderr
    assert "Traceback" not in result.stderr
    assert kinde_state(sandbox)["users"] == []


def test_resume_keeps_the_runs_export_time_and_refuses_another_unless_allowed(
    sandboxes: list[Sandbox], tmp_path: Path
) -> None:
    sandbox = start(sandboxes)
    export = write_export(sandbox.dataset, tmp_path)
    migrate(sandbox, tmp_path, "--clerk-export", str(export))
    env = cli_env(sandbox, **FAST)
    file_time = datetime.fromtimestamp(export.stat().st_mtime, UTC)

    os.utime(export)  # copied or touched since: the digests did not change, the run's time stands
    for extra in ({}, {"CLERK_EXPORT": str(export)}, {"CLERK_EXPORT_TIME": file_time.isoformat()}):
        same = run_cli("resume", "--yes", cwd=tmp_path, env={**env, **extra})
        assert same.returncode == 0, (extra, same.stderr[-2000:])

    # the run is finished: nothing to resume is said first, before the settings are compared
    other = {"CLERK_EXPORT_TIME": "2030-01-01T00:00:00+01:00"}
    finished = run_cli("resume", "--yes", cwd=tmp_path, env={**env, **other})
    assert finished.returncode == 0 and "nothing to resume" in finished.stdout
    assert "settings changed" not in finished.stdout + finished.stderr


def test_salted_digests_written_hash_first_sign_in(
    sandboxes: list[Sandbox], http: httpx.Client, tmp_path: Path
) -> None:
    """The older spec's ``hash$salt`` order, for both salted hashers, once the salt position is set."""
    sandbox = Sandbox(
        SandboxOptions(users=USERS, hasher_weights={"md5_salted": 1.0, "sha256_salted": 1.0}, salted_order="hash-first")
    )
    sandboxes.append(sandbox)
    dataset = sandbox.dataset
    export = write_export(dataset, tmp_path)
    run = migrate(sandbox, tmp_path, "--clerk-export", str(export), SALTED_HASH_SALT_POSITION="prefix")
    salted = [i for i in range(USERS) if dataset.expected(i)["eligible"] and dataset.expected(i)["email"]]
    salted = [i for i in salted if dataset.password(i) is not None]
    assert {dataset.password(i)[0] for i in salted} == {"md5_salted", "sha256_salted"}  # type: ignore[index]
    for i in salted:
        clerk_id = dataset.user_id(i)
        assert run.kinde[clerk_id]["password_method"] in ("md5", "sha256"), clerk_id
        assert signs_in(http, sandbox, dataset.expected(i)["email"], dataset.plaintext(clerk_id) or ""), clerk_id
