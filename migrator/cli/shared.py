"""What every command shares: the common options, settings from flags, the journal held while a command
runs, and the one place an expected failure becomes a message and an exit code."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from migrator.cli import conventions
from migrator.config import Settings, load_settings
from migrator.errors import EXIT_INTERRUPTED, ConfigError, MigratorError
from migrator.journal import JOURNAL_FILE, Journal
from migrator.render import Renderer

T = TypeVar("T")


class PasswordPolicy(StrEnum):
    reset = "reset"
    no_password = "no-password"
    skip = "skip"
    lazy = "lazy"  # users with an email move at their first sign-in (`migrator lazy`)


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


def consoles(as_json: bool) -> tuple[Console, Console]:
    """(progress console, result console): with --json the progress must stay off stdout."""
    out = conventions.TerminalConsole(soft_wrap=True)  # piped: a line is never broken in a timestamp or a code
    return (conventions.TerminalConsole(stderr=True, soft_wrap=True) if as_json else out), out


def run_command(body: Callable[[], T]) -> T:
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


def connected_settings(config: Path | None, **overrides: Any) -> Settings:
    """Settings for a command that talks to the APIs: the credentials must be there."""
    settings = load_settings(config, **overrides)
    settings.require_credentials()
    return settings


def require_export(settings: Settings, excused: bool) -> None:
    if settings.clerk_export is None and not excused:
        raise ConfigError(
            "no Clerk export given: password digests come only from the dashboard CSV export, so every user"
            " with a password would need a reset. Pass --clerk-export PATH (or CLERK_EXPORT), or"
            " --without-export to go ahead without passwords"
        )


def require_confirmation_possible(yes: bool, dry_run: bool = False) -> None:
    if not yes and not dry_run and not sys.stdin.isatty():
        raise ConfigError("refusing to write to Kinde without confirmation: no terminal to ask, pass --yes")


def require_journal(settings: Settings) -> None:
    if not (settings.state_dir / JOURNAL_FILE).exists():
        raise ConfigError(f"no journal in {settings.state_dir}: nothing has run here yet (see --state-dir)")


def hold_and_run(
    settings: Settings, as_json: bool, work: Callable[[Journal, Renderer], Coroutine[Any, Any, T]]
) -> tuple[T, Console]:
    """Hold the state directory, show progress (on stderr with --json), run ``work``: its result, and the
    console the result is shown on."""
    progress_console, out = consoles(as_json)
    journal = Journal(settings.state_dir)
    try:
        journal.acquire()
        output = conventions.OUTPUT
        live = progress_console.is_terminal
        with Renderer(progress_console, live=live, quiet=output.quiet, verbose=output.verbose) as renderer:
            return asyncio.run(work(journal, renderer)), out
    finally:
        journal.close()
