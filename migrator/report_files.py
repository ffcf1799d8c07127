"""The files a run leaves behind: one folder per run, ``state_dir/runs/<run_id>/``, one writer for all.

Every report is streamed from the journal (a million rows never sit in memory), written to a
temporary name in the same folder with mode 0600 (they hold emails) and renamed, so a reader never
sees half a file. No report holds a password digest, a token or a secret: the journal holds none.

    summary.json         every count of the run and of its last verify
    failures.csv         users and memberships whose last attempt failed
    skipped.csv          users not migrated, with the reason
    password-resets.csv  users who cannot sign in with their Clerk password
    lazy.csv             the lazy cohort: users who move at their first sign-in (policy "lazy")
    id-map.csv           clerk_user_id -> kinde_user_id (for the application's own database)
    org-map.csv          clerk_org_id -> kinde_org_code
    verify.csv           one row per difference the last `migrator verify` found
    report.html          the sign-off report: summary.json and requests.jsonl as one page, rewritten
                         with summary.json (report_html.py)
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from migrator.errors import JournalError
from migrator.journal import Journal
from migrator.people_csv import write_csv
from migrator.report_html import REPORT_HTML, render, request_series
from migrator.request_log import REQUESTS_LOG

RUNS_DIR = "runs"
SUMMARY = "summary.json"
FAILURES = "failures.csv"
SKIPPED = "skipped.csv"
PASSWORD_RESETS = "password-resets.csv"
LAZY_COHORT = "lazy.csv"
MFA_REENROL = "mfa-reenrol.csv"
ID_MAP = "id-map.csv"
ORG_MAP = "org-map.csv"
VERIFY = "verify.csv"

ID_MAP_COLUMNS = ("clerk_user_id", "kinde_user_id", "email")
ORG_MAP_COLUMNS = ("clerk_org_id", "kinde_org_code")
FAILURE_COLUMNS = ("kind", "clerk_id", "clerk_org_id", "code", "message")
SKIPPED_COLUMNS = ("clerk_id", "email", "reason", "detail")


def run_dir(state_dir: Path, run_id: int) -> Path:
    """The run's report folder (created 0700: its files hold emails)."""
    path = state_dir / RUNS_DIR / str(run_id)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise JournalError(f"cannot create the report folder {path}: {exc}", writing=True) from None
    return path


def write_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """A CSV report for people, streamed, 0600, atomically in place, every cell spreadsheet-safe
    (``people_csv``: a value a spreadsheet could run as a formula gets a leading apostrophe)."""

    return _write_atomically(path, lambda handle: write_csv(handle, rows, header))


def write_json(path: Path, data: dict[str, Any]) -> Path:
    return _write_atomically(path, lambda handle: json.dump(data, handle, indent=2, sort_keys=True))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON report written earlier ({} when absent or unreadable: it is rebuilt, never trusted)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_atomically(path: Path, fill: Any) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            fill(handle)
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise JournalError(f"cannot write the report {path}: {exc}", writing=True) from None
    return path


# -- the run's reports ---------------------------------------------------------------------------


def write_id_map(journal: Journal, run_id: int, folder: Path) -> Path:
    return write_rows(folder / ID_MAP, ID_MAP_COLUMNS, journal.users.id_map(run_id))


def write_org_map(journal: Journal, run_id: int, folder: Path) -> Path:
    rows = ((o.clerk_org_id, o.kinde_code) for o in journal.organizations.all(run_id) if o.kinde_code)
    return write_rows(folder / ORG_MAP, ORG_MAP_COLUMNS, rows)


def write_failures(journal: Journal, run_id: int, folder: Path) -> Path:
    def rows() -> Iterable[Sequence[Any]]:
        for user in journal.users.failed(run_id):
            yield ("user", user.clerk_id, None, user.error_code, user.error_message)
        for member in journal.organizations.failed_memberships(run_id):
            yield ("membership", member.clerk_user_id, member.clerk_org_id, None, member.error)

    return write_rows(folder / FAILURES, FAILURE_COLUMNS, rows())


def write_skipped(journal: Journal, run_id: int, folder: Path) -> Path:
    rows = ((u.clerk_id, u.email_key, u.skip_reason, u.skip_detail) for u in journal.users.skipped(run_id))
    return write_rows(folder / SKIPPED, SKIPPED_COLUMNS, rows)


def write_summary(folder: Path, run_counts: dict[str, Any] | None = None, verify: dict[str, Any] | None = None) -> Path:
    """summary.json: the run's counts and its last verify's; either part is kept when not given."""
    data = read_json(folder / SUMMARY)
    if run_counts is not None:
        data["run"] = run_counts
    if verify is not None:
        data["verify"] = verify
    path = write_json(folder / SUMMARY, data)
    write_html_report(folder)
    return path


LINKED = {  # the reports report.html links to, where present
    "failures": FAILURES,
    "skipped": SKIPPED,
    "password_resets": PASSWORD_RESETS,
    "lazy": LAZY_COHORT,
    "mfa_reenrol": MFA_REENROL,
    "verify": VERIFY,
}


def write_html_report(folder: Path) -> Path:
    """report.html from the folder's summary.json and requests.jsonl (streamed), linking the CSVs present."""
    files = {name: file for name, file in LINKED.items() if (folder / file).exists()}
    try:
        with (folder / REQUESTS_LOG).open(encoding="utf-8") as log:
            series = request_series(log)
    except FileNotFoundError:
        series = []
    except OSError as exc:
        raise JournalError(f"cannot read the request log {folder / REQUESTS_LOG}: {exc}") from None
    page = render(read_json(folder / SUMMARY), series, files)
    return _write_atomically(folder / REPORT_HTML, lambda handle: handle.write(page))


def write_run_reports(journal: Journal, run_id: int, state_dir: Path, run_counts: dict[str, Any]) -> dict[str, str]:
    """Every report of a finished run; the names and paths the run's final output shows."""
    folder = run_dir(state_dir, run_id)
    run_counts = {k: v for k, v in run_counts.items() if k != "skipped_users"}  # listed in skipped.csv
    paths = {
        "failures": write_failures(journal, run_id, folder),
        "skipped": write_skipped(journal, run_id, folder),
        "id_map": write_id_map(journal, run_id, folder),
        "org_map": write_org_map(journal, run_id, folder),
    }
    paths = {"summary": write_summary(folder, run_counts), **paths}  # last: report.html links the CSVs
    for name, file_name in (("password_resets", PASSWORD_RESETS), ("lazy", LAZY_COHORT), ("mfa_reenrol", MFA_REENROL)):
        if (folder / file_name).exists():  # written before the confirmation, with the plan
            paths[name] = folder / file_name
    paths["report"] = folder / REPORT_HTML
    return {name: str(path) for name, path in paths.items()}
