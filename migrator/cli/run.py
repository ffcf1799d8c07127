"""``migrator run``, ``resume``, ``retry-failed`` and ``status``: a migration run and what it left.

Exit codes: 0 every eligible user is in Kinde; 1 finished with failures; 2 bad configuration or
input (nothing written); 3 stopped by the source or the target (credentials, scope, garbage
answers); 130 interrupted (``migrator resume`` continues).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from migrator.cli import conventions, cutover, lists, runs
from migrator.cli.execute import execute
from migrator.cli.shared import (
    AllowChangedOption,
    ConfigOption,
    ExportTimeOption,
    JsonOption,
    NoCreatePropertiesOption,
    PasswordPolicyOption,
    StateDirOption,
    YesOption,
    connected_settings,
    require_export,
    require_journal,
    run_command,
)
from migrator.config import load_settings
from migrator.journal import STEP_COLUMNS, Journal, RunMode
from migrator.reports import Summary, status_report
from migrator.run_records import NothingToDo, cutover_counts, run_chain, undo_status
from migrator.runs.actions import Resume, Start
from migrator.status_lists import failure_line


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(resume)
    app.command("retry-failed")(retry_failed)
    app.command()(status)


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
    sample: cutover.SampleOption = None,
    seed: cutover.SeedOption = 1,
    only: cutover.OnlyOption = None,
    only_file: cutover.OnlyFileOption = None,
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
        settings = connected_settings(
            config,
            clerk_export=clerk_export,
            state_dir=state_dir,
            concurrency=concurrency,
            kinde_max_rps=max_rps,
            unimportable_passwords=unimportable_passwords.value if unimportable_passwords else None,
            clerk_export_time=export_time,
            create_properties=False if no_create_properties else None,
        )
        require_export(settings, dry_run or without_export)
        canary = cutover.canary_action(sample, seed, only, only_file) if not dry_run else None
        return execute(settings, as_json, canary or Start(dry_run=dry_run), yes=yes)  # type: ignore[arg-type]

    summary = run_command(body)
    raise typer.Exit(summary.exit_code)


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
        if done := runs.finished_already(config, state_dir, run_id, failed_only=False, as_json=as_json):
            return done
        return execute(connected_settings(config, state_dir=state_dir), as_json, Resume(run_id, allow_changed), yes=yes)

    raise typer.Exit(run_command(body).exit_code)


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
        if done := runs.finished_already(config, state_dir, run_id, failed_only=True, as_json=as_json):
            return done
        action = Resume(run_id, allow_changed, failed_only=True)
        return execute(connected_settings(config, state_dir=state_dir), as_json, action, yes=yes)

    raise typer.Exit(run_command(body).exit_code)


def status(
    run_id: Annotated[int | None, typer.Argument(help="Run to describe (default: the latest).")] = None,
    failed: lists.FailedOption = False,
    as_csv: lists.CsvOption = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Counts per step and state, who failed and why, who was skipped and why, warnings by kind.
    Reads the journal only.

    Examples: migrator status --failed; migrator status --failed --csv > failed.csv; migrator status --json
    """

    def body() -> None:
        lists.check_list_options(failed, as_csv, as_json)
        settings = load_settings(config, state_dir=state_dir)
        require_journal(settings)
        journal, out = Journal(settings.state_dir), conventions.TerminalConsole()
        try:
            report = status_report(journal, run_id)
            report["chain"], report["cutover"] = run_chain(journal), cutover_counts(journal, report["run"]["id"])
            if report["run"]["mode"] == RunMode.UNDO:
                report["undo"] = undo_status(journal, report["run"]["id"])
            if as_csv and "undo" in report:
                return lists.write_undo_items_csv(report["undo"])
            if as_csv:
                return lists.write_failed_csv(journal, report["run"]["id"])
            report |= lists.json_lists(journal, report["run"]["id"], failed)
            if not as_json:
                _show_status(report, out)
                if "undo" not in report:  # an undo run has no users: its kept and failed items are listed
                    lists.print_lists(out, journal, report["run"]["id"], all_failed=failed)
        finally:
            journal.close()
        if as_json:
            out.print_json(json.dumps(report))

    run_command(body)


def _show_status(report: dict[str, Any], out: Console) -> None:
    if "undo" in report:
        cutover.print_undo_status(out, report)
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
        if coverage := checked.get("coverage"):
            out.print(f"  checked by {coverage['text']}", highlight=False)
    out.print("Runs: " + " | ".join(cutover.chain_entry(r) for r in report["chain"]), highlight=False)
    cutover.print_cutover_counts(out, report["cutover"])
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
