"""The lists of ``migrator status``: failed users (``--failed`` for all, ``--failed --csv`` as a file on
stdout), skipped users with their reasons, and warnings by kind with counts."""

from __future__ import annotations

import sys
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from migrator.config import Settings
from migrator.errors import ConfigError
from migrator.journal import JOURNAL_FILE, Journal
from migrator.people_csv import write_csv
from migrator.report_files import RUNS_DIR, SKIPPED
from migrator.status_lists import (
    FAILED_USER_COLUMNS,
    SHOWN,
    failed_user_rows,
    skipped_user_rows,
    warning_kinds,
)

FailedOption = Annotated[
    bool, typer.Option("--failed", help="List every failed user and membership with the reason (not only the first).")
]
CsvOption = Annotated[bool, typer.Option("--csv", help="With --failed: print them as CSV on stdout (for a file).")]


def check_list_options(failed: bool, as_csv: bool, as_json: bool) -> None:
    if as_csv and not failed:
        raise ConfigError("--csv goes with --failed: `migrator status --failed --csv > failed.csv`")
    if as_csv and as_json:
        raise ConfigError("--csv and --json cannot be used together")


def json_lists(journal: Journal, run_id: int, all_failed: bool) -> dict[str, Any]:
    """Additions to ``status --json``: the failed users (all with --failed) and warnings by kind."""
    failed = failed_user_rows(journal, run_id)
    return {
        "failed_users": list(failed if all_failed else islice(failed, SHOWN)),
        "warning_kinds": [{"kind": kind, "count": count} for kind, count in warning_kinds(journal, run_id)],
    }


def write_failed_csv(journal: Journal, run_id: int) -> None:
    rows = ([row[column] for column in FAILED_USER_COLUMNS] for row in failed_user_rows(journal, run_id))
    write_csv(sys.stdout, rows, FAILED_USER_COLUMNS, lineterminator="\n")


UNDO_ITEM_COLUMNS = ["state", "kind", "key", "detail"]


def write_undo_items_csv(undo: dict[str, Any]) -> None:
    """An undo run has no users: ``--failed --csv`` lists the items it failed on or kept, with why."""
    rows = ([state, item["kind"], item["key"], item["detail"]] for state in ("failed", "kept") for item in undo[state])
    write_csv(sys.stdout, rows, UNDO_ITEM_COLUMNS, lineterminator="\n")


def print_lists(out: Console, journal: Journal, run_id: int, *, all_failed: bool) -> None:
    """Who failed and why, who was skipped and why, and the warnings by kind."""
    _print_failed(out, journal, run_id, None if all_failed else SHOWN)
    skipped = list(islice(skipped_user_rows(journal, run_id), SHOWN + 1))
    if skipped:
        out.print("Skipped users (not migrated):")
        for row in skipped[:SHOWN]:
            email = f" {row['email']}" if row["email"] else ""
            out.print(f"  {row['clerk_id']}{email}: {row['reason']}: {row['detail']}", highlight=False, soft_wrap=True)
        if len(skipped) > SHOWN:
            out.print(f"  ... more in {_report(journal, run_id, SKIPPED)}", highlight=False, soft_wrap=True)
    kinds = warning_kinds(journal, run_id)
    if kinds:
        out.print(f"Warnings by kind ({sum(count for _, count in kinds)}):")
        for kind, count in kinds:
            out.print(f"  {count:>6}  {kind}", highlight=False, soft_wrap=True)


def _print_failed(out: Console, journal: Journal, run_id: int, limit: int | None) -> None:
    rows = failed_user_rows(journal, run_id)
    shown = list(rows if limit is None else islice(rows, limit + 1))
    if not shown:
        if limit is None:  # asked for explicitly (--failed, -v): say there are none
            out.print("Failed: none")
        return
    out.print("[red]Failed[/red] (retry with `migrator retry-failed`):", highlight=False)
    for row in shown[:limit]:
        who = row["clerk_id"] + (f" {row['email']}" if row["email"] else "")
        where = f" in {row['clerk_org_id']}" if row["clerk_org_id"] else ""
        code = f" [{row['code']}]" if row["code"] else ""
        out.print(f"  {row['kind']} {who}{where}: {row['message']}{code}", highlight=False, soft_wrap=True)
    if limit is not None and len(shown) > limit:
        out.print(
            f"  ... and more: `migrator status {run_id} --failed` lists all, `--failed --csv` as a file",
            highlight=False,
            soft_wrap=True,
        )


def _report(journal: Journal, run_id: int, name: str) -> Path:
    return journal.path.parent / RUNS_DIR / str(run_id) / name


def print_failed_after_run(settings: Settings, run_id: int, out: Console) -> None:
    """``-v``: the failed users right under the run's summary (all of them)."""
    if not (settings.state_dir / JOURNAL_FILE).exists():
        return
    journal = Journal(settings.state_dir)
    try:
        _print_failed(out, journal, run_id, None)
    finally:
        journal.close()
