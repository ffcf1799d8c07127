"""A run under stray faults keeps the screen quiet: a retry that then succeeds, or a create settled by a lookup,
is counted (the pacing line, the summary, requests.jsonl), not printed; a line above the progress only for a
user's final failure, a wait longer than ``long_wait`` (with its countdown), or each retry with ``-v``. Piped,
the same rules, each line whole and free of control codes.

The CLI runs in process against the sandbox on loopback; "a terminal at 80 columns" is rich's own switch for
a device that is one (``TTY_COMPATIBLE=1``) and ``COLUMNS=80``.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from migrator.sandbox.faults import PROFILES, FaultProfile
from migrator.sandbox.kinde_app import KindeSandboxConfig
from tests.e2e import cli_env, run_cli

FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200", "MIGRATE_ORGANIZATIONS": "false"}
TERMINAL_80 = {"TTY_COMPATIBLE": "1", "COLUMNS": "80", "NO_COLOR": "1"}
RETRY_LINE = re.compile(r"(Kinde|Clerk): retry \d+ after")
RECONCILE_LINE = "create had no clear answer"
ANSI = re.compile(r"\x1b\[")


def summary_of(workdir: Path) -> dict:
    return json.loads((workdir / ".migrator/runs/1/summary.json").read_text())["run"]


def tally_shown(printed: str, service: str) -> tuple[int, int, int]:
    """The summary table's ``Requests to SERVICE  N (x x429)``, then ``retried / reconciled  r / c`` unless both 0."""
    found = re.search(rf"Requests to {service}\W+\d+ \((\d+) x429\)\W+(retried / reconciled\W+(\d+) / (\d+))?", printed)
    assert found, f"no request tally for {service} in the output"
    return int(found[1]), int(found[3] or 0), int(found[4] or 0)


def test_faults_light_at_80_columns_prints_no_retry_lines_but_counts_them_and_each_final_failure(
    sandbox_factory, tmp_path: Path
) -> None:
    # Kinde refuses +55 phone numbers: those users' identities step finally fails, which is news
    kinde = KindeSandboxConfig(refused_phone_prefixes=("+55",))
    sandbox = sandbox_factory(users=300, kinde=kinde, kinde_faults=PROFILES["light"], clerk_faults=PROFILES["light"])
    sandbox.write_export(tmp_path / "users.csv")
    env = cli_env(sandbox, **FAST, **TERMINAL_80)
    result = run_cli("run", "--clerk-export", "users.csv", "--yes", cwd=tmp_path, env=env)
    printed = result.stdout + result.stderr
    assert "Traceback" not in printed
    assert result.returncode == 1, printed[-3000:]  # the refused phones

    assert ANSI.search(result.stdout)  # a terminal indeed: the live display drew itself
    pacing = re.findall(r"pacing: Kinde \d+ req/s \(pace \d+\), \d+ x429, (\d+) retried, \d+ reconciled", printed)
    assert pacing and max(int(n) for n in pacing) > 0  # counted where the run is watched
    assert not RETRY_LINE.search(printed) and RECONCILE_LINE not in printed
    summary = summary_of(tmp_path)
    assert sandbox.kinde_faults.stats["rate_limited"] > 0 and summary["retried"]["Kinde"] > 0
    for service in ("Kinde", "Clerk"):
        shown = tally_shown(printed, service)
        assert shown == (summary["throttled"][service], summary["retried"][service], summary["reconciled"][service])

    with (tmp_path / ".migrator/runs/1/failures.csv").open(newline="") as file:
        failed = [row["clerk_id"] for row in csv.DictReader(file)]
    assert failed and len(failed) == summary["failed"]
    for clerk_id in failed:
        assert f"{clerk_id}: identities failed: " in printed


def test_verbose_prints_each_retry_and_reconciliation_and_piped_lines_stay_whole(
    sandbox_factory, tmp_path: Path
) -> None:
    faults = FaultProfile(error_rate=0.03, rate_limit_rate=0.01, ambiguous_write_rate=0.03)
    sandbox = sandbox_factory(users=200, kinde_faults=faults)
    sandbox.write_export(tmp_path / "users.csv")
    env = cli_env(sandbox, **FAST, COLUMNS="80")  # piped: CliRunner's output is no terminal
    result = run_cli("-v", "run", "--clerk-export", "users.csv", "--yes", cwd=tmp_path, env=env)
    printed = result.stdout + result.stderr
    assert "Traceback" not in printed
    assert result.returncode == 0, printed[-3000:]

    summary = summary_of(tmp_path)
    assert summary["retried"]["Kinde"] > 0 and summary["reconciled"]["Kinde"] > 0
    assert not ANSI.search(printed) and "\r" not in printed
    lines = result.stdout.splitlines()
    retries = [line for line in lines if RETRY_LINE.search(line)]
    reconciles = [line for line in lines if RECONCILE_LINE in line]
    assert len(retries) == summary["retried"]["Kinde"] + summary["retried"]["Clerk"]
    assert len(reconciles) == summary["reconciled"]["Kinde"]
    # one line a step, never wrapped at 80 columns: each starts with what it is about
    assert any(len(line) > 80 for line in retries + reconciles)
    assert all(RETRY_LINE.match(line) for line in retries)
    assert all(re.match(r"user_\w+: create had no clear answer \(.+\); the user is", line) for line in reconciles)
    steps = [line for line in lines if line.startswith("Migrate users: ")]
    assert steps and all("retried" in line and "reconciled" in line for line in steps if "req/s" in line)
    assert tally_shown(printed, "Kinde")[1:] == (summary["retried"]["Kinde"], summary["reconciled"]["Kinde"])


def test_a_long_wait_is_announced_with_its_countdown(sandbox_factory, tmp_path: Path) -> None:
    # The threshold is a setting: lowered to 1 s, a 2 s Retry-After is "long" and the test stays fast.
    for name, extra in (("terminal", TERMINAL_80), ("piped", {"COLUMNS": "80"})):
        sandbox = sandbox_factory(users=40, kinde_faults=FaultProfile(rate_limit_rate=0.05), fault_retry_after=2)
        workdir = tmp_path / name
        workdir.mkdir()
        sandbox.write_export(workdir / "users.csv")
        env = cli_env(sandbox, **FAST, **extra, LONG_WAIT="1")
        result = run_cli("run", "--clerk-export", "users.csv", "--yes", cwd=workdir, env=env)
        printed = result.stdout + result.stderr
        assert result.returncode == 0, printed[-3000:]
        assert sandbox.kinde_faults.stats["rate_limited"] > 0
        assert re.search(r"Kinde asked to wait 2 s \(Retry-After\): resuming in 2 s", printed), name
        assert not RETRY_LINE.search(printed)
        if name == "piped":
            assert not ANSI.search(printed)
