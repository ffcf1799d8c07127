"""``migrator lazy``: lazy migration of the passwords Kinde cannot import, through a Kinde workflow
that asks Clerk to verify the typed password at sign-in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from migrator.cli.shared import (
    ConfigOption,
    JsonOption,
    StateDirOption,
    connected_settings,
    hold_and_run,
    require_journal,
    run_command,
)
from migrator.config import load_settings
from migrator.lazy.cohort import CohortStatus, Standing
from migrator.lazy.workflow_files import ENVIRONMENT_VARIABLES, SETTINGS_FILE, write_workflow
from migrator.runs.lazy import run_lazy_status

RunArgument = Annotated[
    int | None, typer.Argument(help="The run whose lazy cohort is meant (default: the latest run with one).")
]


def register(app: typer.Typer) -> None:
    lazy_app = typer.Typer(help="Lazy migration: users move at sign-in, Clerk verifying their password.", no_args_is_help=True)
    lazy_app.command("init")(init)
    lazy_app.command("status")(status)
    app.add_typer(lazy_app, name="lazy")


def init(
    out: Annotated[Path, typer.Option("--out", help="New folder for the workflow (the repository Kinde syncs from).")],
    users_in_kinde: Annotated[
        bool,
        typer.Option(
            "--users-in-kinde",
            help="Also handle users Kinde holds without a password (whether Kinde fires the trigger for them is"
            " undocumented: test in a dev environment first).",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Write the Kinde workflow folder, with the Clerk API URL filled in and no secret in it.

    Example: migrator lazy init --out ../kinde-workflows
    """

    def body() -> int:
        settings = load_settings(config)
        write_workflow(out, clerk_api_url=settings.clerk_api_url, users_in_kinde=users_in_kinde)
        console = Console(soft_wrap=True)
        console.print(f"Wrote the Kinde workflow to {out} (Clerk API: {settings.clerk_api_url}).", highlight=False)
        console.print("Next:", highlight=False)
        console.print("  1. Push the folder to the GitHub repository Kinde syncs workflows from.", highlight=False)
        console.print("  2. Set these Kinde environment variables (Settings > Environment variables):", highlight=False)
        for name, secret, what in ENVIRONMENT_VARIABLES:
            console.print(f"     {name}{' (sensitive)' if secret else ''}: {what}", highlight=False)
        console.print(
            "  3. Turn on enumeration protection (Settings > Attack protection), then Sync code in Kinde.",
            highlight=False,
        )
        console.print(f"  Settings (refusal message, two-factor users, applications): {SETTINGS_FILE}", highlight=False)
        return 0

    raise typer.Exit(run_command(body))


def status(run_id: RunArgument = None, as_json: JsonOption = False, config: ConfigOption = None,
           state_dir: StateDirOption = None) -> None:  # fmt: skip
    """Say who of a run's lazy cohort has moved to Kinde (signed in with the old password), who is pending,
    and who can never move this way (banned or locked in Clerk, no verified email, deleted). Reads Kinde and
    Clerk; writes nothing.

    Example: migrator lazy status --json
    """

    def body() -> int:
        settings = connected_settings(config, state_dir=state_dir)
        require_journal(settings)
        result, out = hold_and_run(
            settings, as_json, lambda journal, renderer: run_lazy_status(settings, journal, run_id, on_event=renderer)
        )
        if as_json:
            out.print_json(json.dumps(result.to_json()))
        else:
            show_status(result, out)
        return 0

    raise typer.Exit(run_command(body))


def show_status(result: CohortStatus, out: Console) -> None:
    counts = result.counts()
    reading = "created by the run without a password" if result.reading == "users-in-kinde" else "not in Kinde"
    out.print(f"Lazy cohort of run {result.run_id}: {len(result.verdicts)} user(s) (left {reading})", highlight=False)
    out.print(f"  moved to Kinde:  {counts[Standing.MOVED]}", highlight=False)
    out.print(f"  pending:         {counts[Standing.PENDING]}", highlight=False)
    out.print(f"  never this way:  {counts[Standing.NEVER]}", highlight=False)
    for why, n in sorted(result.never_by_reason().items(), key=lambda item: (-item[1], item[0])):
        out.print(f"    {n:>5}  {why}", highlight=False)
    for verdict in result.verdicts:
        if verdict.standing == Standing.NEVER:
            out.print(f"  {verdict.clerk_id} {verdict.email}: {verdict.why}", highlight=False)
    if result.outside:
        out.print(
            f"Not in the cohort: {result.outside} user(s) without a verified email got the fallback at run time"
            " (password-resets.csv)",
            highlight=False,
        )
    if result.finished_by is not None:
        out.print(f"The window was closed by `lazy finish` (run {result.finished_by}).", highlight=False)
    else:
        out.print(
            f"`migrator lazy finish {result.run_id}` closes the window: the moved are adopted, the rest get the fallback.",
            highlight=False,
        )
