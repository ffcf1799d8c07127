"""Stage: stream the staged users of an export run into Kinde's import files.

Reads: staged users (plans, skips), their memberships, organizations and roles; each user's
password digest from the Clerk export at its indexed offset (never from the journal). Writes: the
import files (0600, split under the size limit), ``organizations.csv``, ``api-users.csv`` (who
only the API can migrate, and why: ``migrator run --only-file`` takes it) and ``manifest.json``.
Emits: the ``files`` phase.

Memory stays flat: users are read in batches by seq and written as they come.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from migrator.errors import EXIT_FAILURES, EXIT_OK, InputError
from migrator.events import PhaseAdvanced, PhaseFinished, PhaseStarted
from migrator.file_parts import FileParts, open_private
from migrator.journal import UserRow, UserState
from migrator.kinde.import_files import (
    CSV_COLUMNS,
    MEMBERSHIP_COLUMNS,
    ORGANIZATION_COLUMNS,
    FileFormat,
    OrgRoles,
    Target,
    csv_rows,
    fusionauth_record,
    membership_rows,
    ndjson_record,
    place,
    social_record,
)
from migrator.models import PasswordImport, plan_from_record
from migrator.people_csv import write_csv
from migrator.report_files import SUMMARY, run_dir, write_skipped, write_summary
from migrator.reports import write_lazy_report, write_mfa_report
from migrator.stages.context import RunContext, Ticker

MANIFEST = "manifest.json"
API_USERS = "api-users.csv"
LAZY_TALLY = "lazy (left to the workflow: lazy.csv)"  # a skip tally: the lazy cohort is in no import file
ORGANIZATIONS = "organizations.csv"
BATCH = 500  # users read, written and committed together
SOCIAL_BY_API = "social identities (not in the files: api-users.csv's users get them by the API path)"


def social_not_carried(provider: str) -> str:
    """The manifest's ``not_carried`` entry for a Clerk account on a mapped provider (or of a shape naming none)
    that no Kinde identity can carry, by file or by the API: counted, as each user is named in the warnings."""
    what = (
        "external accounts naming no provider"
        if provider == "unknown"
        else f"{provider} accounts with neither email nor provider user id"
    )
    return f"{what} (not linked; each user named in the warnings)"


@dataclass(frozen=True)
class FileRequest:
    """What ``migrator export`` was asked for."""

    out: Path
    fmt: FileFormat
    max_bytes: int = 49 * 1000 * 1000
    dry_run: bool = False


@dataclass
class ExportOutcome:
    """What the files hold; ``manifest.json`` is this, as JSON."""

    run_id: int
    format: str
    out: str
    users: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)
    users_by_file_format: dict[str, int] = field(default_factory=dict)
    hashing_methods: dict[str, dict[str, int]] = field(default_factory=dict)
    api_path: dict[str, int] = field(default_factory=dict)  # reason -> users, listed in api-users.csv
    skipped: dict[str, int] = field(default_factory=dict)  # skip reason -> users (as a run would skip them)
    not_carried: dict[str, int] = field(default_factory=dict)  # data the files leave out, per user
    social_identities: dict[str, int] = field(default_factory=dict)  # oauth2 type -> identities in the files
    organizations: int = 0
    roles_to_create: list[str] = field(default_factory=list)
    dry_run: bool = False
    unaccounted: list[str] = field(default_factory=list)  # Clerk users the fetch could not account for
    reports: dict[str, str] = field(default_factory=dict)  # report name -> path, as a run's output lists them

    @property
    def exit_code(self) -> int:
        """0: every Clerk user is in a file, in api-users.csv or skipped with a reason."""
        return EXIT_FAILURES if self.unaccounted else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Writers:
    """One ``FileParts`` per target, created when the first user needs it."""

    def __init__(self, request: FileRequest) -> None:
        self.request = request
        self.parts: dict[str, FileParts] = {}

    def get(self, key: str) -> FileParts:
        if key not in self.parts:
            stem, ext, header = _LAYOUT[key]
            self.parts[key] = FileParts(
                self.request.out,
                stem,
                ext,
                self.request.max_bytes,
                header,
                dry_run=self.request.dry_run,
                single=key == Target.API,
            )
        return self.parts[key]

    def close(self) -> list[dict[str, Any]]:
        listed = []
        for key in sorted(self.parts, key=list(_LAYOUT).index):  # the order to import them in
            parts = self.parts[key]
            parts.close()
            listed.extend({"name": p.name, "format": key, "users": p.users, "bytes": p.bytes} for p in parts.parts)
        return listed


def _csv_text(columns: Iterable[str], rows: Iterable[Mapping[str, str]], header: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _api_user_line(clerk_id: str, reason: str) -> bytes:
    """A line of api-users.csv: a list for people (spreadsheet-safe cells, ``people_csv``) that
    ``run --only-file`` also reads back, through the reader that strips the guard."""
    buffer = io.StringIO()
    write_csv(buffer, [(clerk_id, reason)], lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


_LAYOUT: dict[str, tuple[str, str, bytes]] = {
    Target.KINDE_NDJSON: ("kinde-users", "ndjson", b""),
    Target.KINDE_CSV: ("kinde-users", "csv", _csv_text(CSV_COLUMNS, [], header=True)),
    Target.FUSIONAUTH: ("fusionauth-users", "ndjson", b""),
    "memberships": ("kinde-memberships", "csv", _csv_text(MEMBERSHIP_COLUMNS, [], header=True)),
    Target.API: ("api-users", "csv", b"clerk_id,reason\n"),
}


_SINGLE_FILES = frozenset({MANIFEST, API_USERS, ORGANIZATIONS})
_PART_PREFIXES = tuple(f"{stem}-" for stem, _, _ in _LAYOUT.values())


def write_import_files(ctx: RunContext, request: FileRequest) -> ExportOutcome:
    """Write every staged user of the run to its file (or api-users.csv), then the manifest."""
    if not request.dry_run:
        _prepare_out(request.out)
    outcome = ExportOutcome(ctx.run.id, request.fmt.value, str(request.out), dry_run=request.dry_run)
    writers = _Writers(request)
    tallies: dict[str, Counter[str]] = {
        "by": Counter(), "api": Counter(), "skip": Counter(), "nc": Counter(), "social": Counter(),
    }  # fmt: skip
    methods: dict[str, Counter[str]] = {}
    total, ticker = ctx.journal.users.staged_count(ctx.run.id), Ticker()
    ctx.emit(PhaseStarted("files", total))
    rows, done = ctx.journal.users.all(ctx.run.id, batch=BATCH), 0
    try:
        while batch := list(islice(rows, BATCH)):
            with ctx.journal.transaction():  # one commit per batch, not one per user marked for the API path
                for row in batch:
                    _write_user(ctx, request, row, writers, tallies, methods)
            done += len(batch)
            if ticker.due():
                ctx.emit(PhaseAdvanced("files", done, total))
        outcome.users = total
    finally:
        outcome.files = writers.close()
    _fill(outcome, tallies, methods)
    outcome.unaccounted = list(ctx.notes)  # a fetch gap: the files miss users, and the exit is not 0
    _write_reports(ctx, request, outcome)
    _finish_files(ctx, request, outcome)
    ctx.emit(PhaseAdvanced("files", total, total))
    ctx.emit(PhaseFinished("files"))
    return outcome


def _write_user(
    ctx: RunContext,
    request: FileRequest,
    row: UserRow,
    writers: _Writers,
    tallies: dict[str, Counter[str]],
    methods: dict[str, Counter[str]],
) -> None:
    if row.state == UserState.SKIPPED:
        tallies["skip"][row.skip_reason or "skipped"] += 1
        return
    if row.state == UserState.LAZY:  # left to Kinde's lazy workflow (lazy.csv): no file creates it
        tallies["skip"][LAZY_TALLY] += 1
        return
    plan = plan_from_record(row.clerk_id, json.loads(row.plan))
    tallies["nc"].update(social_not_carried(p) for p in {item.provider for item in plan.social_not_carried})
    password = _password(ctx, row)
    placement = place(plan, password, request.fmt)
    target = placement.target
    if target == Target.API:
        writers.get(Target.API).write(_api_user_line(plan.clerk_id, placement.reason or ""))
        if not request.dry_run:
            ctx.journal.exports.mark_api_path(ctx.run.id, [plan.clerk_id])
        tallies["api"][placement.reason or "api"] += 1
        if plan.social:
            tallies["nc"][SOCIAL_BY_API] += 1
        return
    orgs = _orgs(ctx, plan.clerk_id)
    if target == Target.KINDE_NDJSON:
        chunk = json.dumps(ndjson_record(plan, password, orgs), separators=(",", ":")).encode() + b"\n"
    elif target == Target.KINDE_CSV:
        chunk = _csv_text(CSV_COLUMNS, csv_rows(plan, password, orgs))
    else:
        assert password is not None
        chunk = json.dumps(fusionauth_record(plan, password), separators=(",", ":")).encode() + b"\n"
        if orgs:
            writers.get("memberships").write(_csv_text(MEMBERSHIP_COLUMNS, membership_rows(plan.clerk_id, orgs)))
    writers.get(target).write(chunk)
    tallies["by"][target] += 1
    methods.setdefault(target, Counter())[password.method if password else "none"] += 1
    if plan.picture:
        tallies["nc"]["picture (no import file has a picture field)"] += 1
    if target == Target.KINDE_NDJSON:  # place() lets social identities only into the NDJSON
        tallies["social"].update(social_record(s)["type"] for s in plan.social)


def _password(ctx: RunContext, row: UserRow) -> PasswordImport | None:
    """Translated again from the export row; only when staging decided the password is imported."""
    return None if row.password_method is None else ctx.password_import(row.clerk_id)


def _orgs(ctx: RunContext, clerk_id: str) -> list[OrgRoles]:
    by_org: dict[str, list[str]] = {}
    for org_id, role_key in ctx.journal.organizations.memberships_of(ctx.run.id, clerk_id):
        by_org.setdefault(org_id, []).append(role_key)
    return [OrgRoles(org_id, tuple(roles)) for org_id, roles in by_org.items()]


def _fill(outcome: ExportOutcome, tallies: dict[str, Counter[str]], methods: dict[str, Counter[str]]) -> None:
    outcome.users_by_file_format = dict(tallies["by"])
    outcome.hashing_methods = {target: dict(counts) for target, counts in methods.items()}
    outcome.api_path = dict(tallies["api"])
    outcome.skipped = dict(tallies["skip"])
    outcome.not_carried = dict(tallies["nc"])
    outcome.social_identities = dict(tallies["social"])


def _finish_files(ctx: RunContext, request: FileRequest, outcome: ExportOutcome) -> None:
    """organizations.csv (Kinde's organization import: name,id), the roles to create, the manifest."""
    organizations = [json.loads(org.body) for org in ctx.journal.organizations.all(ctx.run.id)]
    outcome.organizations = len(organizations)
    outcome.roles_to_create = [role.key for role in ctx.journal.organizations.roles(ctx.run.id)]
    if request.dry_run:
        return
    rows = [{"name": org["name"], "id": org["external_id"]} for org in organizations]
    with open_private(request.out / ORGANIZATIONS) as handle:
        handle.write(_csv_text(ORGANIZATION_COLUMNS, rows, header=True))
    if not any(f["format"] == Target.API for f in outcome.files):
        with open_private(request.out / API_USERS) as handle:  # always present, so --only-file can be given
            handle.write(_LAYOUT[Target.API][2])
    with open_private(request.out / MANIFEST) as handle:
        handle.write(json.dumps(outcome.to_json(), indent=2).encode())


def _write_reports(ctx: RunContext, request: FileRequest, outcome: ExportOutcome) -> None:
    """The run folder's reports, as a run leaves them: summary.json (the manifest's counts; a verify adds
    its own), skipped.csv, mfa-reenrol.csv. Password resets are in api-users.csv (the API path requests
    them), so the export writes no password-resets.csv. Written for a dry run too, as a dry run's are."""
    folder = run_dir(ctx.settings.state_dir, ctx.run.id)
    skipped = write_skipped(ctx.journal, ctx.run.id, folder)
    mfa = write_mfa_report(ctx.journal, ctx.run.id, ctx.settings.state_dir, dry_run=request.dry_run)
    outcome.reports = {"summary": str(folder / SUMMARY), "skipped": str(skipped), "mfa_reenrol": str(mfa)}
    if (lazy := write_lazy_report(ctx.journal, ctx.run.id, ctx.settings.state_dir)) is not None:
        outcome.reports["lazy"] = str(lazy)
    if not request.dry_run:
        outcome.reports["password_resets"] = str(request.out / API_USERS)
    write_summary(folder, outcome.to_json())


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out must be a directory")
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output directory ({exc.strerror})") from None
    stale = sorted(p.name for p in out.iterdir() if p.name in _SINGLE_FILES or p.name.startswith(_PART_PREFIXES))
    for name in stale:  # a resumed or repeated export rewrites the whole set: no part of an older one stays
        (out / name).unlink()
