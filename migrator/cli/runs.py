"""``migrator runs`` and the offline answer of ``resume``/``retry-failed`` when a finished run has nothing
left to do (no credential check, no connection, the run's record untouched)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from migrator.cli.conventions import TerminalConsole
from migrator.cli.shared import ConfigOption, JsonOption, StateDirOption, require_journal, run_command
from migrator.config import Settings, load_settings
from migrator.journal import JOURNAL_FILE, Journal
from migrator.run_records import NothingToDo, nothing_to_do, run_rows


def finished_already(
    config: Path | None,
    state_dir: Path | None,
    run_id: int | None,
    *,
    failed_only: bool,
    as_json: bool,
) -> NothingToDo | None:
    """Say so and return the answer when the run is finished and this command would change nothing.

    Answered first, from the journal alone: before the settings or the export are compared with the
    run's (nothing will be done with them) and before any connection."""
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
        if as_json:
            out.print_json(json.dumps(answer.to_json()))
        else:
            out.print(answer.message, highlight=False, soft_wrap=True)
    return answer


RUNS_WIDE = 100  # columns from which `runs` shows full state labels and times to the second
SHORT_STATES = {"completed-with-failures": "partial"}  # the longest label, cut to fit 80 columns
COUNT_COLUMNS = (("done", "done"), ("failed", "failed"), ("skipped", "skip"), ("pending", "pend"))


def _when(stamp: object, since: object = None, *, seconds: bool = True) -> str:
    """``2026-01-31T12:34:56.789+00:00`` as ``01-31 12:34:56``; only the time when it is ``since``'s day."""
    if not stamp:
        return "not ended"
    text = str(stamp)[5 : 19 if seconds else 16].replace("T", " ")
    return text[6:] if since and str(since)[:10] == str(stamp)[:10] else text


def runs_table(rows: list[dict[str, object]], width: int) -> Table:
    """Every run in one row, fitted to ``width`` by priority: id, kind, state and counts always; below
    RUNS_WIDE columns the state is shortened (legend: ``runs_legend``), counts' headers and times too."""
    wide = width >= RUNS_WIDE
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False, header_style="bold")
    for header, justify in (("id", "right"), ("kind", "left"), ("state", "left")):
        table.add_column(header, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for key, short in COUNT_COLUMNS:
        table.add_column(key if wide else short, justify="right", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("ended", no_wrap=True)
    for row in rows:
        state = str(row["state"]) if wide else SHORT_STATES.get(str(row["state"]), str(row["state"]))
        table.add_row(
            str(row["id"]),
            str(row["kind"]),
            state,
            *(str(row[key]) for key, _ in COUNT_COLUMNS),
            _when(row["started_at"], seconds=wide),
            _when(row["ended_at"], row["started_at"], seconds=wide),
        )
    return table


def runs_legend(rows: list[dict[str, object]], width: int) -> list[str]:
    """What a shortened state means, when the table shows one."""
    shown = {str(row["state"]) for row in rows} & set(SHORT_STATES) if width < RUNS_WIDE else set()
    return [f"{SHORT_STATES[state]}: {state} (`migrator status ID --failed` for who)" for state in sorted(shown)]


def register(app: typer.Typer) -> None:
    app.command("runs")(runs)


def runs(as_json: JsonOption = False, config: ConfigOption = None, state_dir: StateDirOption = None) -> None:
    """Every run in the state directory: kind (run, dry-run, sync, canary, undo, export), state, user
    counts and times. Reads the journal only.

    Example: migrator runs --json
    """

    def body() -> None:
        settings: Settings = load_settings(config, state_dir=state_dir)
        require_journal(settings)
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
            out.print(runs_table(rows, out.width), highlight=False)
            for line in runs_legend(rows, out.width):
                out.print(line, highlight=False)

    run_command(body)
