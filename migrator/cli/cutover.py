"""The cutover commands: ``sync`` (catch-up), ``undo``, and the canary options of ``run``; what ``status``
shows of a cutover run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from migrator.cli.execute import execute
from migrator.cli.shared import (
    ConfigOption,
    ExportTimeOption,
    JsonOption,
    PasswordPolicyOption,
    StateDirOption,
    YesOption,
    connected_settings,
    hold_and_run,
    require_confirmation_possible,
    run_command,
)
from migrator.errors import ConfigError
from migrator.only_file import read_only_ids
from migrator.render import Renderer
from migrator.reports import Summary
from migrator.runs.actions import Canary, Sync, Undo
from migrator.runs.undo import ConfirmUndo, UndoSummary, run_undo
from migrator.stages.undo import PLANNED_KINDS
from migrator.status_lists import SHOWN

UNDO_LABELS = {
    "identity_removed": "identities a catch-up removed (re-added)",
    "identity_added": "identities a catch-up added (deleted)",
    "user_profile": "names and suspensions a catch-up changed (restored)",
    "password": "passwords a catch-up changed (kept: cannot be restored)",
    "user_deleted": "users a catch-up deleted (kept: cannot be recreated)",
    "organization_property": "organization property values (restored)",
    "role_permission": "permissions attached to roles it did not create (detached)",
    "permission": "permissions",
    "property": "property definitions",
}

SampleOption = Annotated[int | None, typer.Option("--sample", help="Canary: migrate N random users only.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Canary: the same seed picks the same sample.")]
OnlyOption = Annotated[str | None, typer.Option("--only", help="Canary: migrate only these Clerk ids (comma list).")]
OnlyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--only-file",
        help="Canary: the Clerk ids in this file (one a line, or a clerk_id column: api-users.csv of `migrator export`).",
    ),
]


def chain_entry(run: dict[str, Any]) -> str:
    """``3 sync<-2 (completed)``: a run, its base, its status (``status`` shows the chain)."""
    base = f"<-{run['parent_run_id']}" if run["parent_run_id"] else ""
    return f"{run['id']} {run['mode']}{base} ({run['status']})"


def print_cutover_counts(out: Console, counts: dict[str, Any]) -> None:
    """Under ``status``: a catch-up's updates, a catch-up's or undo's deletions."""
    if counts["updates"]:
        out.print("  updates      " + ", ".join(f"{k} {v}" for k, v in sorted(counts["updates"].items())))
    for kind, states in sorted(counts["deletions"].items()):
        out.print(f"  {kind + ' deletions':<12} " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))


def canary_action(sample: int | None, seed: int, only: str | None, only_file: Path | None) -> Canary | None:
    """The canary ``run --sample/--only/--only-file`` asks for, or None for a full run."""
    ids = [part.strip() for part in (only or "").split(",") if part.strip()]
    ids += sorted(read_only_ids(only_file) or ())
    if sample is not None and ids:
        raise ConfigError("--sample and --only/--only-file exclude each other")
    if sample is None and not ids:
        return None
    if sample is not None and sample < 1:
        raise ConfigError("--sample must be a positive number of users")
    return Canary(sample=sample, seed=seed, only=tuple(ids))


def register(app: typer.Typer) -> None:
    app.command()(sync)
    app.command()(undo)


def sync(
    since: Annotated[int | None, typer.Option("--since", help="Base run (default: the latest run).")] = None,
    clerk_export: Annotated[
        Path | None, typer.Option("--clerk-export", help="A fresh export: changed passwords are imported from it.")
    ] = None,
    export_time: ExportTimeOption = None,
    delete_removed: Annotated[
        bool, typer.Option("--delete-removed", help="Delete from Kinde the users gone from Clerk (ours only).")
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Compare every Clerk user, not only those updated since (slower).")
    ] = False,
    unimportable_passwords: PasswordPolicyOption = None,
    yes: YesOption = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Catch up: bring over only what changed in Clerk since a run began (a run of its own).

    Sign-ups are migrated; users changed since have their names, identities, suspension and (with a
    fresh export) password brought up to date; users gone from Clerk are listed, or deleted with
    --delete-removed when this journal created them. Without --clerk-export, changed passwords get
    the unimportable-password policy.

    Examples:

        migrator sync --yes

        migrator sync --since 1 --clerk-export users-new.csv --yes
    """

    def body() -> Summary:
        settings = connected_settings(
            config,
            clerk_export=clerk_export,
            state_dir=state_dir,
            clerk_export_time=export_time,
            unimportable_passwords=unimportable_passwords.value if unimportable_passwords else None,
        )
        return execute(settings, as_json, Sync(since, delete_removed, full), yes=yes)  # type: ignore[arg-type]

    raise typer.Exit(run_command(body).exit_code)


def undo(
    run_id: Annotated[int, typer.Argument(help="The run whose creations to delete from Kinde.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be deleted; delete nothing.")] = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Delete from Kinde exactly what run RUN_ID created: its users, then its organizations and roles
    nobody else uses, then its permissions and property definitions nobody else uses; permissions it
    attached to roles it found are detached, values it wrote on organizations it found restored. Never
    anything it did not create (journal and Kinde's provided_id/external_id must agree). Of a catch-up,
    also its updates to earlier users: identities re-added or deleted, names and suspension restored
    where Kinde still holds its value; changed passwords and deleted users are listed as kept. Resumable:
    run it again to continue; once done, it is a no-op.

    Examples:

        migrator undo 3 --dry-run

        migrator undo 3 --yes
    """

    def body() -> UndoSummary:
        settings = connected_settings(config, state_dir=state_dir)
        require_confirmation_possible(yes, dry_run)
        summary, out = hold_and_run(
            settings,
            as_json,
            lambda journal, renderer: run_undo(
                settings, journal, Undo(run_id, dry_run), on_event=renderer, confirm=_ask(yes, renderer)
            ),
        )
        _show(summary, out, as_json)
        return summary

    raise typer.Exit(run_command(body).exit_code)


def _ask(yes: bool, renderer: Renderer) -> ConfirmUndo:
    def confirm(planned: dict[str, int]) -> bool:
        with renderer.paused():
            renderer.console.print(_counts_table("About to delete from Kinde", planned))
            return yes or typer.confirm("Delete?", default=False)

    return confirm


def _counts_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column("kind")
    table.add_column("count", justify="right")
    for kind in PLANNED_KINDS:
        if kind in ("user", "organization", "role") or counts.get(kind):
            table.add_row(UNDO_LABELS.get(kind, f"{kind}s"), str(counts.get(kind, 0)))
    return table


def _show(summary: UndoSummary, out: Console, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(summary.to_json()))
        return
    if summary.dry_run:
        out.print(
            _counts_table(f"Undo of run {summary.base_run_id}: would delete (nothing was deleted)", summary.planned)
        )
        for note in summary.kept:
            out.print(f"[yellow]would keep[/yellow]: {note}", highlight=False)
        return
    for kind, states in summary.outcomes.items():
        out.print(f"{kind}s: " + ", ".join(f"{state} {n}" for state, n in sorted(states.items())), highlight=False)
    for note in summary.kept:
        out.print(f"[yellow]kept[/yellow]: {note}", highlight=False)


# an undo's outcomes: "deleted" is a DELETE Kinde confirmed, "already gone" what Kinde proved absent (nothing sent)
STATUS_COLUMNS = ("deleted", "kept", "failed", "pending", "already-gone")


def print_undo_status(out: Console, report: dict[str, Any]) -> None:
    """``status`` of an undo run: no per-user steps (it has no users), its deletions by kind and state,
    then what it kept and what failed, with why."""
    run_info, undo_info = report["run"], report["undo"]
    base = undo_info["base_run_id"]
    ended = f", ended {run_info['ended_at']}" if run_info["ended_at"] else ""
    out.print(
        f"Run {run_info['id']} (undo of run {base}): {run_info['status']}, started {run_info['started_at']}{ended}"
    )
    if run_info["status"] in ("stopped", "interrupted", "failed", "cancelled"):
        out.print(f"  nothing is lost: `migrator undo {base}` continues it")
    out.print("Runs: " + " | ".join(chain_entry(r) for r in report["chain"]), highlight=False)
    if not undo_info["deletions"]:
        out.print("Deletions: none recorded (the undo stopped before planning, or its run created nothing)")
    else:
        table = Table(title=f"What run {base}'s undo took back from Kinde")
        table.add_column("kind")
        for state in STATUS_COLUMNS:
            table.add_column(state.replace("-", " "), justify="right")
        for item in undo_info["deletions"]:
            states = item["states"]
            row = [str(states.get(state, 0)) for state in STATUS_COLUMNS]
            table.add_row(UNDO_LABELS.get(item["kind"], f"{item['kind']}s"), *row)
        out.print(table)
    for title, state in (("Kept in Kinde", "kept"), (f"[red]Failed[/red] (`migrator undo {base}` retries)", "failed")):
        if undo_info[state]:
            out.print(f"{title}:", highlight=False)
        for item in undo_info[state][:SHOWN]:
            out.print(f"  {item['kind']} {item['key']}: {item['detail']}", highlight=False, soft_wrap=True)
        if len(undo_info[state]) > SHOWN:
            out.print(f"  ... and {len(undo_info[state]) - SHOWN} more (`migrator status {run_info['id']} --json`)")
