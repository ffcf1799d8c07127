"""The ``migrator`` command: thin commands that turn flags into settings and events into output.

One module per command group, each with a ``register(app)`` called here, in the order ``--help``
lists them; what they share (options, settings, the failure -> message + exit code rule) is
``shared.py``. Exit codes: 0 every eligible user is in Kinde; 1 finished with failures; 2 bad
configuration or input (nothing written); 3 stopped by the source or the target; 130 interrupted.
"""

from __future__ import annotations

import sys

import typer

from migrator.cli import conventions, cutover, export, lazy, report, run, runs, sandbox, verify
from migrator.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED

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
for group in (run, verify, sandbox, report, export, cutover, lazy, runs):
    group.register(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # outside a command body (e.g. while typer parses)
        sys.exit(EXIT_INTERRUPTED)


__all__ = ["EXIT_BAD_INPUT", "app", "main"]
