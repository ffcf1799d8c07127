"""Benchmark 4, Clerk extraction: users pulled per second from a rate-limited sandbox Clerk.

The sandbox Clerk allows ``--per-10s`` requests per fixed 10-second window (default 100, Clerk's
development limit) and answers 429 with ``Retry-After``; pages hold 500 users, so the ceiling is
``per_10s * 500 / 10`` users/s (50,000 per 10 s = 5,000 users/s at 100). Two modes, each in its own
process, the sandbox in another:

* ``--mode client``: the migrator's Clerk client alone (``connect()`` + ``ClerkClient.iter_user_pages``,
  its adaptive limiter starting at ``CLERK_MAX_RPS``): the extraction itself;
* ``--mode pipeline``: ``migrator run --dry-run``, timing its fetch phase from the sandbox's own
  request counts (polled every 0.1 s): the extraction with mapping and journaling on the same loop.

Figures: users/s and its share of the ceiling; requests and 429s as Clerk counted them.

    .venv/bin/python bench/clerk.py --users 250000 --mode client
    .venv/bin/python bench/clerk.py --users 100000 --mode pipeline
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, run_migrator, sandbox, sandbox_settings, show

from migrator.config import Settings
from migrator.connect import connect


async def pull(env: dict[str, str], clerk_max_rps: float) -> tuple[int, float]:
    settings = sandbox_settings(env, clerk_max_rps=clerk_max_rps)
    users = 0
    async with connect(settings) as (clerk, _kinde):
        started = time.monotonic()
        async for page in clerk.iter_user_pages():
            users += len(page)
        return users, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=250_000)
    parser.add_argument("--per-10s", type=int, default=100, help="the sandbox Clerk's limit per 10 s window")
    parser.add_argument("--mode", choices=("client", "pipeline"), default="client")
    parser.add_argument("--clerk-max-rps", type=float, default=None, help="CLERK_MAX_RPS (default: the setting's)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line at the end")
    args = parser.parse_args()
    ceiling = args.per_10s * 500 / 10
    clerk_max = args.clerk_max_rps if args.clerk_max_rps is not None else Settings().clerk_max_rps

    print(f"# machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-clerk-") as tmp:
        work = Path(tmp)
        export = work / "clerk-export.csv" if args.mode == "pipeline" else None
        with sandbox(users=args.users, export_csv=export, clerk_per_10s=args.per_10s) as box:
            if args.mode == "client":
                print(f"$ {show(['pull', 'CLERK_MAX_RPS=' + str(clerk_max)])}   # in this process: {__file__}")
                before = resource.getrusage(resource.RUSAGE_SELF)
                users, seconds = asyncio.run(pull(box.env, clerk_max))
                after = resource.getrusage(resource.RUSAGE_SELF)
                cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            else:
                times: dict[str, float] = {}
                stop = threading.Event()
                pages = -(-args.users // 500) + (1 if args.users % 500 == 0 else 0)

                def watch() -> None:
                    with httpx.Client(timeout=10) as http:
                        while not stop.wait(0.1):
                            counts = http.get(f"{box.clerk_root}/_sandbox/state").json()["requests"]
                            got = counts.get("GET /v1/users", 0)
                            if got and "first" not in times:
                                times["first"] = time.monotonic()
                            if got >= pages and "last" not in times:
                                times["last"] = time.monotonic()

                watcher = threading.Thread(target=watch, daemon=True)
                watcher.start()
                settings = {"KINDE_MAX_RPS": "100000", "KINDE_INITIAL_RPS": "100000"}
                if args.clerk_max_rps is not None:
                    settings["CLERK_MAX_RPS"] = f"{args.clerk_max_rps:g}"
                run = run_migrator(
                    ["run", "--clerk-export", str(export), "--dry-run", "--json", "--state-dir", str(work / "state")],
                    sandbox_env=box.env,
                    settings=settings,
                    workdir=work,
                )
                stop.set()
                watcher.join()
                users = run.summary["plan"]["staged"]
                seconds = times["last"] - times["first"]
                cpu = run.cpu
            counts = box.clerk_requests()
    requests = counts["requests"].get("GET /v1/users", 0)
    throttled = counts["statuses"].get("429", 0)
    figures = {
        "benchmark": "clerk",
        "mode": args.mode,
        "users": users,
        "per_10s": args.per_10s,
        "seconds": round(seconds, 2),
        "users_per_s": round(users / seconds, 1),
        "share_of_ceiling": round(users / seconds / ceiling, 4),
        "clerk_requests": counts["requests"],
        "clerk_429": throttled,
        "cpu_s": round(cpu, 2),
    }
    print(f"pulled {users} users in {seconds:.1f} s = {users / seconds:,.0f} users/s")
    print(
        f"share of the ceiling {users / seconds / ceiling:.3f}  (ceiling {ceiling:,.0f} users/s at {args.per_10s}/10 s)"
    )
    print(f"Clerk counted {requests} GET /v1/users ({throttled} answered 429 in all); CPU {cpu:.1f} s")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
