"""``migrator runs`` and the offline answer of ``resume``/``retry-failed`` when a finished run has nothing
left to do (no credential check, no connection, the run's record untouched)."""

from __future__ import annotations

import json
from pathlib import Path

from migrator.cli import ConfigOption, JsonOption, StateDirOption, _require_journal, _run_command, app
from migrator.cli_conventions import TerminalConsole
from migrator.config import Settings, load_settings
from migrator.journal import JOURNAL_FILE, Journal
from migrator.run_records import NothingToDo, nothing_to_do, run_rows
from migrator.stages.unchanged import check_unchanged


def finished_already(
    config: Path | None,
    state_dir: Path | None,
    run_id: int | None,
    *,
    failed_only: bool,
    allow_changed: bool,
    as_json: bool,
) -> NothingToDo | None:
    """Say so and return the answer when the run is finished and this command would change nothing.

    A changed export or changed settings are refused (or let through with --allow-changed) exactly as
    a resume that connects would: the answer must not depend on whether there is work left."""
    settings = load_settings(config, state_dir=state_dir)
    if not (settings.state_dir / JOURNAL_FILE).exists():
        return None  # the ordinary path explains
    journal = Journal(settings.state_dir)
    try:
        answer = nothing_to_do(journal, run_id, failed_only=failed_only)
    finally:
        journal.close()
    if answer is not None:
        out = TerminalConsole(soft_wrap=True)
        _, changes = check_unchanged(settings, answer.run, allow_changed=allow_changed)
        for change in changes:
            TerminalConsole(stderr=as_json).print(
                f"warning: continuing although {change}", highlight=False, soft_wrap=True
            )
        if as_json:
            out.print_json(json.dumps(answer.to_json()))
        else:
            out.print(answer.message, highlight=False, soft_wrap=True)
    return answer


def _when(stamp: object, since: object = None) -> str:
    """``2026-01-31T12:34:56.789+00:00`` as ``01-31 12:34:56``; only the time when it is ``since``'s day."""
    if not stamp:
        return "not ended"
    text = str(stamp)[5:19].replace("T", " ")
    return text[6:] if since and str(since)[:10] == str(stamp)[:10] else text


def run_line(row: dict[str, object]) -> str:
    """One run on one line: the numbers first, so nothing that matters is cut at 80 columns."""
    counts = ", ".join(f"{row[k]} {k}" for k in ("done", "failed", "skipped", "pending") if row[k] or k == "done")
    times = f"{_when(row['started_at'])} -> {_when(row['ended_at'], row['started_at'])}"
    return f"{row['id']:>3}  {row['kind']:<8} {row['state']:<10} {counts}  {times}"


@app.command("runs")
def runs(as_json: JsonOption = False, config: ConfigOption = None, state_dir: StateDirOption = None) -> None:
    """Every run in the state directory: kind (run, dry-run, sync, canary, undo, export), state, user
    counts and times. Reads the journal only.

    Example: migrator runs --json
    """

    def body() -> None:
        settings: Settings = load_settings(config, state_dir=state_dir)
        _require_journal(settings)
        journal = Journal(settings.state_dir)
        try:
            rows = run_rows(journal)
        finally:
            journal.close()
        out = TerminalConsole()
        if as_json:
            out.print_json(json.dumps(rows))
        else:
            out.print(f"Runs in {settings.state_dir} (times UTC):", highlight=False)
            for row in rows:
                out.print(run_line(row), highlight=False, soft_wrap=True)

    _run_command(body)
