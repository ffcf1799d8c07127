"""The run's JSON-lines request log: one line per request sent (retries too), in the run's folder,
0600, with method, route, status, duration and attempt, and never a secret, token, digest or email."""

from __future__ import annotations

import json
from pathlib import Path

from migrator.request_log import route
from migrator.sandbox.faults import FaultProfile
from tests.e2e import cli_env, run_cli


def test_every_request_of_a_run_is_a_line_of_its_log(sandbox_factory, tmp_path: Path) -> None:
    faults = FaultProfile(error_rate=0.05, reset_rate=0.02)  # retries, and network errors without an answer
    sandbox = sandbox_factory(users=200, kinde_faults=faults)
    sandbox.write_export(tmp_path / "users.csv")
    env = cli_env(sandbox, KINDE_MAX_RPS="2000", KINDE_INITIAL_RPS="200")
    result = run_cli("run", "--clerk-export", "users.csv", "--yes", "--json", cwd=tmp_path, env=env)
    assert result.returncode in (0, 1), result.stderr
    summary = json.loads(result.stdout)

    log = tmp_path / ".migrator/runs/1/requests.jsonl"
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    lines = [entry for entry in entries if "event" not in entry]  # the attempts
    answered = [entry for entry in lines if entry["status"] is not None]
    for service in ("clerk", "kinde"):
        sent = [e for e in lines if e["service"] == service]
        assert len(sent) >= summary["requests"][service.capitalize()]
    assert {"at", "service", "method", "route", "status", "ms", "attempt", "retry"} <= set(answered[0])
    assert any(e["retry"] and e["attempt"] > 1 for e in lines)  # retries are lines of their own
    assert any(e.get("error") for e in lines)  # so are answers cut short (the error is named)
    assert any(e["route"] == "/oauth2/token" and e["method"] == "POST" for e in lines)
    retried = [e for e in lines if e["service"] == "kinde" and e["retry"]]
    assert len(retried) >= summary["retried"]["Kinde"] > 0  # the token's own retries are lines too
    # a create answered 5xx may have happened: settled by a lookup, each a line naming what and how, never whose
    reconciled = [e for e in entries if e.get("event") == "reconcile"]
    assert len(reconciled) == summary["reconciled"]["Kinde"] > 0
    for entry in reconciled:
        assert set(entry) == {"event", "at", "service", "kind", "outcome", "answer"}
        assert entry["service"] == "kinde" and entry["outcome"] in ("found", "resent", "failed")

    blob = log.read_text()
    assert sandbox.secret_key not in blob and sandbox.kinde_config.client_secret not in blob
    assert "Bearer" not in blob and "eyJ" not in blob  # no token
    assert "$2" not in blob and "?" not in blob and "@" not in blob  # no digest, query string or email


def test_an_export_logs_its_requests_in_its_run_folder(sandbox_factory, tmp_path: Path) -> None:
    """Before, an export never named its file: every line stayed in memory (up to 10,000) and was lost."""
    sandbox = sandbox_factory(users=120)
    sandbox.write_export(tmp_path / "users.csv")
    result = run_cli(
        "export", "--out", "out", "--clerk-export", "users.csv", "--json", cwd=tmp_path, env=cli_env(sandbox)
    )
    assert result.returncode == 0, result.stderr[-3000:]

    log = tmp_path / ".migrator/runs/1/requests.jsonl"
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(e["service"] == "clerk" and e["route"] == "/v1/users" and e["status"] == 200 for e in lines)
    assert any(e["service"] == "kinde" and e["route"] == "/oauth2/token" for e in lines)  # the preflight's
    blob = log.read_text()
    assert sandbox.secret_key not in blob and "$2" not in blob and "@" not in blob


def test_routes_hide_ids_emails_and_query_strings() -> None:
    assert route("/v1/users/user_2abcDEF123xyz/organization_memberships") == "/v1/users/:id/organization_memberships"
    assert route("/api/v1/users?email=a%40b.c&page_size=10") == "/api/v1/users"
    assert route("/api/v1/organizations/org_1a2b3c4d5e/users/kp_0123456789abcdef") == (
        "/api/v1/organizations/:id/users/:id"
    )
    assert route("/api/v1/user/ada@example.com") == "/api/v1/user/:email"
    assert route("/api/v1/organization") == "/api/v1/organization"


def test_verify_and_undo_log_their_requests_too(sandbox_factory, tmp_path: Path) -> None:
    """Every command that talks to an API keeps the log: verify beside the run's own (a verify days later must not
    stretch the run's charts), an undo in its own run's folder."""
    sandbox = sandbox_factory(users=40)
    sandbox.write_export(tmp_path / "users.csv")
    env = cli_env(sandbox)
    assert run_cli("run", "--clerk-export", "users.csv", "--yes", "--json", cwd=tmp_path, env=env).returncode == 0
    run_log = tmp_path / ".migrator/runs/1/requests.jsonl"
    run_lines = run_log.read_text()

    verified = run_cli("verify", "1", "--json", cwd=tmp_path, env=env)
    assert verified.returncode == 0, verified.stderr[-3000:]
    log = tmp_path / ".migrator/runs/1/verify-requests.jsonl"
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(e["service"] == "kinde" and e["method"] == "GET" and e["route"] == "/api/v1/users" for e in lines)
    assert run_log.read_text() == run_lines

    undone = run_cli("undo", "1", "--yes", "--json", cwd=tmp_path, env=env)
    assert undone.returncode == 0, undone.stderr[-3000:]
    undo_run = json.loads(undone.stdout)["run_id"]
    log = tmp_path / f".migrator/runs/{undo_run}/requests.jsonl"
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(e["method"] == "DELETE" and e["route"] == "/api/v1/user" and e["status"] == 200 for e in lines)
    assert any(e["route"] == "/oauth2/token" for e in lines)  # the scope check before it was recorded
    blob = log.read_text()
    assert sandbox.kinde_config.client_secret not in blob and "Bearer" not in blob and "@" not in blob
