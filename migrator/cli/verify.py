"""``migrator verify``: every Kinde user read back and compared with a run's plans."""

from __future__ import annotations

from typing import Annotated

import typer

from migrator.cli.shared import (
    ConfigOption,
    JsonOption,
    StateDirOption,
    connected_settings,
    hold_and_run,
    require_journal,
    run_command,
)
from migrator.render_verify import show_verification
from migrator.runs.api import run_verification
from migrator.stages.verify import Verification


def register(app: typer.Typer) -> None:
    app.command()(verify)


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
        settings = connected_settings(config, state_dir=state_dir)
        require_journal(settings)
        result, out = hold_and_run(
            settings,
            as_json,
            lambda journal, renderer: run_verification(settings, journal, run_id, on_event=renderer, fresh=fresh),
        )
        show_verification(result, out, as_json)
        return result

    raise typer.Exit(run_command(body).exit_code)
