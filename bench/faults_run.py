"""Benchmark: a full ``migrator run`` under the sandbox's ``--faults light`` against ``--faults none``.

The same N users (default 1,500) and seed, both emulators in their own process with the same fault
profile (``light``: 1 % 5xx, 1 % 429 at random, 0-20 ms latency; ``none``), Clerk limited to 1,000
requests per 10 s as ``migrator sandbox serve`` does, Kinde unlimited, the migrator with its default
settings. Figure: wall time of the light run / wall time of the clean run (target <= 1.5).

    .venv/bin/python bench/faults_run.py --users 1500
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_run_options, api_requests, machine, migrated_users, run_migrator, sandbox


def one_run(users: int, seed: int, faults: str, log: Path | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix=f"bench-faults-{faults}-") as tmp:
        work = Path(tmp)
        export = work / "clerk-export.csv"
        with sandbox(users=users, seed=seed, export_csv=export, clerk_per_10s=1000, extra=["--faults", faults]) as box:
            run = run_migrator(
                ["run", "--clerk-export", str(export), "--yes", "--json", "--state-dir", str(work / "state")],
                sandbox_env=box.env,
                settings={},
                workdir=work,
                keep_log=log.with_suffix(f".{faults}.log") if log else None,
            )
            total, throttled, _routes = api_requests(box.kinde_requests())
    return {
        "faults": faults,
        "exit_code": run.exit_code,
        "migrated": migrated_users(run.summary),
        "failed": run.summary["failed"],
        "wall_s": round(run.wall, 2),
        "cpu_s": round(run.cpu, 2),
        "kinde_requests": total,
        "kinde_429_from_limit": throttled,
        "client_429": run.summary["throttled"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1500)
    add_run_options(parser)
    args = parser.parse_args()
    print(f"# machine: {machine()}")
    clean = one_run(args.users, args.seed, "none", args.log)
    print(f"faults none          {clean}")
    light = one_run(args.users, args.seed, "light", args.log)
    print(f"faults light         {light}")
    ratio = float(light["wall_s"]) / float(clean["wall_s"])  # type: ignore[arg-type]
    print(f"light / none         {ratio:.2f}x wall time   (target <= 1.5)")
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "faults-run",
                    "users": args.users,
                    "none": clean,
                    "light": light,
                    "ratio": round(ratio, 3),
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
