"""The sandbox (Clerk + Kinde emulators) in a process of its own, for the benchmarks.

Like ``migrator sandbox serve``, plus what the benchmarks need and the CLI does not offer: bcrypt
digests for every password user (``--bcrypt-only`` = ``SandboxOptions(hasher_weights={"bcrypt": 1})``)
and no Clerk rate limit at all (``--clerk-per-10s 0``).

With ``--trace``, the Kinde app is wrapped in a recorder of (second, status) counts for every
``/api/`` and ``/oauth2/`` request, served at ``GET /_bench/trace``: the time series behind the
paced benchmark's figures (where the 429s fall, how the received rate evolves).

Prints ``export NAME=value`` lines, then ``READY``; serves until SIGTERM or Ctrl-C.

    .venv/bin/python bench/sandbox_proc.py --users 2000 --kinde-rps 20 --bcrypt-only --export-csv users.csv
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse

from migrator.sandbox import server
from migrator.sandbox.kinde_app import KindeSandboxConfig, SharedQuota
from migrator.sandbox.server import Sandbox, SandboxOptions


class Trace:
    """ASGI wrapper counting API answers per (whole second since the first request, status)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.start: float | None = None
        self.bins: dict[int, Counter[int]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_bench/trace":
            payload = {str(s): {str(k): v for k, v in c.items()} for s, c in sorted(self.bins.items())}
            await JSONResponse(payload)(scope, receive, send)
            return
        if scope["type"] != "http" or not scope["path"].startswith(("/api/", "/oauth2/")):
            await self.app(scope, receive, send)
            return
        now = time.monotonic()
        if self.start is None:
            self.start = now
        second = int(now - self.start)

        async def watch(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.bins.setdefault(second, Counter())[message["status"]] += 1
            await send(message)

        await self.app(scope, receive, watch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--organizations", type=int, default=None, help="how many organizations (up to users / 10)")
    parser.add_argument("--export-csv", type=Path)
    parser.add_argument("--kinde-rps", type=float, default=None, help="Kinde token bucket, requests/s (default none)")
    parser.add_argument("--clerk-per-10s", type=int, default=0, help="Clerk fixed window; 0 = no limit")
    parser.add_argument("--bcrypt-only", action="store_true", help="every password user has a bcrypt digest")
    parser.add_argument("--trace", action="store_true", help="serve per-second Kinde counts at /_bench/trace")
    parser.add_argument("--faults", default="none", help="fault profile for both APIs: none | light | chaos")
    parser.add_argument(
        "--kinde-stray-429", type=float, default=0.0, help="share of Kinde requests answered 429 at random"
    )
    parser.add_argument(
        "--kinde-shared",
        type=float,
        nargs=3,
        metavar=("SHARE", "START", "DURATION"),
        help="another client takes SHARE of Kinde's limit from START s after the first request, for DURATION s",
    )
    parser.add_argument("--reset-form", default="seconds", help="Kinde's reset headers: seconds | epoch | http-date")
    args = parser.parse_args()
    if args.trace:
        build = server.build_kinde_app
        server.build_kinde_app = lambda config: Trace(build(config))  # type: ignore[assignment]

    faults = server.profile(args.faults)
    kinde_faults = replace(faults, rate_limit_rate=args.kinde_stray_429) if args.kinde_stray_429 else faults
    options = SandboxOptions(
        users=args.users,
        seed=args.seed,
        organizations=args.organizations,
        hasher_weights={"bcrypt": 1.0} if args.bcrypt_only else None,
        clerk_requests_per_10s=args.clerk_per_10s or None,
        clerk_faults=faults,
        kinde_faults=kinde_faults,
        kinde=KindeSandboxConfig(
            rate_limit_rps=args.kinde_rps,
            rate_limit_reset_form=args.reset_form,
            shared_quota=SharedQuota(*args.kinde_shared) if args.kinde_shared else None,
        ),
    )
    with Sandbox(options) as sandbox:
        if args.export_csv is not None:
            rows = sandbox.write_export(args.export_csv)
            print(f"# wrote {rows} rows to {args.export_csv}", flush=True)
        for name, value in sandbox.env().items():
            print(f"export {name}={value}", flush=True)
        print("READY", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
