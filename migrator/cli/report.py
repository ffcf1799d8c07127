"""``migrator report``: the id map as SQL for the application's database, and the run's sign-off page."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from migrator.cli.shared import ConfigOption, StateDirOption, require_journal, run_command
from migrator.config import load_settings
from migrator.errors import ConfigError
from migrator.id_map_sql import Dialect, id_map_sql, parse_target
from migrator.journal import Journal
from migrator.report_files import SUMMARY, run_dir, write_html_report


def register(app: typer.Typer) -> None:
    report_app = typer.Typer(help="Reports for the application team's cutover.", no_args_is_help=True)
    report_app.command("id-map")(report_id_map)
    report_app.command("html")(report_html)
    app.add_typer(report_app, name="report")


def report_id_map(
    sql: Annotated[str, typer.Option("--sql", help="TABLE.COLUMN holding Clerk user ids in your database.")],
    dialect: Annotated[Dialect, typer.Option(help="SQL dialect of your database.")] = Dialect.postgres,
    run_id: Annotated[int | None, typer.Option("--run", help="Run whose id map to use (default: the latest).")] = None,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Print SQL that rewrites Clerk user ids to Kinde ids in your application's table (one UPDATE).

    Example: migrator report id-map --sql accounts.clerk_user_id --dialect postgres > cutover.sql
    """

    def body() -> None:
        settings = load_settings(config, state_dir=state_dir)
        require_journal(settings)
        parse_target(sql)
        journal = Journal(settings.state_dir)
        try:
            run = journal.runs.get(run_id)
            pairs = ((clerk_id, kinde_id) for clerk_id, kinde_id, _ in journal.users.id_map(run.id))
            for statement in id_map_sql(sql, dialect, pairs):
                sys.stdout.write(statement + "\n")
        finally:
            journal.close()

    run_command(body)


def report_html(
    run_id: Annotated[int | None, typer.Argument(help="Run whose report to write (default: the latest).")] = None,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Write the run's sign-off report, runs/N/report.html (one self-contained page), and print its path.
    Every run and verify writes it too; this rebuilds it from the folder's summary.json and requests.jsonl.

    Example: migrator report html 3
    """

    def body() -> None:
        settings = load_settings(config, state_dir=state_dir)
        require_journal(settings)
        journal = Journal(settings.state_dir)
        try:
            run = journal.runs.get(run_id)
        finally:
            journal.close()
        folder = run_dir(settings.state_dir, run.id)
        if not (folder / SUMMARY).exists():
            raise ConfigError(f"run {run.id} has no {SUMMARY} yet: it has not finished a pass (migrator resume {run.id})")
        sys.stdout.write(f"{write_html_report(folder)}\n")

    run_command(body)
