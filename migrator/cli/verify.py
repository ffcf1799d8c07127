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
from migrator.stages.verify_sample import SAMPLE_SIZE, Depth


def register(app: typer.Typer) -> None:
    app.command()(verify)


def verify(
    run_id: Annotated[int | None, typer.Argument(help="Run to verify (default: the latest).")] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Re-read Clerk's users and compare Kinde with them, not the run's plans.")
    ] = False,
    sample: Annotated[
        int,
        typer.Option(
            "--sample",
            min=1,
            help="Users read one by one (verified flags, properties, social identities) when the run has more.",
        ),
    ] = SAMPLE_SIZE,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Draw the sample with this seed (a verify prints the seed it drew).")
    ] = None,
    deep: Annotated[
        bool, typer.Option("--deep", help="Read every user one by one (one Kinde request per user), not a sample.")
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Read every Kinde user back and compare it with the run's plans: missing, duplicated, unexpected,
    drift, incomplete. Writes verify.csv and summary.json into the run's report folder.

    Kinde's users pages (500 users a request) cover names, suspension, identities, presence and
    duplicates for everyone; verified flags, properties and social identities need a request per user:
    every user of a run up to --sample users, beyond that a sample drawn by a printed seed (--seed
    draws it again), or every user with --deep.

    Exit codes: 0 nothing missing, duplicated or incomplete; 1 otherwise; 3 stopped by Kinde.

    Example: migrator verify --json
    """

    if deep and (seed is not None or sample != SAMPLE_SIZE):
        raise typer.BadParameter("--deep reads every user one by one: leave out --sample and --seed")
    depth = Depth(sample=sample, seed=seed, deep=deep)

    def body() -> Verification:
        settings = connected_settings(config, state_dir=state_dir)
        require_journal(settings)
        result, out = hold_and_run(
            settings,
            as_json,
            lambda journal, renderer: run_verification(
                settings, journal, run_id, on_event=renderer, fresh=fresh, depth=depth
            ),
        )
        show_verification(result, out, as_json)
        return result

    raise typer.Exit(run_command(body).exit_code)
