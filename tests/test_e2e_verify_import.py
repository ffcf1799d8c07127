"""End to end: after `migrator export` and a dashboard import, `migrator verify RUN` checks the tenant as
after an API run: imported users must all be there; users listed for the API path are reported apart
(``api_pending``) until `run --only-file` migrates them; a deleted imported user fails the verify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from migrator.sandbox.server import Sandbox
from tests.e2e import cli_env, kinde_state, run_cli
from tests.test_e2e_import_files import FAST, export, listed_ids, sandbox_for, upload_all
from tests.test_e2e_verify import findings


def verify(sandbox: Sandbox, cwd: Path, run_id: int) -> tuple[int, dict[str, Any]]:
    result = run_cli("verify", str(run_id), "--json", cwd=cwd, env=cli_env(sandbox, **FAST))
    assert "Traceback" not in result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def test_verify_of_an_export_run_checks_the_imported_tenant(tmp_path: Path) -> None:
    with sandbox_for() as sandbox:
        sandbox.write_export(tmp_path / "users.csv")
        manifest = export(sandbox, tmp_path, "kinde-ndjson")
        run_id = manifest["run_id"]
        ids = listed_ids(tmp_path / "out", manifest)
        assert ids["api"]  # the dataset has users no file carries
        upload_all(sandbox, tmp_path / "out", "kinde-ndjson", manifest)

        code, clean = verify(sandbox, tmp_path, run_id)
        assert code == 0, json.dumps([clean["counts"], clean["examples"]])[:3000]
        assert clean["counts"] == {
            "missing": 0, "duplicated": 0, "unexpected": 0, "drift": 0, "incomplete": 0, "api_pending": len(ids["api"]),
        }  # fmt: skip
        pending = {r["clerk_id"] for r in findings(tmp_path, clean["reports"]["verify"])}
        assert pending == ids["api"]

        gone = next(u for u in kinde_state(sandbox)["users"] if u["provided_id"] in ids["files"])
        assert httpx.delete(f"{sandbox.kinde_url}/_sandbox/users/{gone['id']}").status_code == 200
        code, failed = verify(sandbox, tmp_path, run_id)
        assert code == 1 and failed["counts"]["missing"] == 1, failed
        rows = findings(tmp_path, failed["reports"]["verify"])
        assert [(r["clerk_id"], r["field"]) for r in rows if r["kind"] == "missing"] == [(gone["provided_id"], "user")]

        only_file = run_cli(
            "run", "--clerk-export", "users.csv", "--only-file", "out/api-users.csv", "--yes",
            cwd=tmp_path, env=cli_env(sandbox, **FAST),
        )  # fmt: skip
        assert only_file.returncode == 0, only_file.stderr[-3000:]
        code, after = verify(sandbox, tmp_path, run_id)
        assert after["counts"]["api_pending"] == 0 and after["counts"]["missing"] == 1, after
