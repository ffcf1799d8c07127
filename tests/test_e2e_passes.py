"""A run, then ``retry-failed`` twice over the same run id: each pass's summary (human and ``--json``) counts
what that pass did, with what the earlier passes did shown as such; and ``status`` does not hide that users
failing with one error code failed for different reasons.

Four Clerk users cannot be created: another application's Kinde user holds each one's phone (each a different
phone and Kinde user, so four different messages under one code). The operator frees two, retries, frees the
other two, retries again.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from migrator.sandbox.server import Sandbox
from tests.e2e import cli_env, kinde_call, kinde_state, run_cli

FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200"}


def take_phones(sandbox: Sandbox, count: int) -> dict[str, str]:
    """Clerk id -> the Kinde user (not ours) created holding that Clerk user's phone."""
    taken: dict[str, str] = {}
    dataset = sandbox.dataset
    for i in range(dataset.n):
        expected = dataset.expected(i)
        if len(taken) < count and expected["eligible"] and expected["email"] and expected["phone"]:
            body = {"profile": {"given_name": "Other app"}, "identities": [{"type": "phone", "details": {"phone": expected["phone"]}}]}  # fmt: skip
            answer = kinde_call(sandbox, "POST", "/api/v1/user", json=body)
            answer.raise_for_status()
            taken[dataset.user_id(i)] = answer.json()["id"]
    return taken


def free(sandbox: Sandbox, kinde_ids: list[str]) -> None:
    for kinde_id in kinde_ids:
        httpx.delete(f"{sandbox.kinde_url}/_sandbox/users/{kinde_id}", timeout=30).raise_for_status()


def table_row(output: str, label: str) -> list[str]:
    """The cells of the summary table's row: ``│ Created in Kinde │ 2 │ 291 │`` -> ["2", "291"]."""
    summary = output[output.index("Run 1 (run), pass") :]  # not the plan's table above it
    line = next(line for line in summary.splitlines() if f" {label} " in line)
    return [cell.strip() for cell in line.strip("│ ").split("│")][1:]


def test_each_retry_failed_pass_counts_its_own_users_and_shows_earlier_passes_apart(
    sandbox_factory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(users=300)
    sandbox.write_export(tmp_path / "users.csv")
    env = cli_env(sandbox, CLERK_EXPORT=str(tmp_path / "users.csv"), **FAST)
    eligible = sum(1 for i in range(300) if sandbox.dataset.expected(i)["eligible"])
    taken = take_phones(sandbox, 4)
    holders = list(taken.values())

    first = run_cli("run", "--yes", "--json", cwd=tmp_path, env=env)
    assert first.returncode == 1, first.stdout + first.stderr
    started = json.loads(first.stdout)
    assert (started["created"], started["failed"], started["earlier"], started["pass_number"]) == (
        eligible - 4, 4, None, 1
    )  # fmt: skip
    assert started["failures"] == [
        {"code": "USER_ALREADY_EXISTS", "message": started["failures"][0]["message"], "users": 4, "messages": 4}
    ]

    status = run_cli("status", cwd=tmp_path, env=env).stdout
    assert "failed: 4 users [USER_ALREADY_EXISTS], 4 different messages" in status
    listed = [line for line in status.splitlines() if line.startswith("  user ")]
    for clerk_id, kinde_id in taken.items():  # each user's own reason is in the list under the grouped line
        assert any(clerk_id in line and kinde_id in line for line in listed), (clerk_id, kinde_id)

    free(sandbox, holders[:2])
    second = run_cli("retry-failed", "--yes", cwd=tmp_path, env={**env, "COLUMNS": "120"})
    assert second.returncode == 1, second.stdout + second.stderr
    assert "Run 1 (run), pass 2 (retry-failed)" in second.stdout
    assert "this pass" in second.stdout and "earlier passes" in second.stdout
    assert table_row(second.stdout, "Created in Kinde") == ["2", str(eligible - 4)]
    assert table_row(second.stdout, "Failed") == ["2", "0"]  # the other two, retried and failed again
    assert table_row(second.stdout, "Already in Kinde") == ["0", "0"]
    assert "failed: 2 users [USER_ALREADY_EXISTS], 2 different messages" in second.stdout

    free(sandbox, holders[2:])
    third = run_cli("retry-failed", "--yes", "--json", cwd=tmp_path, env=env)
    assert third.returncode == 0, third.stdout + third.stderr
    retried = json.loads(third.stdout)
    assert (retried["pass_number"], retried["pass_kind"]) == (3, "retry-failed")
    assert (retried["created"], retried["failed"], retried["failed_in_run"], retried["already_present"]) == (2, 0, 0, 0)
    assert sum(retried["passwords_set"].values()) + retried["password_resets"] <= 2
    assert (retried["earlier"]["created"], retried["earlier"]["failed"]) == (eligible - 2, 0)
    assert retried["skipped"] == {} and sum(retried["earlier"]["skipped"].values()) == 300 - eligible
    summary_file = json.loads((tmp_path / ".migrator" / "runs" / "1" / "summary.json").read_text())["run"]
    assert (summary_file["created"], summary_file["earlier"]["created"]) == (2, eligible - 2)

    status = json.loads(run_cli("status", "--json", cwd=tmp_path, env=env).stdout)
    assert [(p["number"], p["kind"]) for p in status["passes"]] == [
        (1, "start"),
        (2, "retry-failed"),
        (3, "retry-failed"),
    ]
    assert "Passes: 1 start " in run_cli("status", cwd=tmp_path, env=env).stdout

    in_kinde = {u["provided_id"] for u in kinde_state(sandbox)["users"]}
    assert set(taken) <= in_kinde
