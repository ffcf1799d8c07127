"""A run's lazy window is open until `migrator lazy finish` closes it: a new run, canary or export of import files
(with any password policy, the lazy one too) is refused before it asks Clerk or Kinde anything, with exit 2 and what to do; a dry
run is warned; a catch-up follows the window; after the finish a new run goes ahead. The CLI in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.errors import EXIT_BAD_INPUT
from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import cli_env, kinde_state, run_cli

USERS = 80
WEIGHTS = {"bcrypt": 1.0, "argon2id": 1.0}  # half the passwords are argon2: Kinde cannot import them
FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Sandbox, Path, dict[str, str]]]:
    with Sandbox(SandboxOptions(users=USERS, hasher_weights=WEIGHTS)) as sandbox:
        export = tmp_path / "clerk-export.csv"
        sandbox.dataset.write_export_csv(export)
        yield sandbox, tmp_path, cli_env(sandbox, CLERK_EXPORT=str(export), **FAST)


def requests_seen(sandbox: Sandbox) -> tuple[int, int]:
    """Every request Clerk and Kinde received (token requests included; the sandbox's own state reads not)."""
    clerk = httpx.get(f"{sandbox.clerk_url.removesuffix('/v1')}/_sandbox/state", timeout=30).json()["requests"]
    kinde = kinde_state(sandbox)["requests"]["by_route"]
    return (
        sum(n for route, n in clerk.items() if "/_sandbox/" not in route),
        sum(entry["total"] for route, entry in kinde.items() if "/_sandbox/" not in route),
    )


def test_a_new_run_or_canary_is_refused_while_a_lazy_window_is_open(world: Any) -> None:
    sandbox, cwd, env = world

    def cli(*args: str) -> Any:
        return run_cli(*args, cwd=cwd, env=env)

    started = cli("run", "--unimportable-passwords", "lazy", "--yes", "--json")
    assert started.returncode == 0, started.stderr[-3000:]
    cohort = json.loads(started.stdout)["lazy"]["cohort"]
    assert cohort > 0

    before = requests_seen(sandbox)
    refusals = {
        "reset": cli("run", "--yes"),
        "no-password": cli("run", "--unimportable-passwords", "no-password", "--yes"),
        "lazy": cli("run", "--unimportable-passwords", "lazy", "--yes"),
        "canary": cli("run", "--sample", "5", "--yes"),
        "export": cli("export", "--out", str(cwd / "import")),
    }
    for name, refused in refusals.items():
        assert refused.returncode == EXIT_BAD_INPUT, (name, refused.stdout, refused.stderr)
        message = " ".join(refused.stderr.split())
        assert "Traceback" not in refused.stderr
        assert f"the lazy window of run 1 is open: {cohort} user(s) of its cohort" in message, (name, message)
        assert "`migrator lazy finish 1`" in message and "`migrator sync`" in message
    assert "the 'reset' password policy" in " ".join(refusals["reset"].stderr.split())
    assert "open a second window over the same users" in " ".join(refusals["lazy"].stderr.split())
    assert "a canary would create" in " ".join(refusals["canary"].stderr.split())
    assert "an export's files, once imported, would create" in " ".join(refusals["export"].stderr.split())
    assert not (cwd / "import").exists()
    # refused from the journal alone: neither Clerk nor Kinde was asked anything, no run was recorded
    assert requests_seen(sandbox) == before
    assert not (cwd / ".migrator" / "runs" / "2").exists()
    runs = json.loads(cli("runs", "--json").stdout)
    assert [r["id"] for r in (runs["runs"] if isinstance(runs, dict) else runs)] == [1]

    # a dry run writes nothing: it goes ahead, warned
    dry = cli("run", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "a real run would be refused: the lazy window of run 1 is open" in " ".join(
        (dry.stdout + dry.stderr).split()
    )

    # a catch-up follows the window (it keeps the cohort lazy): not refused
    caught_up = cli("sync", "--yes", "--json")
    assert caught_up.returncode == 0, caught_up.stderr[-3000:]

    # closed by the finish: a new run goes ahead, and finds every user already there
    finished = cli("lazy", "finish", "--yes", "--json")
    assert finished.returncode == 0, finished.stderr[-3000:]
    again = cli("run", "--yes", "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["created"] == 0
    assert kinde_state(sandbox)["duplicate_creations"] == []
