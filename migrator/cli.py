"""The ``migrator`` command: a thin layer that turns flags into settings and events into output.

Exit codes: 0 every eligible user is in Kinde; 1 finished with failures; 2 bad configuration or
input (nothing written); 3 stopped by the source or the target (credentials, scope, garbage
answers); 130 interrupted (``migrator resume`` continues).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from migrator import cli_conventions as conventions
from migrator.config import Settings, load_settings
from migrator.cutover import cutover_counts, run_chain, undo_status
from migrator.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, ConfigError, MigratorError
from migrator.id_map_sql import Dialect, id_map_sql, parse_target
from migrator.journal import JOURNAL_FILE, STEP_COLUMNS, Journal, RunMode
from migrator.pipeline import Resume, Start, run_migration
from migrator.render import Renderer, plan_table, summary_table
from migrator.render_verify import show_verification
from migrator.report_files import SUMMARY, run_dir, write_html_report
from migrator.reports import Plan, Summary, status_report
from migrator.run_records import NothingToDo
from migrator.stages.verify import Verification
from migrator.status_lists import failure_line
from migrator.verification import run_verification

app = typer.Typer(
    name="migrator",
    help=conventions.TOP_LEVEL_HELP,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=conventions.CONTEXT_SETTINGS,
    callback=conventions.main_options,
)
sandbox_app = typer.Typer(help="Local emulators of the Clerk and Kinde APIs, for rehearsals.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")
report_app = typer.Typer(help="Reports for the application team's cutover.", no_args_is_help=True)
app.add_typer(report_app, name="report")

T = TypeVar("T")


class PasswordPolicy(StrEnum):
    reset = "reset"
    no_password = "no-password"
    skip = "skip"


ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (default: config/migrator.toml if present).")
]
StateDirOption = Annotated[
    Path | None, typer.Option("--state-dir", help="Where the run journal and reports live (default ./.migrator).")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON on stdout (progress goes to stderr).")
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation before writing to Kinde.")]
PasswordPolicyOption = Annotated[PasswordPolicy | None, typer.Option(help="For passwords Kinde cannot verify.")]
ExportTimeOption = Annotated[
    str | None,
    typer.Option(
        "--export-time",
        help="When Clerk made the export, ISO 8601 with timezone (default: the file's modification time);"
        " passwords changed since then are not imported.",
    ),
]
NoCreatePropertiesOption = Annotated[
    bool,
    typer.Option(
        "--no-create-properties",
        help="Refuse to run when Kinde lacks a property definition [properties] maps to (listed in the plan).",
    ),
]
AllowChangedOption = Annotated[
    bool, typer.Option("--allow-changed", help="Continue although the export or the mapping settings changed.")
]


def _consoles(as_json: bool) -> tuple[Console, Console]:
    """(progress console, result console): with --json the progress must stay off stdout."""
    out = conventions.TerminalConsole(soft_wrap=True)  # piped: a line is never broken in a timestamp or a code
    return (conventions.TerminalConsole(stderr=True, soft_wrap=True) if as_json else out), out


def _run_command(body: Callable[[], T]) -> T:
    """Run a command body, turning expected failures into a message and an exit code."""
    err = conventions.TerminalConsole(stderr=True)
    try:
        return body()
    except MigratorError as exc:
        err.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        if exc.hint:
            err.print(exc.hint, highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted: the journal is saved; `migrator resume` continues where this stopped[/yellow]")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _settings(config: Path | None, **overrides: Any) -> Settings:
    settings = load_settings(config, **overrides)
    settings.require_credentials()
    return settings


def _confirmer(yes: bool, renderer: Renderer) -> Callable[[Plan], bool]:
    def confirm(plan: Plan) -> bool:
        with renderer.paused():
            renderer.console.print(plan_table(plan, title="About to write to Kinde"))
            return yes or typer.confirm("Proceed?", default=False)

    return confirm


def _require_export(settings: Settings, excused: bool) -> None:
    if settings.clerk_export is None and not excused:
        raise ConfigError(
            "no Clerk export given: password digests come only from the dashboard CSV export, so every user"
            " with a password would need a reset. Pass --clerk-export PATH (or CLERK_EXPORT), or"
            " --without-export to go ahead without passwords"
        )


def _require_confirmation_possible(yes: bool, dry_run: bool = False) -> None:
    if not yes and not dry_run and not sys.stdin.isatty():
        raise ConfigError("refusing to write to Kinde without confirmation: no terminal to ask, pass --yes")


def _hold_and_run(
    settings: Settings, as_json: bool, work: Callable[[Journal, Renderer], Coroutine[Any, Any, T]]
) -> tuple[T, Console]:
    """Hold the state directory, show progress (on stderr with --json), run ``work``: its result, and the
    console the result is shown on."""
    progress_console, out = _consoles(as_json)
    journal = Journal(settings.state_dir)
    try:
        journal.acquire()
        with Renderer(progress_console, live=progress_console.is_terminal, quiet=conventions.OUTPUT.quiet) as renderer:
            return asyncio.run(work(journal, renderer)), out
    finally:
        journal.close()


def _execute(settings: Settings, as_json: bool, action: Start | Resume, *, yes: bool) -> Summary:
    """Check confirmation is possible, open the journal, run ``action``, show the result."""
    _require_confirmation_possible(yes, isinstance(action, Start) and action.dry_run)
    summary, out = _hold_and_run(
        settings,
        as_json,
        lambda journal, renderer: run_migration(
            settings, journal, action, on_event=renderer, confirm=_confirmer(yes, renderer)
        ),
    )
    _show_summary(summary, out, as_json)
    if conventions.OUTPUT.verbose and summary.failed_in_run and not as_json:
        status_cli.print_failed_after_run(settings, summary.run_id, out)
    return summary


def _show_summary(summary: Summary, out: Console, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(summary.to_json()))
        return
    if summary.mode == RunMode.DRY_RUN:
        out.print(plan_table(summary.plan, title=f"Dry run {summary.run_id}: the plan (nothing was written)"))
    else:
        out.print(summary_table(summary))
        for code, message, count in summary.failures[:10]:
            line = failure_line(code, message, count, summary.failure_messages.get(code, 1))
            out.print(f"[red]failed[/red]: {line}", highlight=False)
        for note in summary.unaccounted:
            out.print(f"[red]not accounted for[/red]: {note}", highlight=False)
        if summary.failed_in_run:
            out.print(f"Who and why: migrator status {summary.run_id} --failed", highlight=False)
            out.print(f"Retry them with: migrator retry-failed {summary.run_id}")
    for name, path in summary.reports.items():
        out.print(f"Report ({name.replace('_', ' ')}): {path}")


@app.command()
def run(
    clerk_export: Annotated[
        Path | None,
        typer.Option("--clerk-export", help="Clerk's export, the dashboard CSV or the JSON export (the only source of password digests)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read everything, write nothing; print the plan.")] = False,
    without_export: Annotated[
        bool,
        typer.Option(
            "--without-export",
            help="Migrate without Clerk's CSV export: no password can be imported (policy unimportable_passwords).",
        ),
    ] = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
    concurrency: Annotated[int | None, typer.Option(help="Users migrated at once.")] = None,
    max_rps: Annotated[float | None, typer.Option("--max-rps", help="Ceiling on requests/s to Kinde.")] = None,
    unimportable_passwords: PasswordPolicyOption = None,
    export_time: ExportTimeOption = None,
    no_create_properties: NoCreatePropertiesOption = False,
    sample: cutover_cli.SampleOption = None,
    seed: cutover_cli.SeedOption = 1,
    only: cutover_cli.OnlyOption = None,
    only_file: cutover_cli.OnlyFileOption = None,
) -> None:
    """Start a new migration run (prints its id), a dry run, or a canary (--sample / --only).

    Needs CLERK_SECRET_KEY, KINDE_DOMAIN, KINDE_MANAGEMENT_CLIENT_ID and KINDE_MANAGEMENT_CLIENT_SECRET
    (environment, .env or --config TOML).

    Examples:

        migrator run --clerk-export users.csv --dry-run

        migrator run --clerk-export users.csv --yes

    Exit codes: 0 every eligible user is in Kinde; 1 finished with failures (see `migrator status`);
    2 bad configuration or input, nothing written; 3 stopped by the source or the target
    (credentials, scope, answers that are not the API's); 130 interrupted (`migrator resume` continues).
    """

    def body() -> Summary:
        settings = _settings(
            config,
            clerk_export=clerk_export,
            state_dir=state_dir,
            concurrency=concurrency,
            kinde_max_rps=max_rps,
            unimportable_passwords=unimportable_passwords.value if unimportable_passwords else None,
            clerk_export_time=export_time,
            create_properties=False if no_create_properties else None,
        )
        _require_export(settings, dry_run or without_export)
        canary = cutover_cli.canary_action(sample, seed, only, only_file) if not dry_run else None
        return _execute(settings, as_json, canary or Start(dry_run=dry_run), yes=yes)  # type: ignore[arg-type]

    summary = _run_command(body)
    raise typer.Exit(summary.exit_code)


@app.command()
def resume(
    run_id: Annotated[int | None, typer.Argument(help="Run to continue (default: the latest).")] = None,
    allow_changed: AllowChangedOption = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Continue a run that failed or was killed, exactly where it stopped.

    Users already done cost no API call; users whose create was in flight are looked up first.

    Example: migrator resume 3 --yes
    """

    def body() -> Summary | NothingToDo:
        if done := runs_cli.finished_already(config, state_dir, run_id, failed_only=False, as_json=as_json):
            return done
        return _execute(_settings(config, state_dir=state_dir), as_json, Resume(run_id, allow_changed), yes=yes)

    raise typer.Exit(_run_command(body).exit_code)


@app.command("retry-failed")
def retry_failed(
    run_id: Annotated[int | None, typer.Argument(help="Run whose failed users to retry (default: the latest).")] = None,
    allow_changed: AllowChangedOption = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Retry only the users whose last attempt failed.

    Example: migrator retry-failed --yes
    """

    def body() -> Summary | NothingToDo:
        if done := runs_cli.finished_already(config, state_dir, run_id, failed_only=True, as_json=as_json):
            return done
        action = Resume(run_id, allow_changed, failed_only=True)
        return _execute(_settings(config, state_dir=state_dir), as_json, action, yes=yes)

    raise typer.Exit(_run_command(body).exit_code)


@app.command()
def status(
    run_id: Annotated[int | None, typer.Argument(help="Run to describe (default: the latest).")] = None,
    failed: status_cli.FailedOption = False,
    as_csv: status_cli.CsvOption = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Counts per step and state, who failed and why, who was skipped and why, warnings by kind.
    Reads the journal only.

    Examples: migrator status --failed; migrator status --failed --csv > failed.csv; migrator status --json
    """

    def body() -> None:
        status_cli.check_list_options(failed, as_csv, as_json)
        settings = load_settings(config, state_dir=state_dir)
        if not (settings.state_dir / JOURNAL_FILE).exists():
            raise ConfigError(f"no journal in {settings.state_dir}: nothing has run here yet (see --state-dir)")
        journal, out = Journal(settings.state_dir), conventions.TerminalConsole()
        try:
            report = status_report(journal, run_id)
            report["chain"], report["cutover"] = run_chain(journal), cutover_counts(journal, report["run"]["id"])
            if report["run"]["mode"] == RunMode.UNDO:
                report["undo"] = undo_status(journal, report["run"]["id"])
            if as_csv and "undo" in report:
                return status_cli.write_undo_items_csv(report["undo"])
            if as_csv:
                return status_cli.write_failed_csv(journal, report["run"]["id"])
            report |= status_cli.json_lists(journal, report["run"]["id"], failed)
            if not as_json:
                _show_status(report, out)
                if "undo" not in report:  # an undo run has no users: its kept and failed items are listed
                    status_cli.print_lists(out, journal, report["run"]["id"], all_failed=failed)
        finally:
            journal.close()
        if as_json:
            out.print_json(json.dumps(report))

    _run_command(body)


def _show_status(report: dict[str, Any], out: Console) -> None:
    if "undo" in report:
        cutover_cli.print_undo_status(out, report)
        return
    run_info = report["run"]
    out.print(
        f"Run {run_info['id']} ({run_info['mode']}): {run_info['status']}, started {run_info['started_at']}"
        + (f", ended {run_info['ended_at']}" if run_info["ended_at"] else "")
    )
    if run_info["status"] in ("stopped", "interrupted", "failed", "cancelled"):
        out.print(f"  its process is gone: `migrator resume {run_info['id']}` continues it")
    out.print(f"Users fetched: {report['users']} of {run_info['source_count']} in Clerk")
    if len(report["passes"]) > 1:  # resumed or retried: each pass's summary counted what it did
        passes = " | ".join(
            f"{p['number']} {p['kind']} {p['started_at'][5:16].replace('T', ' ')}" for p in report["passes"]
        )
        out.print(f"Passes: {passes}", highlight=False)
    if checked := report["verify"]:
        counts = ", ".join(f"{kind} {n}" for kind, n in checked["counts"].items())
        out.print(f"Last verify ({checked['ended_at']}): {checked['verdict']}: {counts}", highlight=False)
    out.print("Runs: " + " | ".join(cutover_cli.chain_entry(r) for r in report["chain"]), highlight=False)
    cutover_cli.print_cutover_counts(out, report["cutover"])
    for column in ("state", *STEP_COLUMNS):
        states = report["steps"].get(column, {})
        out.print(f"  {column:<12} " + ", ".join(f"{k} {v}" for k, v in states.items()))
    for reason, count in report["skipped"].items():
        out.print(f"  skipped: {reason}: {count}")
    for failure in report["failures"]:
        line = "[red]failed[/red]: " + failure_line(
            failure["code"], failure["message"], failure["users"], failure.get("messages", 1)
        )
        out.print(line, highlight=False, soft_wrap=True)


@app.command()
def verify(
    run_id: Annotated[int | None, typer.Argument(help="Run to verify (default: the latest).")] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Re-read Clerk's users and compare Kinde with them, not the run's plans.")
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Read every Kinde user back and compare it with the run's plans: missing, duplicated, unexpected,
    drift, incomplete. Writes verify.csv and summary.json into the run's report folder.

    Exit codes: 0 nothing missing, duplicated or incomplete; 1 otherwise; 3 stopped by Kinde.

    Example: migrator verify --json
    """

    def body() -> Verification:
        settings = _settings(config, state_dir=state_dir)
        _require_journal(settings)
        result, out = _hold_and_run(
            settings,
            as_json,
            lambda journal, renderer: run_verification(settings, journal, run_id, on_event=renderer, fresh=fresh),
        )
        show_verification(result, out, as_json)
        return result

    raise typer.Exit(_run_command(body).exit_code)


@report_app.command("id-map")
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
        _require_journal(settings)
        parse_target(sql)
        journal = Journal(settings.state_dir)
        try:
            run = journal.runs.get(run_id)
            pairs = ((clerk_id, kinde_id) for clerk_id, kinde_id, _ in journal.users.id_map(run.id))
            for statement in id_map_sql(sql, dialect, pairs):
                sys.stdout.write(statement + "\n")
        finally:
            journal.close()

    _run_command(body)


@report_app.command("html")
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
        _require_journal(settings)
        journal = Journal(settings.state_dir)
        try:
            run = journal.runs.get(run_id)
        finally:
            journal.close()
        folder = run_dir(settings.state_dir, run.id)
        if not (folder / SUMMARY).exists():
            raise ConfigError(f"run {run.id} has no {SUMMARY} yet: it has not finished a pass (migrator resume {run.id})")
        sys.stdout.write(f"{write_html_report(folder)}\n")

    _run_command(body)


def _require_journal(settings: Settings) -> None:
    if not (settings.state_dir / JOURNAL_FILE).exists():
        raise ConfigError(f"no journal in {settings.state_dir}: nothing has run here yet (see --state-dir)")


@app.command()
def demo(
    users: Annotated[int, typer.Option(help="Generated Clerk users.", min=1, max=conventions.SANDBOX_MAX_USERS)] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = 1,
    sign_ins: Annotated[int, typer.Option(help="Migrated users to sign in with their old password.", min=0)] = 25,
) -> None:
    """Rehearse a whole migration against the embedded sandbox, then sign users in with their old passwords.

    Example: migrator demo --users 2000
    """
    from migrator.demo import run_demo  # the sandbox is only imported here and in `sandbox serve`

    raise typer.Exit(_run_command(lambda: run_demo(users=users, seed=seed, sign_ins=sign_ins)))


from migrator import cli_export  # noqa: E402,F401  (registers `migrator export` on app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # outside a command body (e.g. while typer parses)
        sys.exit(EXIT_INTERRUPTED)


__all__ = ["EXIT_BAD_INPUT", "app", "main"]


from migrator import cli_cutover as cutover_cli  # noqa: E402 - registers sync, undo; canary options of run
from migrator import cli_lazy as lazy_cli  # noqa: E402,F401 - registers `lazy init`
from migrator import cli_runs as runs_cli  # noqa: E402 - registers `runs`; resume's offline answer
from migrator import cli_sandbox  # noqa: E402,F401 - registers `sandbox serve`
from migrator import cli_status as status_cli  # noqa: E402 - the lists of `status`
