"""``migrator export``: Kinde import files from the same fetch, mapping and rules as ``migrator run``.

Registered on the main app by ``migrator.cli``; kept apart so the CLI module stays thin.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from migrator.cli.shared import (
    AllowChangedOption,
    ConfigOption,
    JsonOption,
    StateDirOption,
    connected_settings,
    hold_and_run,
    require_export,
    run_command,
)
from migrator.config import Settings
from migrator.errors import ConfigError
from migrator.kinde.import_files import FileFormat
from migrator.runs.actions import ExportAction
from migrator.runs.api import run_export
from migrator.stages.export_files import API_USERS, ExportOutcome, FileRequest

MEGABYTE = 1000 * 1000


class ImportFormat(StrEnum):
    kinde_ndjson = "kinde-ndjson"
    kinde_csv = "kinde-csv"


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    out: Annotated[Path, typer.Option("--out", help="Directory for the import files (created 0700).")],
    file_format: Annotated[
        ImportFormat, typer.Option("--format", help="Kinde's Custom NDJSON (carries most) or Custom CSV.")
    ] = ImportFormat.kinde_ndjson,
    clerk_export: Annotated[
        Path | None,
        typer.Option("--clerk-export", help="Clerk's export, the dashboard CSV or the JSON export (the only source of password digests)."),
    ] = None,
    without_export: Annotated[
        bool, typer.Option("--without-export", help="Write the files without passwords (no Clerk export).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print users per file and format, and who needs the API; write nothing.")
    ] = False,
    create_roles: Annotated[
        bool, typer.Option("--create-roles", help="Create the missing roles in Kinde through the API first.")
    ] = False,
    max_file_mb: Annotated[
        float, typer.Option("--max-file-mb", help="Split files to stay under this size (Kinde takes 49 MB).", min=0.001)
    ] = 49.0,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the latest export run (or --run) where it stopped.")
    ] = False,
    run_id: Annotated[int | None, typer.Option("--run", help="The export run to --resume.")] = None,
    allow_changed: AllowChangedOption = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Write Kinde's bulk-import files: users, organizations, and the list of users only the API can migrate.

    Examples:

        migrator export --format kinde-ndjson --out import/ --clerk-export users.csv --dry-run

        migrator export --format kinde-csv --out import/ --clerk-export users.csv --create-roles

    Then import organizations.csv (Organizations > Import), the user files (Users > Import users),
    and migrate the users listed in api-users.csv with `migrator run --only-file import/api-users.csv`.
    """

    def body() -> ExportOutcome:
        settings = connected_settings(config, clerk_export=clerk_export, state_dir=state_dir)
        if not resume:
            require_export(settings, dry_run or without_export)
        if run_id is not None and not resume:
            raise ConfigError("--run is the export run to continue: give it with --resume")
        request = FileRequest(out, FileFormat(file_format.value), int(max_file_mb * MEGABYTE), dry_run)
        action = ExportAction(request, run_id, resume, create_roles, allow_changed)
        return _execute_export(settings, action, as_json)

    outcome = run_command(body)
    raise typer.Exit(outcome.exit_code)


def _execute_export(settings: Settings, action: ExportAction, as_json: bool) -> ExportOutcome:
    outcome, out = hold_and_run(
        settings, as_json, lambda journal, renderer: run_export(settings, journal, action, on_event=renderer)
    )
    _show(outcome, out, as_json)
    return outcome


def _show(outcome: ExportOutcome, out: Console, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(outcome.to_json()))
        return
    title = f"Export {outcome.run_id}" + (
        ": the plan (nothing was written)" if outcome.dry_run else f" -> {outcome.out}"
    )
    table = Table(title=title)
    for column in ("file", "format", "users", "bytes"):
        table.add_column(column)
    for item in outcome.files:
        table.add_row(item["name"], item["format"], str(item["users"]), str(item["bytes"]))
    out.print(table)
    for target, methods in outcome.hashing_methods.items():
        listed = ", ".join(f"{m} {n}" for m, n in sorted(methods.items()))
        out.print(f"{target}: {outcome.users_by_file_format.get(target, 0)} user(s); passwords: {listed}")
    for reason, count in sorted(outcome.api_path.items()):
        out.print(f"[yellow]for the API path ({API_USERS})[/yellow]: {count} user(s): {reason}", highlight=False)
    for reason, count in sorted(outcome.skipped.items()):
        out.print(f"skipped (as a run would): {count} user(s): {reason}", highlight=False)
    for what, count in sorted(outcome.not_carried.items()):
        out.print(f"not carried: {what}: {count} user(s)", highlight=False)
    out.print(f"organizations: {outcome.organizations}; roles to create first: {', '.join(outcome.roles_to_create)}")
    for kind, count in sorted(outcome.social_identities.items()):
        out.print(f"social identities in the files: {kind} {count}", highlight=False)
    for note in outcome.unaccounted:
        out.print(f"[red]not accounted for[/red]: {note}", highlight=False)
    for name, path in outcome.reports.items():
        out.print(f"Report ({name.replace('_', ' ')}): {path}", highlight=False)
