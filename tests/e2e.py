"""Helpers for end-to-end tests: the real CLI against the sandbox on loopback.

``run_cli`` runs the CLI in this process (``typer.testing.CliRunner`` on ``migrator.cli.app``): a
process start and the imports cost more than most runs against a small sandbox. ``run_cli_process``
and ``start_cli`` run ``python -m migrator`` for the tests where the process is the point (killed
and resumed, every byte the process prints, ``sandbox serve``).

Either way the CLI sees exactly the environment a test passes (plus PATH/HOME/locale from
``cli_env``), so nothing from the developer's shell (a real CLERK_SECRET_KEY, say) can leak into a
test or change its outcome.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from migrator.cli import app
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


def _runner() -> CliRunner:
    """Click < 8.2 mixes stderr into stdout unless told not to; later versions always keep them apart."""
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    return CliRunner()


@contextlib.contextmanager
def _as_if_started(cwd: Path, env: dict[str, str]) -> Iterator[None]:
    """The working directory and the whole environment of a fresh process, for the duration."""
    ambient = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        with contextlib.chdir(cwd):
            yield
    finally:
        os.environ.clear()
        os.environ.update(ambient)


def run_cli(
    *args: str | Path, cwd: Path, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``migrator ARGS`` in ``cwd`` (its ./.migrator state dir lives there), in this process.

    Stdin is a pipe, never a terminal, as for a subprocess. An exception the CLI lets escape is
    printed to stderr as a traceback with exit code 1, as Python would (tests look for "Traceback").
    A hang is stopped by pytest-timeout.
    """
    argv = [str(arg) for arg in args]
    with _as_if_started(cwd, {**env, "HOME": str(cwd)}):
        result = _runner().invoke(app, argv, input=stdin or "", prog_name="migrator", catch_exceptions=True)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(["migrator", *argv], result.exit_code, result.stdout, stderr)


def run_cli_process(
    *args: str | Path,
    cwd: Path,
    env: dict[str, str],
    timeout: float = 300,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m migrator ARGS`` in ``cwd``, as a real process: for tests of what the process itself does."""
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


def kinde_call(sandbox: Sandbox, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One authenticated request to the sandbox's Kinde, as another tool of the same tenant would send it."""
    with httpx.Client(base_url=sandbox.kinde_url, timeout=30) as http:
        token = http.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": sandbox.kinde_config.client_id,
                "client_secret": sandbox.kinde_config.client_secret,
                "audience": f"{sandbox.kinde_url}/api",
            },
        ).json()["access_token"]
        return http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
