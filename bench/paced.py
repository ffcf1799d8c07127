"""Benchmark 1, paced: how close to a Kinde rate limit the migrator runs without being throttled.

The sandbox Kinde is limited to R requests/s (token bucket, capacity R, 429 + ``RateLimit-Reset``);
every password user has a bcrypt digest. The migrator's ceiling (``KINDE_MAX_RPS``) is set well above
R, so its limiter has to find R by itself. Figures, all from the sandbox's own request log:

* rate ratio: Kinde API requests / (last answer - first arrival) / R      (target >= 0.95)
* 429 share: requests answered 429 / Kinde API requests                     (target <= 1 %)
* requests per migrated user: Kinde API requests / users created            (target <= 2.05)

    .venv/bin/python bench/paced.py --rps 20 --users 2000
    .venv/bin/python bench/paced.py --rps 100 --users 10000
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
    parser.add_argument("--rps", type=float, required=True, help="R: the sandbox Kinde's limit, requests/s")
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--max-rps-factor", type=float, default=5.0, help="KINDE_MAX_RPS = factor * R (default 5)")
    parser.add_argument("--initial-rps", type=float, default=None, help="KINDE_INITIAL_RPS (default: the setting's)")
    parser.add_argument("--concurrency", type=int, default=None, help="CONCURRENCY (default: the setting's)")
    parser.add_argument("--trace", action="store_true", help="print Kinde's answers per 5 s (2xx / 429)")
    add_run_options(parser)
    args = parser.parse_args()
    rps = args.rps

    print(f"# machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-paced-") as tmp:
        work = Path(tmp)
        export = work / "clerk-export.csv"
        with sandbox(
            users=args.users, seed=args.seed, export_csv=export, kinde_rps=rps, bcrypt_only=True, trace=args.trace
        ) as box:
            settings = {"KINDE_MAX_RPS": f"{rps * args.max_rps_factor:g}"}
            if args.initial_rps is not None:
                settings["KINDE_INITIAL_RPS"] = f"{args.initial_rps:g}"
            if args.concurrency is not None:
                settings["CONCURRENCY"] = str(args.concurrency)
            run = run_migrator(
                ["run", "--clerk-export", str(export), "--yes", "--json", "--state-dir", str(work / "state")],
                sandbox_env=box.env,
                settings=settings,
                workdir=work,
                keep_log=args.log,
            )
            log = box.kinde_requests()
            trace = box.trace() if args.trace else None
    total, throttled, routes = api_requests(log)
    span = log["last_request_at"] - log["first_request_at"]
    users = migrated_users(run.summary)
    received = total / span
    figures = {
        "benchmark": "paced",
        "R": rps,
        "users": args.users,
        "migrated": users,
        "exit_code": run.exit_code,
        "kinde_requests": total,
        "kinde_429": throttled,
        "kinde_span_s": round(span, 2),
        "received_rps": round(received, 2),
        "ratio_of_R": round(received / rps, 4),
        "accepted_ratio_of_R": round((total - throttled) / span / rps, 4),
        "share_429": round(throttled / total, 4),
        "requests_per_user": round(total / users, 4),
        "migrator_wall_s": round(run.wall, 2),
        "migrator_cpu_s": round(run.cpu, 2),
        "routes": routes,
    }
    print(f"exit code {run.exit_code}; migrated {users} of {args.users}; failed {run.summary['failed']}")
    print(f"Kinde API requests   {total} over {span:.1f} s ({', '.join(f'{k} {v}' for k, v in routes.items())})")
    print(f"received rate        {received:.2f} req/s = {received / rps:.3f} of R={rps:g}   (target >= 0.95)")
    print(f"accepted (not 429)   {(total - throttled) / span:.2f} req/s = {(total - throttled) / span / rps:.3f} of R")
    print(f"answered 429         {throttled} = {100 * throttled / total:.2f} %   (target <= 1 %)")
    print(f"requests per user    {total / users:.3f}   (target <= 2.05)")
    print(f"migrator             wall {run.wall:.1f} s, CPU {run.cpu:.1f} s, peak RSS {run.max_rss_kb / 1024:.0f} MB")
    if trace:
        # Where the whole-run figure loses: whole seconds in which Kinde answered nothing at all
        # (the fetch from Clerk runs before the first lookup; only the preflight token precedes it).
        idle = sum(1 for second in range(max(trace) + 1) if not trace.get(second))
        busy = span - idle
        figures["idle_seconds"] = idle
        figures["ratio_of_R_while_busy"] = round(total / busy / rps, 4)
        print(f"Kinde idle           {idle} whole seconds; over the other {busy:.1f} s: {total / busy / rps:.3f} of R")
        print("seconds   answered/s   429")
        last = max(trace)
        for start in range(0, last + 1, 5):
            window = [trace.get(s, {}) for s in range(start, min(start + 5, last + 1))]
            answered = sum(sum(c.values()) for c in window)
            limited = sum(c.get(429, 0) for c in window)
            print(f"{start:4d}-{start + len(window):<4d} {answered / len(window):9.1f} {limited:6d}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
