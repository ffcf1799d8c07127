"""Helpers for end-to-end tests: the real CLI, as a subprocess, against the sandbox on loopback.

The CLI gets a clean environment (only what a test passes, plus PATH/HOME/locale), so nothing from
the developer's shell (a real CLERK_SECRET_KEY, say) can leak into a test or change its outcome.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from migrator.sandbox.server import Sandbox


def cli_env(sandbox: Sandbox | None = None, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "COLUMNS": "200",
        "PYTHONUNBUFFERED": "1",
    }
    if sandbox is not None:
        env.update(sandbox.env())
    env.update(extra)
    return env


def run_cli(
    *args: str | Path,
    cwd: Path,
    env: dict[str, str],
    timeout: float = 300,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``migrator ARGS`` in ``cwd`` (its ./.migrator state dir lives there)."""
    return subprocess.run(
        [sys.executable, "-m", "migrator", *map(str, args)],
        cwd=cwd,
        env={**env, "HOME": str(cwd)},
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """The CLI in the background (for kill-and-resume tests)."""
    return subprocess.Popen(
        [sys.executable, "-m", "migrator", *map(str, args)],
        cwd=cwd,
        env={**env, "HOME": str(cwd)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kinde_state(sandbox: Sandbox) -> dict[str, Any]:
    response = httpx.get(f"{sandbox.kinde_url}/_sandbox/state", timeout=60)
    response.raise_for_status()
    return response.json()


def write_requests(state: dict[str, Any]) -> int:
    """How many POST/PUT/PATCH/DELETE requests reached Kinde's API (token requests excluded)."""
    return sum(
        route["total"]
        for name, route in state["requests"]["by_route"].items()
        if name.split(" ", 1)[0] in {"POST", "PUT", "PATCH", "DELETE"} and "/api/" in name
    )


def clerk_password(sandbox: Sandbox, clerk_id: str) -> str:
    base = sandbox.clerk_url.removesuffix("/v1")
    response = httpx.get(f"{base}/_sandbox/users/{clerk_id}/password", timeout=30)
    response.raise_for_status()
    return response.json()["password"]


def sign_in(sandbox: Sandbox, email: str, password: str) -> int:
    response = httpx.post(
        f"{sandbox.kinde_url}/_sandbox/sign-in", json={"email": email, "password": password}, timeout=30
    )
    return response.status_code
