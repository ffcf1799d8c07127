"""``migrator sandbox serve``: the emulators for an operator's own rehearsal, with a switch for each vendor
behaviour worth rehearsing (rate limits and their reset headers, a quota shared with a live app, tokens that
expire or lack a scope, Clerk ignoring or refusing the cursor, a Clerk outage). Every value is checked by the
parser (exit 2). And ``migrator demo``. The sandbox itself is imported only in ``migrator.demo``, when a command
runs: this module imports it, never the other way."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from migrator.cli import conventions
from migrator.cli.shared import run_command


def register(app: typer.Typer) -> None:
    sandbox_app = typer.Typer(help="Local emulators of the Clerk and Kinde APIs, for rehearsals.", no_args_is_help=True)
    sandbox_app.command("serve")(sandbox_serve)
    app.add_typer(sandbox_app, name="sandbox")
    app.command()(demo)


class FaultProfileName(StrEnum):
    none = "none"
    light = "light"
    chaos = "chaos"


class DuplicateStatus(StrEnum):
    bad_request = "400"
    conflict = "409"


class BadTokenStatus(StrEnum):
    unauthorized = "401"
    forbidden = "403"


class ResetForm(StrEnum):
    seconds = "seconds"
    epoch = "epoch"
    http_date = "http-date"


class ClerkServed(StrEnum):
    served = "served"
    none = "none"


class ClerkCursor(StrEnum):
    honoured = "honoured"
    ignored = "ignored"
    rejected = "rejected"


class JsonExportShape(StrEnum):
    list = "list"
    joined = "joined"
    ndjson = "ndjson"


class OutageStatus(StrEnum):
    internal = "500"
    bad_gateway = "502"
    unavailable = "503"


def _known_scopes(values: list[str] | None) -> list[str]:
    from migrator.demo import sandbox_scopes  # the sandbox is imported only when this command runs

    unknown = sorted(set(values or []) - sandbox_scopes())
    if unknown:
        raise typer.BadParameter(f"unknown scope(s) {', '.join(unknown)}; the Management API's are e.g. read:users")
    return list(values or [])


def _kinde_readings(values: list[str] | None) -> list[str]:
    from migrator.demo import parse_kinde_reading  # the sandbox is imported only when this command runs

    for value in values or []:
        try:
            parse_kinde_reading(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return list(values or [])


def _reading(text: str) -> tuple[str, Any]:
    from migrator.demo import parse_kinde_reading

    return parse_kinde_reading(text)


def _share(value: float | None) -> float | None:
    if value is not None and not 0 < value <= 1:
        raise typer.BadParameter(f"must be above 0 and at most 1 (a share of the rate limit), got {value}")
    return value


SECONDS = {"min": 0.0, "max": 86_400.0}
Users = Annotated[int, typer.Option(help="Generated Clerk users.", min=1, max=conventions.SANDBOX_MAX_USERS)]
Seed = Annotated[int, typer.Option(help="Seed of the generated data.")]
ClerkPort = Annotated[int, typer.Option(help="Port of the Clerk emulator (0: any free port).", **conventions.PORT)]
KindePort = Annotated[int, typer.Option(help="Port of the Kinde emulator (0: any free port).", **conventions.PORT)]
ExportCsv = Annotated[Path | None, typer.Option(help="Also write Clerk's dashboard CSV export here.")]
ExportJson = Annotated[Path | None, typer.Option(help="Also write Clerk's JSON export here (see --export-json-shape).")]
ExportJsonShape = Annotated[
    JsonExportShape,
    typer.Option(help="The JSON export's shape: list (lists of emails), joined (emails joined by |), ndjson."),
]
AccountShapes = Annotated[
    float,
    typer.Option(
        help="Share of users whose external account is served in an older Clerk shape (legacy objects, bare "
        "provider names, accounts that cannot be linked).",
        min=0.0,
        max=1.0,
    ),
]
Organizations = Annotated[
    int | None,
    typer.Option(help="How many organizations (default one per 100 users); up to one per 10 users: many small ones.", min=1),
]
Faults = Annotated[FaultProfileName, typer.Option(help="Fault profile for both APIs.")]
FaultRetryAfter = Annotated[
    int, typer.Option(help="Seconds the faults' 429s ask to wait (Retry-After); 30: a long wait.", min=1, max=3600)
]
KindeRps = Annotated[
    float | None, typer.Option(help="Kinde rate limit, requests/s (default: none).", callback=conventions.positive)
]
ClerkRps = Annotated[int, typer.Option(help="Clerk rate limit, requests per 10 s.", min=1)]
Duplicate = Annotated[DuplicateStatus, typer.Option(help="Kinde status for a duplicate identity.")]
Reset = Annotated[ResetForm, typer.Option(help="How Kinde's 429s name their reset: seconds, epoch or HTTP date.")]
SharedQuota = Annotated[
    float | None,
    typer.Option(help="Another app takes this share (0-1] of Kinde's rate limit (needs --kinde-rps).", callback=_share),
]
SharedAfter = Annotated[
    float, typer.Option(help="Seconds after Kinde's first rate-limited request the share starts.", **SECONDS)
]
SharedFor = Annotated[float, typer.Option(help="Seconds the share lasts.", callback=conventions.positive)]
TokenLifetime = Annotated[int, typer.Option(help="Seconds a Kinde token lives.", min=1, max=86_400)]
TokenMaxUses = Annotated[int | None, typer.Option(help="A Kinde token expires after this many calls.", min=1)]
BadToken = Annotated[BadTokenStatus, typer.Option(help="Kinde's status for an expired or bad token.")]
WithoutScope = Annotated[
    list[str] | None,
    typer.Option(
        help="A scope the M2M application lacks (repeatable), e.g. create:users.",
        callback=_known_scopes,
        metavar="SCOPE",
    ),
]
OnlyScope = Annotated[
    list[str] | None,
    typer.Option(
        help="Grant the M2M application only this scope (repeatable), e.g. the users scopes of a minimal token.",
        callback=_known_scopes,
        metavar="SCOPE",
    ),
]
ClerkOrganizations = Annotated[
    ClerkServed, typer.Option(help="none: a Clerk instance without organizations (its default roles listed).")
]
ClerkRolePermissions = Annotated[ClerkServed, typer.Option(help="none: Clerk's roles carry no permissions.")]
Cursor = Annotated[ClerkCursor, typer.Option(help="What Clerk does with starting_after: honoured, ignored, rejected.")]
OutageAfter = Annotated[int | None, typer.Option(help="Clerk's user list fails after this many pages.", min=0)]
OutageSeconds = Annotated[
    float | None,
    typer.Option(help="The outage ends after this many seconds (default: never).", callback=conventions.positive),
]
KindeReading = Annotated[
    list[str] | None,
    typer.Option(
        help="Another reading of an open question about Kinde (repeatable), e.g. "
        "property_null_value=refused or added_identity_id=false; a wrong NAME lists them all.",
        callback=_kinde_readings,
        metavar="NAME=VALUE",
    ),
]
WorkflowDir = Annotated[
    Path | None,
    typer.Option(
        help="The folder `migrator lazy init` wrote: Kinde's sign-in (POST /_sandbox/sign-in) runs its workflow"
        " under Node (for whom: --kinde-reading workflow_fires_for=absent|passwordless|both).",
        exists=True,
        file_okay=False,
    ),
]
OutageCode = Annotated[OutageStatus, typer.Option(help="The status of Clerk's failing pages.")]


def sandbox_serve(
    users: Users = 1000,
    seed: Seed = 1,
    clerk_port: ClerkPort = 0,
    kinde_port: KindePort = 0,
    export_csv: ExportCsv = None,
    export_json: ExportJson = None,
    export_json_shape: ExportJsonShape = JsonExportShape.list,
    account_shapes: AccountShapes = 0.0,
    organizations: Organizations = None,
    faults: Faults = FaultProfileName.none,
    fault_retry_after: FaultRetryAfter = 1,
    kinde_rps: KindeRps = None,
    clerk_rps: ClerkRps = 1000,
    duplicate_status: Duplicate = DuplicateStatus.bad_request,
    reset_form: Reset = ResetForm.seconds,
    shared_quota: SharedQuota = None,
    shared_quota_after: SharedAfter = 0.0,
    shared_quota_for: SharedFor = 3600.0,
    token_lifetime: TokenLifetime = 3600,
    token_max_uses: TokenMaxUses = None,
    bad_token_status: BadToken = BadTokenStatus.unauthorized,
    without_scope: WithoutScope = None,
    only_scope: OnlyScope = None,
    clerk_cursor: Cursor = ClerkCursor.honoured,
    clerk_organizations: ClerkOrganizations = ClerkServed.served,
    clerk_role_permissions: ClerkRolePermissions = ClerkServed.served,
    clerk_outage_after_pages: OutageAfter = None,
    clerk_outage_seconds: OutageSeconds = None,
    clerk_outage_status: OutageCode = OutageStatus.unavailable,
    kinde_reading: KindeReading = None,
    workflow: WorkflowDir = None,
) -> None:
    """Serve the Clerk and Kinde emulators on loopback until interrupted.

    Prints the `export NAME=value` lines that point `migrator run` at them.

    \b
    Examples:
      migrator sandbox serve --users 5000 --export-csv users.csv --faults light
      migrator sandbox serve --faults light --fault-retry-after 30
      migrator sandbox serve --export-json users.json --account-shapes 0.2
      migrator sandbox serve --kinde-rps 20 --shared-quota 0.5 --reset-form epoch
      migrator sandbox serve --token-max-uses 200 --without-scope update:users
      migrator sandbox serve --clerk-cursor ignored
      migrator sandbox serve --clerk-organizations none --only-scope read:users
      migrator sandbox serve --clerk-outage-after-pages 2 --clerk-outage-seconds 9
      migrator sandbox serve --kinde-reading property_null_value=refused
      migrator sandbox serve --workflow wf --kinde-reading workflow_fires_for=both
    """
    given = dict(locals())
    if shared_quota is not None and kinde_rps is None:
        raise typer.BadParameter("--shared-quota shares Kinde's rate limit: give --kinde-rps too")
    if clerk_outage_seconds is not None and clerk_outage_after_pages is None:
        raise typer.BadParameter("--clerk-outage-seconds goes with --clerk-outage-after-pages")
    if only_scope and without_scope:
        raise typer.BadParameter("--only-scope names every granted scope: leave out --without-scope")
    choices = {
        "faults": faults.value,
        "export_json_shape": export_json_shape.value,
        "duplicate_status": int(duplicate_status.value),
        "reset_form": reset_form.value,
        "bad_token_status": int(bad_token_status.value),
        "without_scopes": list(without_scope or []),
        "only_scopes": list(only_scope or []),
        "clerk_cursor": clerk_cursor.value,
        "clerk_organizations": clerk_organizations.value,
        "clerk_role_permissions": clerk_role_permissions.value,
        "clerk_outage_status": int(clerk_outage_status.value),
        "kinde_readings": dict(_reading(value) for value in kinde_reading or []),
    }
    from migrator.demo import ServeRequest, serve_sandbox  # the sandbox is imported only when this command runs

    plain = {name: value for name, value in given.items() if name in ServeRequest.__dataclass_fields__}
    request = ServeRequest(**(plain | choices))
    raise typer.Exit(run_command(lambda: serve_sandbox(request)))


def demo(
    users: Annotated[int, typer.Option(help="Generated Clerk users.", min=1, max=conventions.SANDBOX_MAX_USERS)] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = 1,
    sign_ins: Annotated[int, typer.Option(help="Migrated users to sign in with their old password.", min=0)] = 25,
    lazy: Annotated[
        bool,
        typer.Option(
            "--lazy",
            help="With the lazy policy: argon2 users then sign in with their old password through the Kinde"
            " workflow (under Node), then `lazy status` and `lazy finish`.",
        ),
    ] = False,
) -> None:
    """Rehearse a whole migration against the embedded sandbox, then sign users in with their old passwords.

    Example: migrator demo --users 2000
    Example: migrator demo --lazy
    """
    from migrator.demo import run_demo  # the sandbox is only imported here and in `sandbox serve`

    raise typer.Exit(run_command(lambda: run_demo(users=users, seed=seed, sign_ins=sign_ins, lazy=lazy)))
