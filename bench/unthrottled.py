"""Benchmark 2, unthrottled: a whole migration of N users against the sandbox over loopback, no limits.

Both emulators run without rate limits in their own process; the migrator runs ``migrator run`` end
to end (index the export, fetch, look up, create, set passwords, flags, organizations) under
``/usr/bin/time -v``. Figures:

* users/s: users migrated / the migrator process's wall time (start-up included)  (target >= 1,000)
* the migrator's CPU time (user + system) per user, and the sandbox's, from the kernel

The limiter still runs (it always does); its ceilings are set far above what loopback reaches, and
``--initial-rps`` says where the Kinde limiter starts (default: at the ceiling; pass 10 to see the
cost of a slow start from the default ``KINDE_INITIAL_RPS``).

    .venv/bin/python bench/unthrottled.py --users 10000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_run_options, api_requests, machine, migrated_users, run_migrator, sandbox


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--max-rps", type=float, default=100_000, help="KINDE_MAX_RPS and CLERK_MAX_RPS")
    parser.add_argument("--initial-rps", type=float, default=None, help="KINDE_INITIAL_RPS (default: --max-rps)")
    parser.add_argument("--concurrency", type=int, default=None, help="CONCURRENCY (default: the setting's)")
    parser.add_argument("--bcrypt-only", action="store_true", help="every password user has a bcrypt digest")
    add_run_options(parser)
    args = parser.parse_args()

    print(f"# machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-unthrottled-") as tmp:
        work = Path(tmp)
        export = work / "clerk-export.csv"
        with sandbox(users=args.users, seed=args.seed, export_csv=export, bcrypt_only=args.bcrypt_only) as box:
            settings = {
                "KINDE_MAX_RPS": f"{args.max_rps:g}",
                "KINDE_INITIAL_RPS": f"{args.initial_rps if args.initial_rps is not None else args.max_rps:g}",
                "CLERK_MAX_RPS": f"{args.max_rps:g}",
            }
            if args.concurrency is not None:
                settings["CONCURRENCY"] = str(args.concurrency)
            sandbox_cpu = box.cpu_seconds()
            run = run_migrator(
                ["run", "--clerk-export", str(export), "--yes", "--json", "--state-dir", str(work / "state")],
                sandbox_env=box.env,
                settings=settings,
                workdir=work,
                keep_log=args.log,
            )
            sandbox_cpu = box.cpu_seconds() - sandbox_cpu
            log = box.kinde_requests()
    total, _throttled, _routes = api_requests(log)
    users = migrated_users(run.summary)
    figures = {
        "benchmark": "unthrottled",
        "users": args.users,
        "migrated": users,
        "exit_code": run.exit_code,
        "wall_s": round(run.wall, 3),
        "users_per_s": round(users / run.wall, 1),
        "migrator_cpu_s": round(run.cpu, 2),
        "migrator_cpu_ms_per_user": round(1000 * run.cpu / users, 3),
        "sandbox_cpu_s": round(sandbox_cpu, 2),
        "kinde_requests": total,
        "kinde_requests_per_s": round(total / run.wall, 1),
        "peak_rss_mb": round(run.max_rss_kb / 1024, 1),
    }
    print(f"exit code {run.exit_code}; migrated {users} of {args.users}; failed {run.summary['failed']}")
    print(f"wall                 {run.wall:.2f} s  ->  {users / run.wall:,.0f} users/s   (target >= 1,000)")
    print(
        f"migrator CPU         {run.cpu:.2f} s (user {run.user_cpu:.2f} + sys {run.system_cpu:.2f})"
        f" = {1000 * run.cpu / users:.3f} ms per user; peak RSS {run.max_rss_kb / 1024:.0f} MB"
    )
    print(f"sandbox CPU          {sandbox_cpu:.2f} s (both emulators, one process)")
    print(f"Kinde API requests   {total} ({total / run.wall:,.0f}/s over the migrator's wall time)")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
