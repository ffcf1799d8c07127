"""Benchmark: a catch-up (``migrator sync``) of 100 changes over N migrated users (default 100,000).

A bulk run migrates every user first (its own figures are not the point here). Then 100 changes are
made in the sandbox's Clerk while it serves (``POST /_sandbox/users``): 25 sign-ups, 40 renames, 10
bans, 15 password changes, 10 deletions. The catch-up is timed as a process of its own (wall time
from start to exit, start-up included) and its Clerk and Kinde requests are counted by the
emulators. Without a fresh export, changed passwords get the reset policy.

    .venv/bin/python bench/catchup.py --users 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_run_options, api_requests, machine, run_migrator, sandbox

FAST_KINDE = {"KINDE_MAX_RPS": "100000", "KINDE_INITIAL_RPS": "100000"}


def clerk_total(state: dict[str, Any]) -> int:
    return sum(state["requests"].values())


def make_changes(clerk_root: str, users: int) -> dict[str, Any]:
    """100 changes spread over the dataset: ids are read back from the sandbox's Clerk."""
    step = max(1, users // 100)
    picked = [i * step + 3 for i in range(75)]
    ids = []
    with httpx.Client(timeout=60) as http:
        for index in picked:  # the ids of users at these positions, oldest first
            page = http.get(
                f"{clerk_root}/v1/users", params={"limit": 1, "offset": index, "order_by": "+created_at"},
                headers={"Authorization": f"Bearer {SECRET['key']}"},
            ).json()  # fmt: skip
            ids.append(page[0]["id"])
        body = {
            "add": 25,
            "change": {cid: {"first_name": f"Renamed{k}"} for k, cid in enumerate(ids[:40])}
            | {cid: {"banned": True} for cid in ids[40:50]},
            "password": [],
            "delete": ids[65:75],
        }
        answer = http.post(f"{clerk_root}/_sandbox/users", json=body).json()
        for cid in ids[50:65]:  # only users with a password can change it
            http.post(f"{clerk_root}/_sandbox/users", json={"password": [cid]})
    return answer


SECRET: dict[str, str] = {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    add_run_options(parser)
    args = parser.parse_args()
    print(f"# machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-catchup-") as tmp:
        work = Path(tmp)
        export = work / "clerk-export.csv"
        with sandbox(users=args.users, seed=args.seed, export_csv=export) as box:
            SECRET["key"] = box.env["CLERK_SECRET_KEY"]
            state = ["--state-dir", str(work / "state")]
            bulk = run_migrator(["run", "--clerk-export", str(export), "--yes", "--json", *state],
                                sandbox_env=box.env, settings=FAST_KINDE, workdir=work)  # fmt: skip
            print(f"bulk run: exit {bulk.exit_code}, created {bulk.summary['created']} in {bulk.wall:.1f} s")
            make_changes(box.clerk_root, args.users)
            clerk_before, kinde_before = clerk_total(box.clerk_requests()), api_requests(box.kinde_requests())[0]
            sync = run_migrator(["sync", "--yes", "--json", *state], sandbox_env=box.env, settings=FAST_KINDE,
                                workdir=work / "sync", keep_log=args.log)  # fmt: skip
            clerk = clerk_total(box.clerk_requests()) - clerk_before
            kinde = api_requests(box.kinde_requests())[0] - kinde_before
    figures = {
        "benchmark": "catch-up",
        "users": args.users,
        "changes": 100,
        "exit_code": sync.exit_code,
        "wall_s": round(sync.wall, 2),
        "clerk_requests": clerk,
        "kinde_requests": kinde,
        "created": sync.summary["created"],
        "failed": sync.summary["failed"],
        "peak_rss_mb": round(sync.max_rss_kb / 1024, 1),
    }
    print(f"catch-up: exit {sync.exit_code}; wall {sync.wall:.2f} s; Clerk requests {clerk}; Kinde requests {kinde}")
    print(f"          created {sync.summary['created']}; failed {sync.summary['failed']}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
