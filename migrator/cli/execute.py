"""A migration action carried out for a command (run, resume, retry-failed, sync): confirmation checked,
the journal held, progress shown, the summary printed."""

from __future__ import annotations

import json
from collections.abc import Callable

import typer
from rich.console import Console

from migrator.cli import conventions, lists
from migrator.cli.shared import hold_and_run, require_confirmation_possible
from migrator.config import Settings
from migrator.journal import RunMode
from migrator.render import Renderer, plan_table, summary_table
from migrator.reports import Plan, Summary
from migrator.runs.actions import Canary, Resume, Start, Sync
from migrator.runs.api import run_migration
from migrator.status_lists import failure_line


def confirmer(yes: bool, renderer: Renderer) -> Callable[[Plan], bool]:
    def confirm(plan: Plan) -> bool:
        with renderer.paused():
            renderer.console.print(plan_table(plan, title="About to write to Kinde"))
            return yes or typer.confirm("Proceed?", default=False)

    return confirm


def execute(settings: Settings, as_json: bool, action: Start | Resume | Sync | Canary, *, yes: bool) -> Summary:
    """Check confirmation is possible, open the journal, run ``action``, show the result."""
    require_confirmation_possible(yes, isinstance(action, Start) and action.dry_run)
    summary, out = hold_and_run(
        settings,
        as_json,
        lambda journal, renderer: run_migration(
            settings, journal, action, on_event=renderer, confirm=confirmer(yes, renderer)
        ),
    )
    show_summary(summary, out, as_json)
    if conventions.OUTPUT.verbose and summary.failed_in_run and not as_json:
        lists.print_failed_after_run(settings, summary.run_id, out)
    return summary


def show_summary(summary: Summary, out: Console, as_json: bool) -> None:
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
