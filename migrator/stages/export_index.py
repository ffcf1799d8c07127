"""Stage: index Clerk's export (the dashboard CSV, or the JSON export: told from the content).

Reads the export once and writes ``(user id, byte offset, row number or user ordinal, hasher)`` to the journal.
Digests are never stored: they are read again from the file at the offset when a password is set.
Emits: the ``export`` phase.
"""

from __future__ import annotations

from pathlib import Path

from migrator.clerk.export import ExportFile
from migrator.clerk.export_json import JsonExportFile, open_clerk_export
from migrator.errors import InputError
from migrator.events import PhaseAdvanced, PhaseFinished, PhaseStarted
from migrator.journal import DuplicateExportRow
from migrator.stages.context import RunContext, Ticker

BATCH = 5000


def open_export(path: Path) -> ExportFile | JsonExportFile:
    if not path.is_file():
        raise InputError(f"{path}: the Clerk export does not exist (CLERK_EXPORT / --clerk-export)")
    return open_clerk_export(path)


def index_export(ctx: RunContext) -> None:
    export, journal, run_id = ctx.export, ctx.journal, ctx.run.id
    assert export is not None
    ctx.emit(PhaseStarted("export"))
    batch: list[tuple[str, int, int, str | None, bool]] = []
    done = 0
    ticker = Ticker()
    try:
        with journal.transaction():
            # Duplicate ids are caught by the journal's unique key: no set of a million ids here.
            for entry in export.scan(check_duplicates=False):
                batch.append((entry.user_id, entry.offset, entry.row_number, entry.hasher, entry.has_digest))
                if len(batch) >= BATCH:
                    journal.exports.add_entries(run_id, batch)
                    done += len(batch)
                    batch.clear()
                    if ticker.due():
                        ctx.emit(PhaseAdvanced("export", done))
            journal.exports.add_entries(run_id, batch)
            done += len(batch)
    except DuplicateExportRow as dup:
        record = "user" if isinstance(export, JsonExportFile) else "row"
        raise InputError(
            f"{export.path}: {record} {dup.row_number}: user id {dup.user_id!r} already appears at {record}"
            f" {dup.first_row}; the export is corrupt (export it again)"
        ) from None
    ctx.emit(PhaseAdvanced("export", done, done))
    ctx.emit(PhaseFinished("export"))
