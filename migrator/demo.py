"""``migrator demo`` and ``migrator sandbox serve``: the only places the core meets the sandbox.

The demo starts both emulators on loopback, writes Clerk's CSV export, runs a real migration over
HTTP exactly as ``migrator run`` would, then proves the point of the exercise: migrated users sign in
to (sandbox) Kinde with the password they had in Clerk.

``demo --lazy`` runs it with the lazy policy: the users whose digests Kinde cannot import stay in Clerk, the
workflow ``migrator lazy init`` writes is synced to the sandbox's Kinde and given its variables by ``migrator
lazy setup``, some of them sign in with their old password (the workflow asks Clerk, under Node), then
``migrator lazy status`` and ``migrator lazy finish`` close the window: each as the operator types it.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import httpx
from rich.console import Console
from rich.table import Table

from migrator.config import Settings
from migrator.errors import ConfigError
from migrator.journal import Journal
from migrator.render import Renderer, summary_table
from migrator.report_files import run_dir
from migrator.runs.actions import Start
from migrator.runs.api import run_migration
from migrator.sandbox.clerk_app import ClerkBehaviour
from migrator.sandbox.kinde_app import ALL_SCOPES, KindeSandboxConfig, SharedQuota
from migrator.sandbox.server import Sandbox, SandboxOptions, profile
from migrator.sandbox.workflow import WorkflowSetupError, install_modules


@dataclass
class ServeRequest:
    """What ``sandbox serve`` was asked for, in plain values (``demo.serve_options`` builds the sandbox)."""

    users: int = 1000
    seed: int = 1
    clerk_port: int = 0
    kinde_port: int = 0
    export_csv: Path | None = None
    export_json: Path | None = None
    export_json_shape: str = "list"
    account_shapes: float = 0.0
    organizations: int | None = None
    faults: str = "none"
    fault_retry_after: int = 1
    kinde_rps: float | None = None
    clerk_rps: int = 1000
    duplicate_status: int = 400
    reset_form: str = "seconds"
    shared_quota: float | None = None
    shared_quota_after: float = 0.0
    shared_quota_for: float = 3600.0
    token_lifetime: int = 3600
    token_max_uses: int | None = None
    bad_token_status: int = 401
    without_scopes: list[str] = field(default_factory=list)
    only_scopes: list[str] = field(default_factory=list)
    clerk_cursor: str = "honoured"
    clerk_organizations: str = "served"
    clerk_role_permissions: str = "served"
    clerk_outage_after_pages: int | None = None
    clerk_outage_seconds: float | None = None
    clerk_outage_status: int = 503
    kinde_readings: dict[str, Any] = field(default_factory=dict)
    workflow: Path | None = None


def run_demo(*, users: int, seed: int, sign_ins: int, lazy: bool = False) -> int:
    console = Console()
    if lazy and (shutil.which("node") is None or shutil.which("npm") is None):
        raise ConfigError("`demo --lazy` runs the Kinde workflow under Node.js 20+: put `node` and `npm` on PATH")
    console.print(f"[bold]Starting the sandbox[/bold]: a Clerk instance with {users} generated users, an empty Kinde")
    with (
        tempfile.TemporaryDirectory(prefix="migrator-demo-") as workdir,
        Sandbox(SandboxOptions(users=users, seed=seed)) as sandbox,
    ):
        export = Path(workdir) / "clerk-export.csv"
        sandbox.write_export(export)
        console.print(f"Clerk API  {sandbox.clerk_url}\nKinde API  {sandbox.kinde_url}\nCSV export {export}\n")
        settings = Settings(
            clerk_api_url=sandbox.clerk_url,
            clerk_secret_key=sandbox.secret_key,
            kinde_domain=sandbox.kinde_url,
            kinde_management_client_id=sandbox.kinde_config.client_id,
            kinde_management_client_secret=sandbox.kinde_config.client_secret,
            clerk_export=export,
            state_dir=Path(workdir) / "state",
            kinde_max_rps=2000,
            kinde_initial_rps=200,
            **({"unimportable_passwords": "lazy"} if lazy else {}),
        )
        journal = Journal(settings.state_dir)
        try:
            with Renderer(console, live=console.is_terminal) as renderer:
                summary = asyncio.run(
                    run_migration(settings, journal, Start(), on_event=renderer, confirm=lambda plan: True)
                )
            console.print(summary_table(summary))
            ok = _sign_in_sample(console, sandbox, journal, summary.run_id, sign_ins)
        finally:
            journal.close()
        if lazy:
            ok &= _lazy_window(console, sandbox, settings, Path(workdir), summary.run_id, sign_ins)
    return 0 if ok and summary.exit_code == 0 else 1


# Each first sign-in of the cohort runs the workflow in a Node process of its own: a few show the point.
LAZY_SIGN_INS = 5


def _lazy_window(console: Console, sandbox: Sandbox, settings: Settings, workdir: Path, run_id: int, sign_ins: int) -> bool:
    """The lazy window, each step as the operator runs it (``migrator lazy ...`` in a process of its own, whose
    settings are the sandbox's alone: nothing of this shell's environment can point it at a real tenant)."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR") if name in os.environ}
    env |= {**sandbox.env(), "STATE_DIR": str(settings.state_dir), "CLERK_EXPORT": str(settings.clerk_export)}

    def migrator(*args: str) -> bool:
        console.print(f"\n[bold]$ migrator {' '.join(args)}[/bold]")
        command = [sys.executable, "-m", "migrator", *args]
        return subprocess.run(command, cwd=workdir, env=env, check=False).returncode == 0

    folder = workdir / "kinde-workflows"
    if not migrator("lazy", "init", "--out", str(folder)):
        return False
    try:
        install_modules()  # the project's copy, from its lockfile: the bundle resolves its packages there
        sandbox.sync_workflow(folder)  # Kinde's "Sync code" after the push
    except WorkflowSetupError as error:
        raise ConfigError(f"`demo --lazy`: {error}") from None
    ok = migrator("lazy", "setup")
    cohort = run_dir(settings.state_dir, run_id) / "lazy.csv"
    ok &= _lazy_sign_ins(console, sandbox, cohort, min(sign_ins, LAZY_SIGN_INS))
    ok &= migrator("lazy", "status")
    ok &= migrator("lazy", "finish", "--yes")
    return ok


def _lazy_sign_ins(console: Console, sandbox: Sandbox, cohort: Path, count: int) -> bool:
    """Up to ``count`` argon2 users of the cohort sign in with their old password (the workflow moves them),
    again (Kinde's own check now), and with a wrong one (refused)."""
    if not cohort.exists():
        console.print(f"[red]The run wrote no {cohort.name}: nobody is waiting to move.[/red]")
        return False
    index = {sandbox.dataset.user_id(i): i for i in range(sandbox.dataset.n)}
    with cohort.open(newline="") as file:
        rows = [row for row in csv.DictReader(file) if _argon2(sandbox, index.get(row["clerk_id"]))][:count]
    table = Table(title="Lazy cohort (argon2) signing in with the old Clerk password", title_justify="left")
    for column in ("users tried", "moved at first sign-in", "second sign-in (Kinde's own)", "wrong password refused"):
        table.add_column(column, justify="right")
    moved = again = refused = 0
    with httpx.Client(timeout=60) as http:
        for row in rows:
            password = sandbox.dataset.clerk_password(row["clerk_id"]) or ""
            sign_in = f"{sandbox.kinde_url}/_sandbox/sign-in"
            refused += http.post(sign_in, json={"email": row["email"], "password": password + "x"}).status_code == 401
            moved += http.post(sign_in, json={"email": row["email"], "password": password}).status_code == 200
            again += http.post(sign_in, json={"email": row["email"], "password": password}).status_code == 200
    table.add_row(str(len(rows)), str(moved), str(again), str(refused))
    console.print(table)
    all_ok = bool(rows) and moved == again == refused == len(rows)
    console.print(
        "[green]Every one moved at sign-in, without a reset.[/green]" if all_ok else "[red]Some could not move.[/red]"
    )
    return all_ok


def _argon2(sandbox: Sandbox, i: int | None) -> bool:
    password = sandbox.dataset.password(i) if i is not None else None
    return password is not None and password[0].startswith("argon2")


def _sign_in_sample(console: Console, sandbox: Sandbox, journal: Journal, run_id: int, per_method: int) -> bool:
    """Sign in up to ``per_method`` users of each imported hash method with their Clerk password."""
    by_method: dict[str, list[tuple[str, str]]] = {}
    for row in journal.users.with_password_set(run_id):
        method = row.password_method
        if len(by_method.setdefault(method, [])) < per_method:
            email = next((i["value"] for i in json.loads(row.plan)["identities"] if i["type"] == "email"), None)
            if email:
                by_method[method].append((row.clerk_id, email))
    table = Table(title="Sign-in with the original Clerk password", title_justify="left")
    for column in ("hash method", "users tried", "signed in", "wrong password refused"):
        table.add_column(column, justify="right" if column != "hash method" else "left")
    all_ok = True
    with httpx.Client(timeout=30) as http:
        for method, people in sorted(by_method.items()):
            if not people:
                continue
            signed = refused = 0
            for clerk_id, email in people:
                plaintext = http.get(f"{sandbox.clerk_url.removesuffix('/v1')}/_sandbox/users/{clerk_id}/password")
                password = plaintext.json()["password"]
                good = http.post(f"{sandbox.kinde_url}/_sandbox/sign-in", json={"email": email, "password": password})
                bad = http.post(
                    f"{sandbox.kinde_url}/_sandbox/sign-in", json={"email": email, "password": password + "x"}
                )
                signed += good.status_code == 200
                refused += bad.status_code == 401
            all_ok &= signed == refused == len(people)
            table.add_row(method, str(len(people)), str(signed), str(refused))
    console.print(table)
    console.print(
        "[green]Every sampled user signed in with the old password.[/green]"
        if all_ok
        else "[red]Some sampled users could not sign in.[/red]"
    )
    return all_ok


def sandbox_scopes() -> frozenset[str]:
    """Every scope the sandbox's Kinde knows (what ``sandbox serve --without-scope`` may name)."""
    return ALL_SCOPES


FLAGGED = {"token_lifetime", "duplicate_status", "rate_limit_reset_form", "bad_token_status"}  # own flags


def kinde_readings() -> dict[str, tuple[Any, ...]]:
    """The Kinde sandbox's readings of open questions ``--kinde-reading NAME=VALUE`` may set, with the values
    each takes (an empty tuple: any whole number); the switches with a flag of their own are left out."""
    readings: dict[str, tuple[Any, ...]] = {}
    for name, kind in get_type_hints(KindeSandboxConfig).items():
        if name in FLAGGED:
            continue
        if kind is bool:
            readings[name] = (True, False)
        elif kind is int:
            readings[name] = ()
        elif get_origin(kind) is Literal:
            readings[name] = get_args(kind)
    return readings


def parse_kinde_reading(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` -> (switch, value), checked against the switch's type; ValueError says what is wrong."""
    name, _, raw = text.partition("=")
    known = kinde_readings()
    if name not in known or not raw:
        raise ValueError(f"{text!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(known))}")
    choices = known[name]
    if not choices:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{name} takes a whole number above 0, got {raw!r}")
        return name, int(raw)
    for choice in choices:
        if str(choice).lower() == raw.lower():
            return name, choice
    raise ValueError(f"{name} takes one of {', '.join(str(c).lower() for c in choices)}, got {raw!r}")


def serve_options(request: ServeRequest) -> SandboxOptions:
    """The sandbox ``sandbox serve`` was asked for: each flag onto its switch."""
    fault_profile = profile(request.faults)
    quota = request.shared_quota
    shared = None if quota is None else SharedQuota(quota, request.shared_quota_after, request.shared_quota_for)
    kinde = KindeSandboxConfig(
        rate_limit_rps=request.kinde_rps,
        duplicate_status=request.duplicate_status,
        rate_limit_reset_form=request.reset_form,  # type: ignore[arg-type]  (checked by the parser)
        shared_quota=shared,
        token_lifetime=request.token_lifetime,
        token_max_uses=request.token_max_uses,
        bad_token_status=request.bad_token_status,  # type: ignore[arg-type]
        scopes=frozenset(request.only_scopes) if request.only_scopes else ALL_SCOPES - set(request.without_scopes),
        workflow=request.workflow,
        **request.kinde_readings,
    )
    clerk = ClerkBehaviour(
        cursor=request.clerk_cursor,  # type: ignore[arg-type]
        outage_after_pages=request.clerk_outage_after_pages,
        outage_seconds=request.clerk_outage_seconds,
        outage_status=request.clerk_outage_status,
        organizations=request.clerk_organizations,  # type: ignore[arg-type]  (checked by the parser)
        role_permissions=request.clerk_role_permissions,  # type: ignore[arg-type]
    )
    return SandboxOptions(
        users=request.users,
        seed=request.seed,
        clerk_port=request.clerk_port,
        kinde_port=request.kinde_port,
        clerk_requests_per_10s=request.clerk_rps,
        clerk_faults=fault_profile,
        kinde_faults=fault_profile,
        fault_retry_after=request.fault_retry_after,
        clerk=clerk,
        kinde=kinde,
        account_shapes=request.account_shapes,
        organizations=request.organizations,
    )


def serve_sandbox(request: ServeRequest) -> int:
    console = Console()
    try:
        sandbox = Sandbox(serve_options(request))  # starts both servers
    except WorkflowSetupError as exc:  # no Node, no esbuild, not a workflow folder: says what to do
        raise ConfigError(str(exc)) from None
    except RuntimeError as exc:  # the port is taken or not ours to bind
        raise ConfigError(
            f"{exc}: is another process using the port? (--clerk-port/--kinde-port 0 pick a free one)"
        ) from None
    with sandbox:
        if request.export_csv is not None:
            rows = sandbox.write_export(request.export_csv)
            console.print(f"# wrote {rows} rows of Clerk's CSV export to {request.export_csv}", highlight=False)
        if request.export_json is not None:
            shape = request.export_json_shape
            rows = sandbox.write_export(request.export_json, shape)  # type: ignore[arg-type]  (checked by the parser)
            console.print(f"# wrote {rows} users of Clerk's JSON export ({shape}) to {request.export_json}", highlight=False)
        for name, value in sandbox.env().items():
            print(f"export {name}={value}", flush=True)
        console.print("# sandbox running; Ctrl-C to stop", highlight=False)
        wait_until_stopped(sandbox)
    return 0


def wait_until_stopped(sandbox: Sandbox) -> None:
    """Serve until Ctrl-C or SIGTERM (the sandbox is passed so a test can use it while it serves)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
