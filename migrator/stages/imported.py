"""Stage (a catch-up or undo of an export run): learn which Kinde user each exported Clerk user became.

An export run's users were created by the dashboard import of its files, not by our requests, so the
journal holds no Kinde id for them, and a catch-up (``known_user``) or an undo (``created_users``) needs
one. Reads: every Kinde user, 500 a page (as verify does). Writes: on the export run's row of each user
whose ``provided_id`` is a Clerk id the run put in an import file, the Kinde id, ``created`` (by the run's
files), ``state=done``. The provenance rule is reconcile's: a Kinde user is ours only if its
``provided_id`` names a user we exported. Users listed in api-users.csv are not adopted here: the
``run --only-file`` that created them knows them. Emits: the ``Read Kinde users`` phase.

An exported user still not in Kinde is asked of Clerk: deleted there since the export, it is accounted for
(nothing to delete, nothing to create; the catch-up records it, ``DeletionState.NOT_IN_KINDE``); still in
Clerk, it refuses the catch-up.

Idempotent: a user already recorded is kept, so a killed read is simply read again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrator.errors import JournalError
from migrator.events import Notice, PhaseAdvanced, PhaseFinished, PhaseStarted
from migrator.report_files import run_dir, write_rows
from migrator.stages.context import RunContext, Ticker

PHASE = "Read Kinde users"
NOT_IN_KINDE = "not-in-kinde.csv"
CLERK_BATCH = 100  # user_id values per Clerk request (the spec's limit)
REASONS = {
    None: "in an import file, not in Kinde: upload the file (or, if Kinde's import rejected it, migrate it by the API)",
    "api": "listed in api-users.csv: `migrator run --only-file` migrates it",
}


@dataclass
class Absent:
    """The export run's users Kinde does not hold for this journal, by where they were meant to come from."""

    counts: Counter[str] = field(default_factory=Counter)  # "files" | "api" -> users
    report: Path | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def adopt_imported(ctx: RunContext, export_run_id: int) -> int:
    """Record the Kinde id of each user of the export run its import created; returns how many were recorded.
    Kinde is not read when every user of the run's files is recorded already."""
    journal = ctx.journal
    if not journal.exports.imported_to_adopt(export_run_id):
        return 0
    ctx.emit(Notice(f"run {export_run_id} is an export: reading Kinde's users to find those its import created"))
    ctx.emit(PhaseStarted(PHASE, None))
    read, recorded, ticker = 0, 0, Ticker()
    async for page in ctx.kinde.user_pages():
        found = [(user["provided_id"], user["id"]) for user in page if _clerk_id(user.get("provided_id"))]
        recorded += journal.exports.record_imported(export_run_id, found)
        read += len(page)
        if ticker.due():
            ctx.emit(PhaseAdvanced(PHASE, read, None))
            ctx.emit_pacing()
    ctx.emit(PhaseAdvanced(PHASE, read, read))
    ctx.emit(PhaseFinished(PHASE))
    return recorded


async def gone_from_clerk(ctx: RunContext, export_run_id: int) -> list[str]:
    """The export run's users not in Kinde that Clerk no longer has (asked 100 ids a request): deleted since the
    export, before their import reached Kinde. Accounted for: nothing to delete, nothing to create."""
    gone: list[str] = []
    batch: list[str] = []
    for row in ctx.journal.exports.not_in_kinde(export_run_id):
        batch.append(row.clerk_id)
        if len(batch) == CLERK_BATCH:
            gone.extend(await _missing_in_clerk(ctx, batch))
            batch = []
    gone.extend(await _missing_in_clerk(ctx, batch))
    return gone


async def _missing_in_clerk(ctx: RunContext, clerk_ids: list[str]) -> list[str]:
    if not clerk_ids:
        return []
    present = {user.get("id") for user in await ctx.clerk.users_by_id(clerk_ids)}
    return [clerk_id for clerk_id in clerk_ids if clerk_id not in present]


def absent_from_kinde(ctx: RunContext, export_run_id: int, gone: Collection[str] = ()) -> Absent:
    """Count the export run's users not in Kinde (less ``gone``: deleted from Clerk), and list them
    (``clerk_id,reason``) in the export run's folder, a file ``migrator run --only-file`` takes."""
    absent = Absent()
    path = run_dir(ctx.settings.state_dir, export_run_id) / NOT_IN_KINDE
    gone = set(gone)

    def rows() -> Any:
        for row in ctx.journal.exports.not_in_kinde(export_run_id):
            if row.clerk_id in gone:
                continue
            absent.counts["api" if row.export_target == "api" else "files"] += 1
            yield row.clerk_id, REASONS.get(row.export_target, REASONS[None])

    write_rows(path, ("clerk_id", "reason"), rows())
    if absent.total:
        absent.report = path
    else:
        path.unlink(missing_ok=True)
    return absent


def refuse_incomplete_import(export_run_id: int, absent: Absent) -> JournalError:
    """Why a catch-up does not follow an export whose users are not all in Kinde, and what to do."""
    parts = []
    if absent.counts["files"]:
        parts.append(
            f"{absent.counts['files']} from its import files (upload them: Kinde > Users > Import users;"
            f" `migrator verify {export_run_id}` checks the tenant)"
        )
    if absent.counts["api"]:
        parts.append(
            f"{absent.counts['api']} listed in api-users.csv (`migrator run --clerk-export CSV --only-file"
            " api-users.csv` migrates them)"
        )
    error = JournalError(
        f"run {export_run_id} is an export and {absent.total} of its users are not in Kinde yet: {'; '.join(parts)}."
        " A catch-up would neither update nor delete them, and creating them now could duplicate a file still"
        " being imported"
    )
    error.hint = (
        f"the list is {absent.report} (`migrator run --only-file` takes it, for records Kinde's import rejected);"
        f" then `migrator sync --since {export_run_id}` again"
    )
    return error


def _clerk_id(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("user_")
