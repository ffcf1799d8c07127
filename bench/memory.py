"""Benchmark 3, memory: the migrator's peak RSS over a dry run of N generated users.

A dry run reads everything a real run reads (indexes the CSV export, fetches and maps every user,
settles conflicts, looks every user up in Kinde in batches) and writes nothing. The sandbox runs
without rate limits in its own process; the migrator's peak RSS is ``/usr/bin/time -v``'s
"Maximum resident set size". Run it for 100,000 and 1,000,000 users: the target is at most 150 MB
and no growth between the two beyond noise.

    .venv/bin/python bench/memory.py --users 100000
    .venv/bin/python bench/memory.py --users 1000000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_run_options, machine, run_migrator, sandbox


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, required=True)
    add_run_options(parser)
    args = parser.parse_args()

    print(f"# machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        export = work / "clerk-export.csv"
        with sandbox(users=args.users, seed=args.seed, export_csv=export, startup_timeout=1800) as box:
            settings = {"KINDE_MAX_RPS": "100000", "KINDE_INITIAL_RPS": "100000", "CLERK_MAX_RPS": "100000"}
            run = run_migrator(
                ["run", "--clerk-export", str(export), "--dry-run", "--json", "--state-dir", str(work / "state")],
                sandbox_env=box.env,
                settings=settings,
                workdir=work,
                timeout=7200,
                keep_log=args.log,
            )
        journal_mb = sum(p.stat().st_size for p in (work / "state").rglob("*") if p.is_file()) / 2**20
        export_mb = export.stat().st_size / 2**20
    plan = run.summary["plan"]
    figures = {
        "benchmark": "memory",
        "users": args.users,
        "staged": plan["staged"],
        "exit_code": run.exit_code,
        "peak_rss_mb": round(run.max_rss_kb / 1024, 1),
        "wall_s": round(run.wall, 1),
        "cpu_s": round(run.cpu, 1),
        "journal_mb": round(journal_mb, 1),
        "export_mb": round(export_mb, 1),
    }
    print(f"exit code {run.exit_code}; staged {plan['staged']} of {args.users}; to create {plan['to_create']}")
    print(f"peak RSS             {run.max_rss_kb / 1024:.1f} MB   (target <= 150 MB, flat from 100k to 1M)")
    print(f"wall / CPU           {run.wall:.1f} s / {run.cpu:.1f} s ({args.users / run.wall:,.0f} users/s)")
    print(f"on disk              journal {journal_mb:.0f} MB, CSV export {export_mb:.0f} MB")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
