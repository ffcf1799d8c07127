"""Shared plumbing for the benchmarks: the sandbox and the migrator, each in a process of its own.

The sandbox runs ``bench/sandbox_proc.py``; the migrator runs as ``/usr/bin/time -v migrator run
...`` with a clean environment (the sandbox's ``export`` lines plus the benchmark's settings), so the
two never share a GIL and the migrator's CPU time and peak RSS are the kernel's own figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MIGRATOR = VENV_BIN / "migrator"
SANDBOX_PROC = Path(__file__).resolve().parent / "sandbox_proc.py"


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return (
        f"{model}, {os.cpu_count()} cores, {mem_kb / 1024 / 1024:.1f} GiB RAM, "
        f"Python {platform.python_version()} ({platform.system()} {platform.release()})"
    )


def show(command: list[str], env: dict[str, str] | None = None) -> str:
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    return (prefix + " " if prefix else "") + " ".join(shlex.quote(str(c)) for c in command)


@dataclass
class Sandbox:
    process: subprocess.Popen[str]
    env: dict[str, str]
    command: list[str]

    @property
    def kinde_url(self) -> str:
        return self.env["KINDE_DOMAIN"]

    @property
    def clerk_root(self) -> str:
        return self.env["CLERK_API_URL"].removesuffix("/v1")

    def kinde_requests(self) -> dict[str, Any]:
        """The Kinde sandbox's request log (``/_sandbox/state`` ``requests``)."""
        state = httpx.get(f"{self.kinde_url}/_sandbox/state", timeout=300).json()
        return state["requests"]

    def trace(self) -> dict[int, dict[int, int]]:
        """Per-second Kinde API answers by status (only when started with ``trace=True``)."""
        raw = httpx.get(f"{self.kinde_url}/_bench/trace", timeout=60).json()
        return {int(s): {int(k): v for k, v in c.items()} for s, c in raw.items()}

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the sandbox process has used so far, from /proc."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def clerk_requests(self) -> dict[str, Any]:
        return httpx.get(f"{self.clerk_root}/_sandbox/state", timeout=60).json()


@contextlib.contextmanager
def sandbox(
    *,
    users: int,
    seed: int = 1,
    export_csv: Path | None = None,
    kinde_rps: float | None = None,
    clerk_per_10s: int = 0,
    bcrypt_only: bool = False,
    trace: bool = False,
    extra: list[str] | None = None,
    startup_timeout: float = 600,
) -> Iterator[Sandbox]:
    command = [sys.executable, str(SANDBOX_PROC), "--users", str(users), "--seed", str(seed)]
    if export_csv is not None:
        command += ["--export-csv", str(export_csv)]
    if kinde_rps is not None:
        command += ["--kinde-rps", str(kinde_rps)]
    command += ["--clerk-per-10s", str(clerk_per_10s)]
    if bcrypt_only:
        command.append("--bcrypt-only")
    if trace:
        command.append("--trace")
    command += extra or []
    print(f"$ {show(command)} &", flush=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    env: dict[str, str] = {}
    deadline = time.monotonic() + startup_timeout
    try:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.strip()
            if line == "READY":
                break
            found = re.fullmatch(r"export (\w+)=(.*)", line)
            if found:
                env[found.group(1)] = found.group(2)
            if time.monotonic() > deadline:
                raise RuntimeError("the sandbox did not start in time")
        else:
            raise RuntimeError(f"the sandbox exited ({process.wait()}) before it was ready")
        yield Sandbox(process, env, command)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Run:
    """One ``migrator`` process: its JSON summary and what the kernel measured."""

    command: str
    exit_code: int
    summary: dict[str, Any]
    wall: float
    user_cpu: float
    system_cpu: float
    max_rss_kb: int
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def cpu(self) -> float:
        return self.user_cpu + self.system_cpu


def _time_v(text: str, label: str) -> str:
    found = re.search(rf"^\s*{re.escape(label)}: (.*)$", text, re.M)
    if not found:
        raise RuntimeError(f"/usr/bin/time -v printed no {label!r}")
    return found.group(1).strip()


def run_migrator(
    args: list[str],
    *,
    sandbox_env: dict[str, str],
    settings: dict[str, str],
    workdir: Path,
    timeout: float = 3600,
    keep_log: Path | None = None,
) -> Run:
    """``/usr/bin/time -v migrator ARGS`` with only the sandbox's env and ``settings``."""
    workdir.mkdir(parents=True, exist_ok=True)
    time_file = workdir / "time.txt"
    stderr_file = workdir / "migrator.stderr"
    command = ["/usr/bin/time", "-v", "-o", str(time_file), str(MIGRATOR), *args]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "COLUMNS": "200",
        **sandbox_env,
        **settings,
    }
    shown = {k: v for k, v in settings.items()}
    print(f"$ {show(command[4:], shown)}   # + the sandbox's export lines, under /usr/bin/time -v", flush=True)
    started = time.monotonic()
    with stderr_file.open("w") as err:
        result = subprocess.run(
            command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout
        )
    wall = time.monotonic() - started
    timing = time_file.read_text()
    if keep_log is not None:
        keep_log.write_text(stderr_file.read_text())
    tail = stderr_file.read_text().splitlines()[-15:]
    try:
        summary = json.loads(result.stdout)
    except json.JSONDecodeError:
        print("\n".join(tail), file=sys.stderr)
        raise RuntimeError(f"the migrator printed no JSON summary (exit {result.returncode})") from None
    return Run(
        command=show(command[4:], shown),
        exit_code=result.returncode,
        summary=summary,
        wall=wall,
        user_cpu=float(_time_v(timing, "User time (seconds)")),
        system_cpu=float(_time_v(timing, "System time (seconds)")),
        max_rss_kb=int(_time_v(timing, "Maximum resident set size (kbytes)")),
        stderr_tail=tail,
    )


def api_requests(log: dict[str, Any]) -> tuple[int, int, dict[str, int]]:
    """(requests, 429s, per route) to Kinde's API (``/api/`` and ``/oauth2/``), sandbox routes left out."""
    total = throttled = 0
    routes: dict[str, int] = {}
    for route, entry in log["by_route"].items():
        path = route.split(" ", 1)[1]
        if not path.startswith(("/api/", "/oauth2/")):
            continue
        total += entry["total"]
        throttled += entry["by_status"].get("429", 0)
        routes[route] = entry["total"]
    return total, throttled, routes


def migrated_users(summary: dict[str, Any]) -> int:
    return int(summary["created"])


def sandbox_settings(env: dict[str, str], **overrides: Any) -> Any:
    """Settings pointing at a running sandbox (its ``export`` lines), for in-process clients."""
    from migrator.config import Settings

    return Settings(
        clerk_api_url=env["CLERK_API_URL"],
        clerk_secret_key=env["CLERK_SECRET_KEY"],
        kinde_domain=env["KINDE_DOMAIN"],
        kinde_management_client_id=env["KINDE_MANAGEMENT_CLIENT_ID"],
        kinde_management_client_secret=env["KINDE_MANAGEMENT_CLIENT_SECRET"],
        **overrides,
    )


def add_run_options(parser: Any) -> None:
    """The options every end-to-end benchmark shares: data seed, progress log, JSON figures."""
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log", type=Path, help="keep the migrator's progress output (stderr) here")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line at the end")
