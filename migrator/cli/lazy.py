"""``migrator lazy``: lazy migration of the passwords Kinde cannot import, through a Kinde workflow
that asks Clerk to verify the typed password at sign-in."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from migrator.cli.shared import ConfigOption, connected_settings, run_command
from migrator.config import Settings, load_settings
from migrator.connect import connect
from migrator.errors import ApiError, ScopeError
from migrator.lazy import setup as lazy_setup
from migrator.lazy.workflow_files import ENVIRONMENT_VARIABLES, SETTINGS_FILE, write_workflow


def register(app: typer.Typer) -> None:
    lazy_app = typer.Typer(help="Lazy migration: users move at sign-in, Clerk verifying their password.", no_args_is_help=True)
    lazy_app.command("init")(init)
    lazy_app.command("setup")(setup)
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
        console.print(
            "  2. `migrator lazy setup` sets the Kinde environment variables it reads (`--print`: set them by hand):",
            highlight=False,
        )
        for name, secret, what in ENVIRONMENT_VARIABLES:
            console.print(f"     {name}{' (sensitive)' if secret else ''}: {what}", highlight=False)
        console.print(
            "  3. Turn on enumeration protection (Settings > Attack protection), then Sync code in Kinde.",
            highlight=False,
        )
        console.print(f"  Settings (refusal message, two-factor users, applications): {SETTINGS_FILE}", highlight=False)
        return 0

    raise typer.Exit(run_command(body))


def setup(
    print_only: Annotated[
        bool, typer.Option("--print", help="Print what to set in Kinde by hand; call nothing.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Create the Kinde environment variables the workflow reads (the Clerk key as a secret).

    Through the Management API where the token has read/create/update:environment_variables; otherwise
    (or with --print) says exactly what to set by hand. Run again: updates, never duplicates.

    Example: migrator lazy setup
    """
    console = Console(soft_wrap=True, highlight=False)

    def body() -> int:
        if print_only:
            for line in lazy_setup.manual_lines(lazy_setup.wanted(load_settings(config))):
                console.print(line, markup=False)
            return 0
        settings = connected_settings(config)
        variables = lazy_setup.wanted(settings)
        try:
            outcomes = asyncio.run(_set_variables(settings, variables, console))
        except ScopeError:
            for line in lazy_setup.manual_lines(variables):
                console.print(line, markup=False)
            raise
        for outcome in outcomes:
            mark = " (sensitive)" if outcome.secret else ""
            note = " (a secret: Kinde never shows its value, so it is written again)" if outcome.secret else ""
            said = {"created": "created", "updated": f"updated{note}", "unchanged": "already set, left as is"}
            console.print(f"{outcome.key}{mark}: {said[outcome.action]}", markup=False)
        console.print(
            "The workflow reads them at its next run. Revoke the Clerk key once `migrator lazy finish` has closed"
            " the window.",
            markup=False,
        )
        return 0

    raise typer.Exit(run_command(body))


async def _set_variables(
    settings: Settings, variables: list[lazy_setup.Variable], console: Console
) -> list[lazy_setup.Outcome]:
    def on_retry(service: str, error: ApiError, attempt: int) -> None:
        console.print(f"{service}: retry {attempt} after: {error}", markup=False)

    async with connect(settings, on_retry=on_retry) as (_, kinde):
        return await lazy_setup.set_variables(kinde, variables)
