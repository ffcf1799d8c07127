"""``migrator lazy``: lazy migration of the passwords Kinde cannot import, through a Kinde workflow
that asks Clerk to verify the typed password at sign-in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from migrator.cli.shared import ConfigOption, run_command
from migrator.config import load_settings
from migrator.lazy.workflow_files import ENVIRONMENT_VARIABLES, SETTINGS_FILE, write_workflow


def register(app: typer.Typer) -> None:
    lazy_app = typer.Typer(help="Lazy migration: users move at sign-in, Clerk verifying their password.", no_args_is_help=True)
    lazy_app.command("init")(init)
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
