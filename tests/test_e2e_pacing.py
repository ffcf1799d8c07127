"""End to end: ``migrator run`` finishes, every user created exactly once, when Kinde's pacing
misbehaves: stray 429s at random (a gateway's), another client taking half the quota for a while,
and each form of the reset header (seconds, epoch timestamp, HTTP date).

Each case runs the real CLI against its own sandbox on loopback, with few users.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from migrator.sandbox.faults import FaultProfile
from migrator.sandbox.kinde_app import KindeSandboxConfig, SharedQuota
from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import cli_env, kinde_state, run_cli

USERS = 120


def migrate(sandbox: Sandbox, workdir: Path, **settings: str) -> tuple[dict, dict]:
    """``migrator run --yes --json``; (its summary, Kinde's state). Checks it accounted for everyone."""
    sandbox.write_export(workdir / "users.csv")
    result = run_cli(
        "run", "--clerk-export", "users.csv", "--yes", "--json", cwd=workdir, env=cli_env(sandbox, **settings)
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    state = kinde_state(sandbox)
    assert state["duplicate_creations"] == []
    created = state["creations_by_provided_id"]
    assert summary["created"] == len(created) > 0
    assert set(created.values()) == {1}
    expected = {sandbox.dataset.user_id(i) for i in range(USERS)}
    assert set(created) <= expected
    assert summary["failed"] == 0 and summary["pending"] == 0
    return summary, state


def throttled(state: dict) -> int:
    return sum(route["by_status"].get("429", 0) for route in state["requests"]["by_route"].values())


def test_stray_429s_at_random(tmp_path: Path) -> None:
    options = SandboxOptions(users=USERS, kinde_faults=FaultProfile(rate_limit_rate=0.05))
    with Sandbox(options) as sandbox:
        summary, _state = migrate(sandbox, tmp_path, KINDE_MAX_RPS="400", KINDE_INITIAL_RPS="100")
        faults = httpx.get(f"{sandbox.kinde_url}/_sandbox/faults", timeout=30).json()["stats"]
    assert faults["rate_limited"] > 0  # the gateway did throw them
    assert summary["throttled"]["Kinde"] == faults["rate_limited"]


def test_another_client_takes_half_the_quota_then_stops(tmp_path: Path) -> None:
    kinde = KindeSandboxConfig(rate_limit_rps=40, shared_quota=SharedQuota(share=0.5, start=1.0, duration=3.0))
    with Sandbox(SandboxOptions(users=USERS, kinde=kinde)) as sandbox:
        summary, state = migrate(sandbox, tmp_path, KINDE_MAX_RPS="200", KINDE_INITIAL_RPS="40")
    assert throttled(state) > 0  # the step down was met
    assert summary["throttled"]["Kinde"] == throttled(state)


@pytest.mark.parametrize(
    ("headers", "form"),
    [(("RateLimit-Reset",), "seconds"), (("RateLimit-Reset",), "epoch"), (("Retry-After",), "http-date")],
    ids=["ratelimit-reset-seconds", "ratelimit-reset-epoch", "retry-after-http-date"],
)
def test_each_form_of_the_reset_header(tmp_path: Path, headers: tuple[str, ...], form: str) -> None:
    # A reset misread (an epoch taken for seconds: a wait of decades, cut to MAX_WAIT = 120 s) would
    # hold the run far past the CLI's timeout; the parser's own tests pin each form to its seconds.
    kinde = KindeSandboxConfig(rate_limit_rps=20, rate_limit_headers=headers, rate_limit_reset_form=form)
    faults = FaultProfile(rate_limit_rate=0.03)  # a gateway's, in the same form
    with Sandbox(SandboxOptions(users=USERS, kinde=kinde, kinde_faults=faults)) as sandbox:
        summary, state = migrate(sandbox, tmp_path, KINDE_MAX_RPS="300", KINDE_INITIAL_RPS="60")
        stray = httpx.get(f"{sandbox.kinde_url}/_sandbox/faults", timeout=30).json()["stats"]["rate_limited"]
    assert stray > 0 and throttled(state) > 0  # both kinds of 429 were met, and answered in this form
    assert summary["throttled"]["Kinde"] == stray + throttled(state)
