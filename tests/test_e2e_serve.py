"""`migrator sandbox serve` prints the settings that point `migrator run` at it, and they work."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from migrator.sandbox.generator import Dataset
from tests.e2e import cli_env, run_cli

SETTINGS = {
    "CLERK_API_URL",
    "CLERK_SECRET_KEY",
    "KINDE_DOMAIN",
    "KINDE_MANAGEMENT_CLIENT_ID",
    "KINDE_MANAGEMENT_CLIENT_SECRET",
}


def test_serve_then_run_against_it(tmp_path) -> None:
    export = tmp_path / "users.csv"
    server = subprocess.Popen(
        [sys.executable, "-m", "migrator", "sandbox", "serve", "--users", "60", "--export-csv", str(export)],
        cwd=tmp_path,
        env=cli_env(HOME=str(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        env: dict[str, str] = {}
        assert server.stdout is not None
        while not env.keys() >= SETTINGS:
            line = server.stdout.readline()
            assert line, f"serve stopped early: {server.stderr.read() if server.stderr else ''}"
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                env[name] = value
        assert env["CLERK_API_URL"].startswith("http://127.0.0.1:")
        assert export.read_text(encoding="utf-8").startswith("id,first_name,last_name,username,")

        result = run_cli(
            "run", "--clerk-export", export, "--yes", "--json", cwd=tmp_path, env=cli_env(**env, KINDE_MAX_RPS="1000")
        )
        assert result.returncode == 0, result.stderr
        dataset = Dataset(60, seed=1)  # what `serve --users 60` generates (default seed 1)
        eligible = sum(dataset.expected(i)["eligible"] for i in range(60))
        assert json.loads(result.stdout)["created"] == eligible
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert server.returncode == 0
    assert "Traceback" not in (server.stderr.read() if server.stderr else "")
