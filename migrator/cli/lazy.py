"""``migrator lazy``: lazy migration of the passwords Kinde cannot import, through a Kinde workflow
that asks Clerk to verify the typed password at sign-in."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from migrator.cli import conventions
from migrator.cli.execute import confirmer, show_summary
from migrator.cli.shared import (
    ConfigOption,
    JsonOption,
    StateDirOption,
    YesOption,
    connected_settings,
    hold_and_run,
    require_confirmation_possible,
    require_journal,
    run_command,
)
from migrator.config import Settings, load_settings
from migrator.connect import connect
from migrator.errors import ScopeError
from migrator.lazy import setup as lazy_setup
from migrator.lazy.cohort import CohortStatus, Standing
from migrator.lazy.workflow_files import ENVIRONMENT_VARIABLES, SETTINGS_FILE, write_workflow
from migrator.render import Renderer
from migrator.reports import Summary
from migrator.runs.lazy import FinishPreview, LazyFinish, run_lazy_finish, run_lazy_status
from migrator.runs.session import report_retries

RunArgument = Annotated[
    int | None, typer.Argument(help="The run whose lazy cohort is meant (default: the latest run with one).")
]


def register(app: typer.Typer) -> None:
    lazy_app = typer.Typer(help="Lazy migration: users move at sign-in, Clerk verifying their password.", no_args_is_help=True)
    lazy_app.command("init")(init)
    lazy_app.command("setup")(setup)
    lazy_app.command("status")(status)
    lazy_app.command("finish")(finish)
    app.add_typer(lazy_app, name="lazy")


def init(
    out: Annotated[Path, typer.Option("--out", help="New folder for the workflow (the repository Kinde syncs from).")],
    users_in_kinde: Annotated[
        bool,
        typer.Option(
            "--users-in-kinde",
            help="Also handle users Kinde holds without a password (whether Kinde fires the trigger for them is"
            " undocumented: test in a dev environment first). Default: the setting lazy_users_in_kinde.",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Write the Kinde workflow folder, with the Clerk API URL filled in and no secret in it.

    Example: migrator lazy init --out ../kinde-workflows
    """

    def body() -> int:
        settings = load_settings(config)
        # one reading for the run and the workflow: the run's setting, unless the flag asks for it here
        reading = users_in_kinde or settings.lazy_users_in_kinde
        write_workflow(out, clerk_api_url=settings.clerk_api_url, users_in_kinde=reading)
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
            outcomes = asyncio.run(_set_variables(settings, variables))
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


async def _set_variables(settings: Settings, variables: list[lazy_setup.Variable]) -> list[lazy_setup.Outcome]:
    """Retries as every command reports them (``report_retries``: each shown with -v, a long wait announced)."""
    output = conventions.OUTPUT
    err = conventions.TerminalConsole(stderr=True)
    with Renderer(err, live=False, quiet=output.quiet, verbose=output.verbose) as renderer:
        async with connect(settings, on_retry=report_retries(renderer, settings.long_wait)) as (_, kinde):
            return await lazy_setup.set_variables(kinde, variables)


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


class Fallback(StrEnum):
    reset = "reset"
    no_password = "no-password"
    skip = "skip"


CLOSING_STEPS = (
    "The lazy window is closed. Now:",
    "  1. Remove the workflow from Kinde (delete it from the repository Kinde syncs, then Sync code), or it keeps"
    " asking Clerk at every sign-in of an email Kinde does not hold.",
    "  2. Rotate the Clerk secret key (Clerk Dashboard > API keys) and delete CLERK_SECRET_KEY from Kinde's"
    " environment variables: the workflow's copy must stop working.",
)


def finish(
    run_id: RunArgument = None,
    lazy_fallback: Annotated[
        Fallback | None,
        typer.Option("--lazy-fallback", help="For the cohort's users who did not move (default: setting lazy_fallback, reset)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what the finish would do; write nothing.")] = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Close the lazy window of a run: the users Kinde's workflow moved are adopted (their Kinde ids recorded,
    their passwords untouched) and get their organizations, roles, properties, social identities and the phone
    the workflow cannot send; the rest get the fallback (a password reset by default). A journaled run: killed,
    the same command continues it.

    Exit codes: 0 every user of the cohort accounted for; 1 some failed (`migrator retry-failed N`).

    Example: migrator lazy finish --dry-run
    """

    def body() -> int:
        settings = connected_settings(config, state_dir=state_dir)
        require_journal(settings)
        require_confirmation_possible(yes, dry_run)
        action = LazyFinish(run_id, lazy_fallback.value if lazy_fallback else None, dry_run)  # type: ignore[arg-type]
        result, out = hold_and_run(
            settings,
            as_json,
            lambda journal, renderer: run_lazy_finish(
                settings, journal, action, on_event=renderer, confirm=confirmer(yes, renderer)
            ),
        )
        if isinstance(result, FinishPreview):
            show_preview(result, out, as_json)
            return 0
        show_summary(result, out, as_json)
        if finished(result):  # with --json on stderr: stdout is the summary alone
            steps = conventions.TerminalConsole(stderr=True, soft_wrap=True) if as_json else out
            for line in CLOSING_STEPS:
                steps.print(line, highlight=False)
        return result.exit_code

    raise typer.Exit(run_command(body))


def finished(summary: Summary) -> bool:
    return not summary.cancelled and summary.exit_code == 0


def show_preview(preview: FinishPreview, out: Console, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(preview.to_json()))
        return
    show_status(preview.status, out)
    data = preview.to_json()
    out.print(f"Dry run (nothing written): would adopt {data['would_adopt']} moved user(s);", highlight=False)
    if preview.fallback == "skip":
        out.print(f"  would record {data['would_skip']} user(s) skipped (fallback skip)", highlight=False)
    else:
        out.print(f"  would create {data['would_create']} user(s) with the fallback {preview.fallback}", highlight=False)


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
