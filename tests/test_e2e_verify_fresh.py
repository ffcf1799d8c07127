"""End to end: `migrator verify --fresh` compares Kinde with Clerk as it is now, not the run's staged plans.

After a run, a user is renamed, another signs up and another is deleted in Clerk (the sandbox's
``POST /_sandbox/users``): plain verify still passes clean; ``--fresh`` names each change as drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import kinde_state
from tests.test_e2e_verify import cli, findings


def verify(sandbox: Sandbox, workdir: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli(sandbox, workdir, "verify", "--json", *args)
    return result.returncode, json.loads(result.stdout)


def test_fresh_verify_sees_changes_made_in_clerk_after_the_run(tmp_path: Path) -> None:
    with Sandbox(SandboxOptions(users=40)) as sandbox:
        sandbox.write_export(tmp_path / "users.csv")
        run = cli(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--yes")
        assert run.returncode == 0, run.stderr[-3000:]
        migrated = sorted(u["provided_id"] for u in kinde_state(sandbox)["users"])
        renamed, deleted = migrated[0], migrated[1]
        door = httpx.Client(base_url=sandbox.clerk_url.removesuffix("/v1"), timeout=30)
        answer = door.post("/_sandbox/users", json={"change": {renamed: {"first_name": "Renamed"}}})
        assert answer.status_code == 200, answer.text
        added = door.post("/_sandbox/users", json={"add": 1}).json()["added"]
        assert door.post("/_sandbox/users", json={"delete": [deleted]}).status_code == 200

        plain_code, plain = verify(sandbox, tmp_path)
        fresh_code, fresh = verify(sandbox, tmp_path, "--fresh")
        rows = findings(tmp_path, fresh["reports"]["verify"])

    assert plain_code == 0 and plain["counts"]["drift"] == 0, plain
    seen = {(r["kind"], r["clerk_id"], r["field"]): r for r in rows}
    assert seen[("drift", renamed, "given_name")]["expected"] == "Renamed"
    assert seen[("drift", renamed, "given_name")]["found"] not in ("", "Renamed")
    assert seen[("drift", added[0], "clerk_user")]["found"] == "not in the run"
    assert seen[("drift", deleted, "clerk_user")]["found"] == "deleted in Clerk"
    assert len(rows) == 3, rows
    assert fresh_code == 0 and fresh["verdict"] == "passed"  # drift alone does not fail a verify
