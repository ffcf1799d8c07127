"""Benchmark 9: indexing Clerk's export, the dashboard CSV against the JSON export (list and one per line).

Each format is written for the same N generated users, then indexed by a fresh process (the run's
``export`` phase: ``scan`` with the journal's duplicate check, so no set of ids) and read again by
offset (every 100th user: what the load does per password). Figures: wall seconds of the scan,
users/s, the re-read's ms per user, and the process's peak RSS (``ru_maxrss``): flat in N.

    .venv/bin/python bench/export_index.py --users 100000
    .venv/bin/python bench/export_index.py --users 300000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FORMATS = ("csv", "list", "ndjson")


def child(path: Path) -> dict[str, float]:
    from migrator.clerk.export_json import open_clerk_export

    started = time.perf_counter()
    with open_clerk_export(path) as export:
        users, sample = 0, []  # every 100th user kept for the re-read: memory stays that of the scan
        for entry in export.scan(check_duplicates=False):
            users += 1
            if users % 100 == 1:
                sample.append((entry.offset, entry.row_number, entry.user_id))
        scanned = time.perf_counter() - started
        started = time.perf_counter()
        for offset, row_number, user_id in sample:
            export.row_at(offset, row_number, expected_id=user_id)
        reread = time.perf_counter() - started
    return {
        "users": users,
        "scan_s": round(scanned, 2),
        "users_per_s": round(users / scanned),
        "reread_ms_per_user": round(reread * 1000 / len(sample), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    from migrator.sandbox.generator import Dataset

    dataset = Dataset(args.users, args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        for export_format in FORMATS:
            path = Path(tmp) / f"export.{export_format}"
            if export_format == "csv":
                dataset.write_export_csv(path)
            else:
                dataset.write_export_json(path, export_format)  # type: ignore[arg-type]
            command = [sys.executable, __file__, "--child", str(path)]
            print("#", " ".join(command[1:]), flush=True)
            figures = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
            size_mb = round(path.stat().st_size / 1e6, 1)
            print(json.dumps({"format": export_format, "file_mb": size_mb, **figures}), flush=True)
            path.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
