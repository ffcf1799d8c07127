"""Stage (``migrator verify``): read every Kinde user back and compare it with what the run planned.

The verdict comes from Kinde's answers, never from the journal's belief: every Kinde user is listed
(500 a page, with its identities by type and value and its organizations: names, suspension, presence,
duplicates, identities and memberships are checked for everyone from the pages). Roles are read either
from every organization's member pages or, when the run has many organizations for its users, for the
sampled users' memberships one by one: whichever costs fewer requests (``roles_from_member_pages``).
The verified flags (the list carries none), properties and social identities
need one request per user: they are read for every user of a run of up to 2,000, beyond that for a
sample drawn by a printed seed, or for everyone with ``--deep`` (``verify_sample.py``); no finding is
claimed for a user the sample did not read. Kinde's answers are streamed into journal tables and
compared in SQL, or in batches of 500, so memory stays flat at a million users. Findings, each a row
of ``verify.csv`` (its ``checked_by`` names the read that found it):

* ``missing``: a Clerk user that should be in Kinde (not skipped) and is not;
* ``duplicated``: two Kinde users for one Clerk id, or for one email;
* ``unexpected``: a Kinde user with a Clerk-shaped ``provided_id`` this journal does not know (not for
  a canary: it chose a few users, the rest of Kinde is not its business);
* ``drift``: name, emails, phones, username, verified flags, suspension, memberships, roles or (where
  the run wrote them) property values that differ from the plan (users found in Kinde but not ours
  are only checked for presence);
* ``incomplete``: the journal says done, but Kinde lacks an identity, a membership, a social identity
  or a role permission we sent;
* ``not_carried``: a Clerk external account on a mapped provider (or of a shape naming none) that no
  Kinde identity could carry (no email or provider user id): the user cannot sign in with it (not
  blocking: nothing can add it; listed so that nobody is surprised);
* ``lazy_pending``: a user of the run's lazy cohort Kinde's workflow has not created yet (not blocking: it moves
  at its first sign-in, or `migrator lazy finish` gives it the fallback);
* ``api_pending`` (export runs): a user listed in api-users.csv not yet in Kinde: ``migrator run
  --only-file api-users.csv`` migrates it (not blocking: verify that run to prove it).

An export run (``migrator export``) is verified the same way once its files are imported: the files
created its users, so each is treated as sent (an absent identity or membership is incomplete).

Not checked: the password-reset request. Kinde's API has no read of ``is_password_reset_requested``
(only ``PATCH /api/v1/user`` answers it), so it cannot be proven from Kinde's answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from migrator.errors import EXIT_FAILURES, EXIT_OK, ApiError
from migrator.events import Notice, PhaseAdvanced, PhaseFinished, PhaseStarted
from migrator.journal import MembershipState, ReadBack, RunMode, UserState
from migrator.journal.verify import LAZY_PENDING
from migrator.kinde.client import gone
from migrator.kinde.scopes import VERIFY_ORGANIZATIONS, check_scopes
from migrator.mapping import normalized_identity
from migrator.report_files import VERIFY, run_dir, write_rows, write_summary
from migrator.stages.context import RunContext, Ticker, task_group
from migrator.stages.verify_extras import extra_user_findings, role_permission_findings
from migrator.stages.verify_fresh import stage_fresh_plans
from migrator.stages.verify_sample import (
    MEMBERSHIPS_FROM_MEMBERS,
    MEMBERSHIPS_FROM_PAGES,
    ROLES_EVERY,
    ROLES_FROM_MEMBERS,
    ROLES_SAMPLED,
    Coverage,
    Depth,
    choose_sample,
    new_seed,
    roles_from_member_pages,
)

KINDS = ("missing", "duplicated", "unexpected", "drift", "incomplete", "not_carried", "api_pending", "not_gone",
         LAZY_PENDING)  # fmt: skip
SHOWN_WHEN_FOUND = ("not_carried", LAZY_PENDING)  # counted only when a user has one (most runs have none)
BLOCKING = ("missing", "duplicated", "incomplete", "not_gone")  # any of these: exit 1
NOT_CHECKED = {"password_reset_requested": "Kinde's API does not return it for a user"}
VERIFY_COLUMNS = ("kind", "clerk_id", "kinde_id", "field", "expected", "found", "checked_by")
PER_USER_FIELDS = ("email_verified", "phone_verified", "social")  # and property:*: found by a per-user read
EXPAND = ("identities", "organizations")  # each user's identities (type, value) and organization codes
READ_PHASE, IDENTITIES_PHASE, MEMBERS_PHASE = "Read Kinde users", "Read identities", "Read memberships"
ROLES_UNREAD = json.dumps(None)  # kinde_members.roles of a membership the users pages listed: roles not read
BATCH = 500
EXAMPLES = 10

Finding = tuple[str, str | None, str | None, str, str, str]  # kind, clerk id, kinde id, field, expected, found


@dataclass
class Verification:
    """The verdict of one verify, from Kinde's answers."""

    verify_id: int
    run_id: int
    kinde_users: int
    expected_users: int
    counts: dict[str, int]
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    not_checked: dict[str, str] = field(default_factory=lambda: dict(NOT_CHECKED))
    reports: dict[str, str] = field(default_factory=dict)
    coverage: Coverage | None = None

    @property
    def passed(self) -> bool:
        return not any(self.counts.get(kind) for kind in BLOCKING)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.passed else EXIT_FAILURES

    def to_json(self) -> dict[str, Any]:
        return {
            "verify_id": self.verify_id,
            "run_id": self.run_id,
            "verdict": "passed" if self.passed else "failed",
            "kinde_users": self.kinde_users,
            "expected_users": self.expected_users,
            "counts": self.counts,
            "examples": self.examples,
            "not_checked": self.not_checked,
            **({"coverage": self.coverage.to_json()} if self.coverage else {}),
            "reports": self.reports,
            "exit_code": self.exit_code,
        }


async def verify(ctx: RunContext, *, fresh: bool = False, depth: Depth | None = None) -> Verification:
    """Read Kinde back, compare, record the findings and write verify.csv and summary.json.

    ``fresh``: compare with Clerk's users as they are now (re-read) rather than the run's staged plans;
    ``depth``: which users are read one by one (default: all up to 2,000, else a sample of 2,000)."""
    journal, run = ctx.journal, ctx.run
    verify_id = journal.verify.start(run.id)
    if run.mode == RunMode.UNDO:
        return await _verify_undo(ctx, verify_id)
    if fresh:
        await stage_fresh_plans(ctx, verify_id)
        journal.verify.find_clerk_changes(verify_id, run.id)
    depth = depth or Depth()
    listed = await _read_users(ctx, verify_id, EXPAND)
    journal.verify.match_kinde_users(verify_id, run.id)
    chosen = _sample(ctx, verify_id, depth)
    coverage = await _read_identities_and_compare(ctx, verify_id, chosen)
    if _imported(ctx):
        await _find_imported_organizations(ctx)
    # a page that listed no organizations for a user: its memberships are read from the member pages
    chosen_pages = member_pages_chosen(ctx, depth)
    member_pages = chosen_pages or not listed
    if journal.organizations.all(run.id):
        roles = ROLES_FROM_MEMBERS if member_pages else ROLES_EVERY if chosen[0] is None else ROLES_SAMPLED
        # where the member pages are read they list every member of the run's organizations: they decide
        memberships = MEMBERSHIPS_FROM_MEMBERS if member_pages else MEMBERSHIPS_FROM_PAGES
        coverage = replace(coverage, memberships=memberships, roles=roles)
    if member_pages and not chosen_pages and journal.organizations.all(run.id):
        # the scope asked for up front was the role reads': the member pages are a fallback, checked before them
        check_scopes(
            ctx.kinde.tokens.scopes,
            VERIFY_ORGANIZATIONS,
            "Kinde's users pages listed no organizations, so verify reads every organization's member pages",
        )
    if member_pages:
        await _read_members(ctx, verify_id)
    await _compare_memberships(ctx, verify_id, None if member_pages else chosen[0], read_roles=not member_pages)
    journal.verify.find_extra_memberships(verify_id, run.id)
    journal.verify.record_findings(verify_id, await role_permission_findings(ctx))
    # a canary's users are a few of many: Kinde users of other runs (or of nobody) are not its business
    journal.verify.find_missing_duplicated_unexpected(verify_id, run.id, unexpected=run.mode != RunMode.CANARY)
    journal.verify.settle_lazy_cohort(verify_id, run.id)  # the lazy cohort not in Kinde yet: not missing
    if _imported(ctx):
        journal.verify.find_api_pending(verify_id, run.id)
    kinds = [kind for kind in KINDS if kind != "not_gone" and (kind != "api_pending" or _imported(ctx))]
    return _conclude(ctx, verify_id, kinds, journal.users.expected_count(run.id), coverage)


async def _verify_undo(ctx: RunContext, verify_id: int) -> Verification:
    """An undo's verify: every Kinde user read back, and each user the undo counted deleted or already gone
    must be absent (``not_gone`` otherwise). Nothing else of Kinde is the undo's business."""
    await _read_users(ctx, verify_id)
    ctx.journal.verify.find_undone_present(verify_id, ctx.run.id)
    return _conclude(ctx, verify_id, ["not_gone"], ctx.journal.verify.undone_user_count(ctx.run.id))


def _conclude(
    ctx: RunContext, verify_id: int, kinds: list[str], expected_users: int, coverage: Coverage | None = None
) -> Verification:
    """The verdict from the recorded findings: journaled, verify.csv and summary.json written."""
    journal, run = ctx.journal, ctx.run
    found = journal.verify.finding_counts(verify_id)
    kinds = [kind for kind in kinds if kind not in SHOWN_WHEN_FOUND or found.get(kind)]
    counts = {kind: 0 for kind in kinds} | found
    result = Verification(
        verify_id=verify_id,
        run_id=run.id,
        kinde_users=journal.verify.kinde_user_count(verify_id),
        expected_users=expected_users,
        counts=counts,
        examples={kind: [asdict(row) for row in journal.verify.findings(verify_id, kind, EXAMPLES)] for kind in kinds},
        coverage=coverage,
    )
    for example in (e for kind in result.examples.values() for e in kind):
        example.pop("rowid", None)
    ended: dict[str, Any] = {"verdict": result.to_json()["verdict"], "counts": counts}
    journal.verify.end(verify_id, ended | ({"coverage": coverage.to_json()} if coverage else {}))
    folder = run_dir(ctx.settings.state_dir, run.id)
    rows = (
        [getattr(row, name) for name in VERIFY_COLUMNS[:-1]] + [checked_by(row.field, coverage)]
        for row in journal.verify.findings(verify_id)
    )
    result.reports["verify"] = str(write_rows(folder / VERIFY, VERIFY_COLUMNS, rows))
    summary = {k: v for k, v in result.to_json().items() if k not in ("examples", "reports")}
    result.reports["summary"] = str(write_summary(folder, verify=summary))
    return result


def member_pages_chosen(ctx: RunContext, depth: Depth) -> bool:
    """Whether this verify reads the organizations' member pages for roles (``roles_from_member_pages``),
    from what the journal holds (so the scopes it needs are known before the first request). A canary's
    preflight asked for the member pages' scope: a canary reads them."""
    organizations = ctx.journal.organizations.all(ctx.run.id)
    if not organizations or ctx.run.mode == RunMode.CANARY:
        return bool(organizations)
    memberships = sum(ctx.journal.organizations.membership_counts(ctx.run.id).values())
    users = ctx.journal.users.expected_count(ctx.run.id)
    return roles_from_member_pages(len(organizations), memberships, users, depth)


def checked_by(name: str, coverage: Coverage | None = None) -> str:
    """Which read found a finding on field ``name``: the report says which check covered whom."""
    if name in PER_USER_FIELDS or name.startswith("property:"):
        return "per-user read"
    if name == "membership":
        return coverage.memberships or MEMBERSHIPS_FROM_PAGES if coverage else MEMBERSHIPS_FROM_MEMBERS
    if name == "roles":
        return ROLES_FROM_MEMBERS if not coverage or coverage.roles == ROLES_FROM_MEMBERS else "membership role reads"
    if name in ("role", "role_permission"):
        return "role reads"
    if name == "clerk_user":
        return "Clerk users"
    return "user pages"


async def _read_users(ctx: RunContext, verify_id: int, expand: Sequence[str] = ()) -> bool:
    """Every Kinde user, page by page, into the journal (with ``expand``: its identities and memberships as
    listed). False: ``organizations`` was asked for and some user came without it (memberships not listed)."""
    total = ctx.journal.users.expected_count(ctx.run.id)
    ctx.emit(PhaseStarted(READ_PHASE, total))
    read, ticker, listed = 0, Ticker(), True
    async for page in ctx.kinde.user_pages(expand):
        if "organizations" in expand:
            listed = _store_listed_memberships(ctx, verify_id, page) and listed
        ctx.journal.verify.store_kinde_users(
            verify_id,
            [
                (
                    user["id"],
                    _text(user.get("provided_id")),
                    _text(user.get("email")),
                    _text(user.get("first_name")),
                    _text(user.get("last_name")),
                    int(user.get("is_suspended") is True),
                    _listed_identities(user.get("identities")) if "identities" in expand else None,
                )
                for user in page
            ],
        )
        read += len(page)
        if ticker.due():
            ctx.emit(PhaseAdvanced(READ_PHASE, read, total))
            ctx.emit_pacing()
    ctx.emit(PhaseAdvanced(READ_PHASE, read, total))
    ctx.emit(PhaseFinished(READ_PHASE))
    return listed


def _store_listed_memberships(ctx: RunContext, verify_id: int, page: list[dict[str, Any]]) -> bool:
    """Each user's organization codes as the page listed them (roles not read yet); False when a user
    came without a list of them."""
    members: dict[str, list[tuple[str, Any]]] = {}
    listed = True
    for user in page:
        codes = user.get("organizations")
        if not isinstance(codes, list):
            listed = False
            continue
        for code in codes:
            if isinstance(code, str) and code:
                members.setdefault(code, []).append((user["id"], None))
    for code, rows in members.items():
        ctx.journal.verify.store_kinde_members(verify_id, code, rows)
    return listed


def _listed_identities(items: Any) -> list[tuple[str, str, None]] | None:
    """(type, value, None) of each identity a users page listed (the list has no verified flags)."""
    if not isinstance(items, list):
        return None
    return [
        (item["type"], item["identity"], None)
        for item in items
        if isinstance(item, dict) and isinstance(item.get("type"), str) and isinstance(item.get("identity"), str)
    ]


Sample = tuple[set[str] | None, int, str, int | None]  # Clerk ids read one by one (None: all), population, mode, seed


def _sample(ctx: RunContext, verify_id: int, depth: Depth) -> Sample:
    """(Clerk ids to read one by one, None: all; how many users the per-user checks apply to; mode; seed)."""
    def ids() -> Iterator[str]:
        return ctx.journal.verify.read_back_ids(verify_id, ctx.run.id, imported=_imported(ctx))

    population = sum(1 for _ in ids())
    if depth.deep:
        return None, population, "deep", None
    if population <= depth.sample:
        return None, population, "every", None
    seed = depth.seed if depth.seed is not None else new_seed()
    chosen = choose_sample(ids(), depth.sample, seed)
    ctx.emit(
        Notice(
            f"per-user reads (verified flags, properties, social identities): {len(chosen):,} of {population:,} users"
            f" sampled with seed {seed} (`--seed {seed}` draws the same sample; `--deep` reads every user)"
        )
    )
    return chosen, population, "sample", seed


async def _read_identities_and_compare(ctx: RunContext, verify_id: int, sample: Sample) -> Coverage:
    """Per user this journal created: compare it with its plan, from the page's identities, and for the
    users chosen (``sample``) from its identities read one by one (paced by the limiter), with its extras."""
    chosen, population, mode, seed = sample
    ctx.emit(PhaseStarted(IDENTITIES_PHASE, population))
    gate = asyncio.Semaphore(ctx.settings.concurrency)
    after, done, read, ticker = ("", ""), 0, 0, Ticker()
    imported = _imported(ctx)
    while rows := ctx.journal.verify.users_to_read_back(verify_id, ctx.run.id, after, BATCH, imported=imported):
        after = (rows[-1].clerk_id, rows[-1].kinde_id)
        to_read = [row for row in rows if chosen is None or row.clerk_id in chosen]
        found = await _read_batch(ctx, [row.kinde_id for row in to_read], gate)
        read += len({row.clerk_id for row in to_read})
        vanished = [(kinde_id, None) for kinde_id, identities in found.items() if identities is None]
        ctx.journal.verify.store_identities(verify_id, vanished)
        listed = {row.kinde_id: _stored_identities(row) for row in rows if row.kinde_id not in found}
        identities = listed | found
        present = [row for row in rows if not (row.kinde_id in found and found[row.kinde_id] is None)]
        findings = [f for row in present for f in _user_findings(row, identities, imported)]
        read_present = [row for row in to_read if found[row.kinde_id] is not None]
        findings += await extra_user_findings(ctx, read_present, gate, imported=imported)
        ctx.journal.verify.record_findings(verify_id, findings)
        done += len(rows)
        if ticker.due():
            ctx.emit(PhaseAdvanced(IDENTITIES_PHASE, done))
            ctx.emit_pacing()
    ctx.emit(PhaseAdvanced(IDENTITIES_PHASE, done))
    ctx.emit(PhaseFinished(IDENTITIES_PHASE))
    pages = ctx.journal.verify.kinde_user_count(verify_id)
    return Coverage(pages=pages, read=read, of=population, mode=mode, seed=seed)


def _stored_identities(row: ReadBack) -> list[tuple[str, str, bool | None]] | None:
    """The identities the users page listed for this user (None: the page listed none to compare)."""
    if row.identities is None:
        return None
    return [(type_, value, confirmed) for type_, value, confirmed in json.loads(row.identities)]


async def _read_batch(
    ctx: RunContext, kinde_ids: list[str], gate: asyncio.Semaphore
) -> dict[str, list[tuple[str, str, bool | None]] | None]:
    """The identities of a batch of users, read side by side (one failure ends them all)."""
    found: dict[str, list[tuple[str, str, bool | None]] | None] = {}

    async def read(kinde_id: str) -> None:
        async with gate:
            found[kinde_id] = await _identities_or_none(ctx, kinde_id)

    async with task_group() as group:
        for kinde_id in kinde_ids:
            group.create_task(read(kinde_id))
    return found


async def _identities_or_none(ctx: RunContext, kinde_id: str) -> list[tuple[str, str, bool | None]] | None:
    """None when the user was deleted between the list and this read (it then counts as missing)."""
    try:
        return await ctx.kinde.user_identities(kinde_id)
    except ApiError as exc:
        if gone(exc, "user"):
            ctx.emit(Notice(f"Kinde user {kinde_id} vanished while being verified: {exc}", level="warning"))
            return None
        raise


def _imported(ctx: RunContext) -> bool:
    """An export run: its users were created by importing its files, not by this journal's requests."""
    return ctx.run.mode == RunMode.EXPORT


def _user_findings(row: ReadBack, found: dict[str, Any], imported: bool = False) -> list[Finding]:
    kinde_id, clerk_id = row.kinde_id, row.clerk_id
    plan = json.loads(row.plan)
    not_carried: list[Finding] = [
        ("not_carried", clerk_id, kinde_id, "social", item["provider"], item["reason"])
        for item in plan.get("social_not_carried") or ()
    ]
    return [
        (kind, clerk_id, kinde_id, name, expected, got)
        for kind, name, expected, got in user_differences(
            plan, imported or row.state == UserState.DONE, _listed(row), found[kinde_id]
        )
    ] + not_carried


def _listed(row: ReadBack) -> dict[str, Any]:
    """Kinde's record as listed, in the shape ``user_differences`` compares."""
    return {"first_name": row.first_name, "last_name": row.last_name, "is_suspended": row.is_suspended}


def user_differences(
    plan: dict[str, Any], done: bool, kinde: Any, identities: Sequence[tuple[str, str, bool | None]] | None
) -> list[tuple[str, str, str, str]]:
    """(kind, field, expected, found) for one user: drift, or incomplete when the journal says done
    and an identity we sent is absent. ``kinde`` has first_name, last_name and is_suspended;
    ``identities`` None: none were read (nothing claimed about them), a confirmed flag None: not read."""
    differences: list[tuple[str, str, str, str]] = []
    for name, expected, got in (
        ("given_name", plan.get("given_name"), kinde["first_name"]),
        ("family_name", plan.get("family_name"), kinde["last_name"]),
    ):
        if (expected or "") != (got or ""):
            differences.append(("drift", name, expected or "", got or ""))
    if bool(plan.get("suspended")) != bool(kinde["is_suspended"]):
        differences.append(("drift", "suspended", str(bool(plan.get("suspended"))), str(bool(kinde["is_suspended"]))))
    for kind in ("email", "phone", "username") if identities is not None else ():
        wanted = {
            normalized_identity(kind, i["value"]): bool(i["is_verified"]) for i in plan["identities"] if i["type"] == kind
        }
        held = {normalized_identity(kind, value): confirmed for type_, value, confirmed in identities if type_ == kind}
        for value in sorted(wanted.keys() - held.keys()):
            differences.append(("incomplete" if done else "drift", kind, value, ""))
        for value in sorted(held.keys() - wanted.keys()):
            differences.append(("drift", kind, "", value))
        for value in sorted(wanted.keys() & held.keys()):
            confirmed = held[value]
            if kind != "username" and confirmed is not None and confirmed != wanted[value]:
                differences.append(("drift", f"{kind}_verified", f"{value}: {wanted[value]}", f"{value}: {confirmed}"))
    return differences


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


async def _find_imported_organizations(ctx: RunContext) -> None:
    """Export runs: the import created the organizations (external id = Clerk org id); record their codes."""
    unknown = [org.clerk_org_id for org in ctx.journal.organizations.all(ctx.run.id) if not org.kinde_code]
    if not unknown:
        return
    codes = {o.get("external_id"): o.get("code") for o in await ctx.kinde.list_organizations()}
    for clerk_org_id in unknown:
        if isinstance(code := codes.get(clerk_org_id), str) and code:
            ctx.journal.organizations.record(ctx.run.id, clerk_org_id, code)


async def _read_members(ctx: RunContext, verify_id: int) -> None:
    """The members (and their roles) of each organization of the run that exists in Kinde."""
    codes = [org.kinde_code for org in ctx.journal.organizations.all(ctx.run.id) if org.kinde_code]
    ctx.emit(PhaseStarted(MEMBERS_PHASE, len(codes)))
    for done, code in enumerate(codes, 1):
        async for page in ctx.kinde.organization_member_pages(code):
            members = [(m["id"], [r for r in m.get("roles") or [] if isinstance(r, str)]) for m in page]
            ctx.journal.verify.store_kinde_members(verify_id, code, members)
        ctx.emit(PhaseAdvanced(MEMBERS_PHASE, done, len(codes)))
    ctx.emit(PhaseFinished(MEMBERS_PHASE))


async def _compare_memberships(
    ctx: RunContext, verify_id: int, chosen: set[str] | None, *, read_roles: bool
) -> None:
    """Planned memberships of users we created against Kinde's memberships, in batches. ``read_roles``: the
    roles of the memberships the users pages listed are read one by one, for the ``chosen`` users (None:
    all); a membership whose roles nobody read has no roles finding."""
    after, imported = ("", ""), _imported(ctx)
    gate = asyncio.Semaphore(ctx.settings.concurrency)
    while rows := ctx.journal.verify.membership_comparison(verify_id, ctx.run.id, after, imported=imported):
        after = (rows[-1].clerk_user_id, rows[-1].clerk_org_id)
        to_read = [
            (row.kinde_code or "", row.kinde_id)
            for row in rows
            if read_roles and row.roles == ROLES_UNREAD and (chosen is None or row.clerk_user_id in chosen)
        ]
        roles_read = await _read_member_roles(ctx, to_read, gate)
        findings: list[Finding] = []
        for row in rows:
            sent = imported or row.state in (MembershipState.DONE, MembershipState.EARLIER)
            ids = (row.clerk_user_id, row.kinde_id)
            if row.roles is None:
                findings.append(("incomplete" if sent else "drift", *ids, "membership", row.kinde_code, ""))
                continue
            listed = json.loads(row.roles)
            if listed is None:
                listed = roles_read.get((row.kinde_code or "", row.kinde_id))
            if listed is None:
                continue  # roles not read for this user: nothing claimed
            roles = sorted(listed)
            if roles != sorted({row.role_key} - {""}):
                where = f"{row.kinde_code}: "
                findings.append(("drift", *ids, "roles", where + row.role_key, where + ",".join(roles)))
        ctx.journal.verify.record_findings(verify_id, findings)


async def _read_member_roles(
    ctx: RunContext, memberships: list[tuple[str, str]], gate: asyncio.Semaphore
) -> dict[tuple[str, str], list[str]]:
    """The role keys of each (organization code, Kinde user id), read side by side (one failure ends them all)."""
    found: dict[tuple[str, str], list[str]] = {}

    async def read(code: str, kinde_id: str) -> None:
        async with gate:
            try:
                found[(code, kinde_id)] = await ctx.kinde.organization_user_roles(code, kinde_id)
            except ApiError as exc:
                if exc.status not in (400, 404):
                    raise
                # the membership ended between the page and this read: its roles are not claimed either way
                ctx.emit(Notice(f"Kinde did not list the roles of {kinde_id} in {code} ({exc}): not checked",
                                level="warning"))  # fmt: skip

    async with task_group() as group:
        for code, kinde_id in memberships:
            group.create_task(read(code, kinde_id))
    return found
