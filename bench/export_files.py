"""Benchmark: `migrator export --format kinde-ndjson` of N generated users: wall time and peak RSS.

The export reads what a run reads (indexes the CSV export, fetches and maps every user, settles
conflicts) and then streams every staged user to the import files. The sandbox runs without rate
limits in its own process; peak RSS is ``/usr/bin/time -v``'s "Maximum resident set size". Target:
at most 150 MB, flat from 100,000 to 1,000,000 users.

    .venv/bin/python bench/export_files.py --users 100000
    .venv/bin/python bench/export_files.py --users 1000000
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
    with tempfile.TemporaryDirectory(prefix="bench-export-files-") as tmp:
        work = Path(tmp)
        export = work / "clerk-export.csv"
        out = work / "import-files"
        with sandbox(users=args.users, seed=args.seed, export_csv=export, startup_timeout=1800) as box:
            command = ["export", "--format", "kinde-ndjson", "--out", str(out), "--clerk-export", str(export)]
            run = run_migrator(
                [*command, "--json", "--state-dir", str(work / "state")],
                sandbox_env=box.env,
                settings={"KINDE_MAX_RPS": "100000", "KINDE_INITIAL_RPS": "100000", "CLERK_MAX_RPS": "100000"},
                workdir=work,
                timeout=7200,
                keep_log=args.log,
            )
        files_mb = sum(p.stat().st_size for p in out.iterdir()) / 2**20 if out.is_dir() else 0.0
        parts = len(list(out.glob("kinde-users-*.ndjson"))) if out.is_dir() else 0
    manifest = run.summary
    figures = {
        "benchmark": "export_files",
        "users": args.users,
        "in_files": sum(manifest.get("users_by_file_format", {}).values()),
        "api_path": sum(manifest.get("api_path", {}).values()),
        "exit_code": run.exit_code,
        "peak_rss_mb": round(run.max_rss_kb / 1024, 1),
        "wall_s": round(run.wall, 1),
        "cpu_s": round(run.cpu, 1),
        "files_mb": round(files_mb, 1),
        "ndjson_parts": parts,
    }
    print(f"exit code {run.exit_code}; in files {figures['in_files']}, for the API {figures['api_path']}")
    print(f"peak RSS             {run.max_rss_kb / 1024:.1f} MB   (target <= 150 MB, flat from 100k to 1M)")
    print(f"wall / CPU           {run.wall:.1f} s / {run.cpu:.1f} s ({args.users / run.wall:,.0f} users/s)")
    print(f"files                {files_mb:.0f} MB in {parts} NDJSON part(s)")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
