"""Run the sandbox Clerk and Kinde on loopback sockets (uvicorn in background threads).

Used by ``migrator demo``, ``migrator sandbox serve``, the end-to-end tests and the benchmarks. Each
API gets its own port and its own fault injector (seeded separately), so a test can make Kinde
misbehave while Clerk stays clean, or the other way round.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import uvicorn

from migrator.sandbox.clerk_app import ClerkBehaviour, build_clerk_app
from migrator.sandbox.faults import PROFILES, FaultMiddleware, FaultProfile
from migrator.sandbox.generator import Dataset, PasswordHistory, SaltedOrder
from migrator.sandbox.kinde_app import KindeSandboxConfig, build_kinde_app, make_error_body

ExportFormat = Literal["csv", "list", "joined", "ndjson"]  # the CSV, or Clerk's JSON export's shapes


@dataclass
class SandboxOptions:
    """How to build the two emulators. Every uncertain vendor behaviour is a knob here."""

    users: int = 1000
    seed: int = 1
    hasher_weights: Mapping[str, float] | None = None
    password_history: PasswordHistory = field(default_factory=PasswordHistory)
    salted_order: SaltedOrder = "salt-first"
    account_shapes: float = 0.0  # share of users with an external account in an older Clerk shape
    organizations: int | None = None  # how many organizations (default: one per 100 users, at most 5,000)
    clerk_requests_per_10s: int | None = 1000
    clerk: ClerkBehaviour = field(default_factory=ClerkBehaviour)
    clerk_faults: FaultProfile = field(default_factory=FaultProfile)
    kinde_faults: FaultProfile = field(default_factory=FaultProfile)
    fault_retry_after: int = 1  # seconds the faults' 429s name as their reset (long: rehearse a countdown)
    kinde: KindeSandboxConfig = field(default_factory=KindeSandboxConfig)
    clerk_port: int = 0
    kinde_port: int = 0
    host: str = "127.0.0.1"


def profile(name: str) -> FaultProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown fault profile {name!r}; choose one of {', '.join(PROFILES)}") from None


def _clerk_error(status: int) -> bytes:
    code = {429: "too_many_requests"}.get(status, "internal_clerk_error")
    message = "Too many requests, retry later" if status == 429 else "There was an internal error on our servers"
    return json.dumps(
        {
            "errors": [{"message": message, "long_message": message, "code": code}],
            "clerk_trace_id": secrets.token_hex(16),
        }
    ).encode()


class BackgroundServer:
    """One uvicorn server in a daemon thread, on an ephemeral or given port (``url`` once started)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"sandbox-{port}", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox server could not start on {host}:{port}")
            time.sleep(0.01)
        self.port: int = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def serving(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """``with serving(app) as url:``: the app on loopback for the duration of the block."""
    server = BackgroundServer(app, host, port)
    try:
        yield server.url
    finally:
        server.stop()


class Sandbox:
    """Both emulators, running. Use as a context manager, or call ``stop()``."""

    def __init__(self, options: SandboxOptions | None = None) -> None:
        self.options = options or SandboxOptions()
        self.dataset = Dataset(
            self.options.users,
            self.options.seed,
            hasher_weights=self.options.hasher_weights,
            password_history=self.options.password_history,
            salted_order=self.options.salted_order,
            account_shapes=self.options.account_shapes,
            organizations=self.options.organizations,
        )
        self.secret_key = "sk_test_sandbox_" + secrets.token_urlsafe(24)
        self.kinde_config = replace(
            self.options.kinde,
            client_secret="sandbox-secret-" + secrets.token_urlsafe(24),
            workflow_env=dict(self.options.kinde.workflow_env),
        )
        self.clerk_app = build_clerk_app(
            self.dataset,
            secret_key=self.secret_key,
            requests_per_10s=self.options.clerk_requests_per_10s,
            behaviour=self.options.clerk,
        )
        self.kinde_app = build_kinde_app(self.kinde_config)
        self.clerk_faults = FaultMiddleware(
            self.clerk_app,
            self.options.clerk_faults,
            seed=self.options.seed,
            error_body=_clerk_error,
            retry_header="Retry-After",  # what Clerk documents; its edge may send nothing else
            retry_after_seconds=self.options.fault_retry_after,
        )
        self.kinde_faults = FaultMiddleware(
            self.kinde_app,
            self.options.kinde_faults,
            seed=self.options.seed + 1,
            error_body=make_error_body(self.kinde_config),
            # A gateway's stray 429 names its reset both ways, in the form Kinde's own 429s use.
            retry_header=("Retry-After", "RateLimit-Reset"),
            reset_form=self.kinde_config.rate_limit_reset_form,
            retry_after_seconds=self.options.fault_retry_after,
        )
        self._clerk = BackgroundServer(self.clerk_faults, self.options.host, self.options.clerk_port)
        # A lazy-migration workflow reaches this Clerk as it would reach the real one: URL and key from Kinde's env.
        self.kinde_config.workflow_env.setdefault("CLERK_API_URL", self.clerk_url)
        self.kinde_config.workflow_env.setdefault("CLERK_SECRET_KEY", self.secret_key)
        try:
            self._kinde = BackgroundServer(self.kinde_faults, self.options.host, self.options.kinde_port)
        except BaseException:
            self._clerk.stop()
            raise

    @property
    def clerk_url(self) -> str:
        return f"{self._clerk.url}/v1"

    @property
    def kinde_url(self) -> str:
        return self._kinde.url

    def sync_workflow(self, folder: Path) -> None:
        """Kinde's "Sync code" for the folder `migrator lazy init` wrote: sign-ins run its workflow from now on."""
        self.kinde_app.state.sync_workflow(folder)

    def env(self) -> dict[str, str]:
        """The settings that point ``migrator run`` at this sandbox."""
        return {
            "CLERK_API_URL": self.clerk_url,
            "CLERK_SECRET_KEY": self.secret_key,
            "KINDE_DOMAIN": self.kinde_url,
            "KINDE_MANAGEMENT_CLIENT_ID": self.kinde_config.client_id,
            "KINDE_MANAGEMENT_CLIENT_SECRET": self.kinde_config.client_secret,
        }

    def write_export(self, path: Path, export_format: ExportFormat = "csv") -> int:
        """Clerk's export of the dataset: the dashboard CSV, or the JSON export in one of its shapes."""
        if export_format == "csv":
            return self.dataset.write_export_csv(path)
        return self.dataset.write_export_json(path, export_format)

    def stop(self) -> None:
        self._kinde.stop()
        self._clerk.stop()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()
