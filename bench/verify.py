"""Benchmark 5, verify: `migrator verify` of N migrated users against the sandbox.

A full run migrates N generated users into the sandbox Kinde (not measured); then `migrator verify`
runs under ``/usr/bin/time -v``: its wall time, its peak RSS (target <= 150 MB), and the Kinde
requests it sent per verified user, from the sandbox's own request log. The sandbox runs without
rate limits in its own process.

    .venv/bin/python bench/verify.py --users 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_run_options, api_requests, machine, run_migrator, sandbox

UNPACED = {"KINDE_MAX_RPS": "100000", "KINDE_INITIAL_RPS": "100000", "CLERK_MAX_RPS": "100000"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, required=True)
    add_run_options(parser)
    args = parser.parse_args()

    print(f"# machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        work = Path(tmp)
        export = work / "clerk-export.csv"
        state = str(work / "state")
        with sandbox(users=args.users, seed=args.seed, export_csv=export, startup_timeout=1800) as box:
            run = run_migrator(
                ["run", "--clerk-export", str(export), "--yes", "--json", "--state-dir", state],
                sandbox_env=box.env,
                settings=UNPACED,
                workdir=work / "run",
                timeout=7200,
            )
            before, _, _ = api_requests(box.kinde_requests())
            check = run_migrator(
                ["verify", "--json", "--state-dir", state],
                sandbox_env=box.env,
                settings=UNPACED,
                workdir=work / "verify",
                timeout=7200,
                keep_log=args.log,
            )
            after, throttled, routes = api_requests(box.kinde_requests())
    verified = check.summary["expected_users"]
    requests = after - before
    figures = {
        "benchmark": "verify",
        "users": args.users,
        "migrated": run.summary["created"],
        "run_exit_code": run.exit_code,
        "verify_exit_code": check.exit_code,
        "verdict": check.summary["verdict"],
        "counts": check.summary["counts"],
        "kinde_users_read": check.summary["kinde_users"],
        "wall_s": round(check.wall, 1),
        "cpu_s": round(check.cpu, 1),
        "peak_rss_mb": round(check.max_rss_kb / 1024, 1),
        "kinde_requests": requests,
        "requests_per_user": round(requests / max(1, verified), 3),
        "users_per_s": round(verified / check.wall, 1),
    }
    print(f"run: exit {run.exit_code}, {run.summary['created']} created in {run.wall:.0f} s")
    print(f"verify: exit {check.exit_code}, verdict {check.summary['verdict']}, counts {check.summary['counts']}")
    print(f"wall / CPU           {check.wall:.1f} s / {check.cpu:.1f} s ({figures['users_per_s']:,} users/s)")
    print(f"peak RSS             {check.max_rss_kb / 1024:.1f} MB   (target <= 150 MB)")
    print(f"Kinde requests       {requests} ({figures['requests_per_user']} per user; {throttled} answered 429)")
    print(f"  cumulative by route (run + verify): {json.dumps(routes)}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
