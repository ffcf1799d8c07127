"""Benchmark 5, verify: `migrator verify` of N migrated users against the sandbox.

A full run migrates N generated users into the sandbox Kinde (not measured); then `migrator verify`
(by pages, with per-user reads for a sample) and `migrator verify --deep` (every user read one by one)
run in turn under ``/usr/bin/time -v``: each one's wall time, peak RSS (target <= 150 MB), and the
Kinde requests it sent per verified user (target <= 0.05 by default at 100,000), from the sandbox's
own request log. The sandbox runs without
rate limits in its own process.

    .venv/bin/python bench/verify.py --users 100000
    .venv/bin/python bench/verify.py --users 100000 --organizations 10000   # many small organizations
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_run_options, api_requests, machine, run_migrator, sandbox

UNPACED = {"KINDE_MAX_RPS": "100000", "KINDE_INITIAL_RPS": "100000", "CLERK_MAX_RPS": "100000"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument(
        "--modes", default="default,deep", help="which verifies to run, in order: default (sample), deep, or both"
    )
    parser.add_argument(
        "--organizations", type=int, default=None, help="how many organizations (default one per 100 users; up to users / 10)"
    )
    parser.add_argument("--sample", type=int, default=None, help="the default verify's --sample (default 2,000)")
    add_run_options(parser)
    args = parser.parse_args()

    print(f"# machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        work = Path(tmp)
        export = work / "clerk-export.csv"
        state = str(work / "state")
        with sandbox(users=args.users, seed=args.seed, export_csv=export, startup_timeout=1800,
                     extra=["--organizations", str(args.organizations)] if args.organizations else None) as box:
            run = run_migrator(
                ["run", "--clerk-export", str(export), "--yes", "--json", "--state-dir", state],
                sandbox_env=box.env,
                settings=UNPACED,
                workdir=work / "run",
                timeout=7200,
            )
            checks: dict[str, Any] = {}
            modes = {"default": ["--sample", str(args.sample)] if args.sample else [], "deep": ["--deep"]}
            for name, extra in ((name, modes[name]) for name in args.modes.split(",")):
                before, throttled_before, _ = api_requests(box.kinde_requests())
                check = run_migrator(
                    ["verify", "--json", "--state-dir", state, *extra],
                    sandbox_env=box.env,
                    settings=UNPACED,
                    workdir=work / f"verify-{name}",
                    timeout=7200,
                    keep_log=args.log,
                )
                after, throttled, routes = api_requests(box.kinde_requests())
                checks[name] = (check, after - before, throttled - throttled_before, routes)
    print(f"run: exit {run.exit_code}, {run.summary['created']} created in {run.wall:.0f} s")
    figures: dict[str, Any] = {
        "benchmark": "verify",
        "users": args.users,
        "organizations": args.organizations,
        "sample": args.sample,
        "migrated": run.summary["created"],
        "run_exit_code": run.exit_code,
    }
    for name, (check, requests, throttled, routes) in checks.items():
        verified = check.summary["expected_users"]
        figures[name] = {
            "verify_exit_code": check.exit_code,
            "verdict": check.summary["verdict"],
            "counts": check.summary["counts"],
            "coverage": check.summary.get("coverage", {}).get("text"),
            "kinde_users_read": check.summary["kinde_users"],
            "wall_s": round(check.wall, 1),
            "cpu_s": round(check.cpu, 1),
            "peak_rss_mb": round(check.max_rss_kb / 1024, 1),
            "kinde_requests": requests,
            "requests_per_user": round(requests / max(1, verified), 4),
            "users_per_s": round(verified / check.wall, 1),
        }
        shown = figures[name]
        print(f"verify ({name}): exit {check.exit_code}, verdict {shown['verdict']}, counts {shown['counts']}")
        print(f"  checked by         {shown['coverage']}")
        print(f"  wall / CPU         {check.wall:.1f} s / {check.cpu:.1f} s ({shown['users_per_s']:,} users/s)")
        print(f"  peak RSS           {check.max_rss_kb / 1024:.1f} MB   (target <= 150 MB)")
        print(f"  Kinde requests     {requests} ({shown['requests_per_user']} per user; {throttled} answered 429)")
        print(f"  cumulative by route (run + verifies so far): {json.dumps(routes)}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
