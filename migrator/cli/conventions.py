"""The conventions operators know from gh, stripe and pip: ``--version``, ``-h``, ``-v``/``-q``, examples
in the top-level help, and option values checked by the parser (exit 2 with a message, never a traceback).

The help is click's plain layout (``rich_markup_mode=None`` on the app): it shows a boolean flag as a
flag (typer's rich panel labels every flag ``<bool>``), fits 80 columns and reads the same when piped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console

from migrator import __version__

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

TOP_LEVEL_HELP = """Move every user of a Clerk application into Kinde: safely, resumably, with their passwords.

Every run needs four settings (environment, .env or --config TOML): CLERK_SECRET_KEY, KINDE_DOMAIN,
KINDE_MANAGEMENT_CLIENT_ID and KINDE_MANAGEMENT_CLIENT_SECRET.

\b
Examples:
  migrator demo --users 2000              rehearse against the sandbox
  migrator run --clerk-export users.csv --dry-run
  migrator run --clerk-export users.csv --yes
  migrator status --failed                who failed, and why
  migrator resume --yes                   continue a stopped run
  migrator runs                           every run in this state directory
"""


@dataclass
class Verbosity:
    """Set once by the top-level ``-v``/``-q`` flags; read by the commands that show progress."""

    verbose: bool = False
    quiet: bool = False


OUTPUT = Verbosity()


def package_version() -> str:
    """``migrator/__init__.py``'s ``__version__``: the one place, which the build also reads (pyproject.toml)."""
    return __version__


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"migrator {package_version()}")
        raise typer.Exit(0)


def main_options(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Show each retry and reconciliation as it happens; after a run, list each failed user and why.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display; only the result.")] = False,
) -> None:
    """Move every user of a Clerk application into Kinde."""
    if verbose and quiet:
        raise typer.BadParameter("--verbose and --quiet cannot be used together", param_hint="-v/-q")
    OUTPUT.verbose, OUTPUT.quiet = verbose, quiet


def positive(value: float | None) -> float | None:
    """Parser check for a rate: none, or above zero."""
    if value is not None and value <= 0:
        raise typer.BadParameter(f"must be above 0, got {value}")
    return value


PORT = {"min": 0, "max": 65535}
SANDBOX_MAX_USERS = 4_000_000  # generator.MAX_USERS, without importing the sandbox for every command


class TerminalConsole(Console):
    """In a terminal, every line wraps at a word to the terminal's width (an 80-column reader never sees a
    word cut by the terminal); piped, a line asked not to wrap (``soft_wrap=True``) stays whole for grep."""

    def print(self, *objects: Any, soft_wrap: bool | None = None, **options: Any) -> None:
        super().print(*objects, soft_wrap=False if self.is_terminal else soft_wrap, **options)
