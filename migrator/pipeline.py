"""The migration, step by step. The only module that knows the order of the steps.

    preflight -> index export -> fetch (+ map, stage) -> conflicts -> lookup -> [confirm] -> load
    -> organizations -> summary

Every step reads its input from the journal and writes its result there, so a run that dies
anywhere continues with ``resume``: done users cost no API call, users whose create may have been
in flight are looked up again (never re-created blindly), and the fetch continues from its cursor.

Progress is reported through ``emit`` (see ``migrator.events``); nothing here prints.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from migrator import passwords
from migrator.clerk.client import ClerkClient
from migrator.clerk.export import ExportFile, row_problems
from migrator.config import Settings
from migrator.conflicts import resolve_conflicts
from migrator.errors import (
    AlreadyExists,
    ApiError,
    AuthError,
    InputError,
    JournalError,
    MigratorError,
    ProtocolError,
    ScopeError,
)
from migrator.events import Emit, Notice, Pacing, PhaseAdvanced, PhaseFinished, PhaseStarted
from migrator.journal import DuplicateExportRow, Journal, Run, now_iso
from migrator.kinde.client import BATCH_ADD_LIMIT, KindeClient, KindeUser, lookup_batches
from migrator.mapping import (
    MappingOptions,
    all_identity_keys,
    identity_keys,
    kinde_role_key,
    organization_body,
    plan_membership,
    plan_user,
    role_body,
)
from migrator.models import ExportRow, PasswordImport, Skip, UserPlan, plan_from_record, plan_to_record
from migrator.reconcile import key_of, record_lookup
from migrator.reports import (
    Plan,
    Summary,
    build_plan,
    build_summary,
    password_report_path,
    plan_warnings,
    write_password_report,
)

LOOKUP_CONCURRENCY = 4
COMMIT_INTERVAL = 0.25  # seconds between journal commits in the load stage
COMMIT_BATCH = 500
FATAL = (AuthError, ScopeError, ProtocolError)  # these stop the run: no other user would fare better


Confirm = Callable[[Plan], bool]


def file_fingerprint(path: Path) -> str:
    """sha256 of the export's bytes: resume refuses a changed export unless told otherwise."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Ticker:
    """Rate-limits progress events to ~10 a second; the last one is always sent."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._last = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False


class Migration:
    """One migration run over a journal. Construct, then ``await start/resume/retry_failed``."""

    def __init__(
        self,
        settings: Settings,
        journal: Journal,
        clerk: ClerkClient,
        kinde: KindeClient,
        emit: Emit,
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.clerk = clerk
        self.kinde = kinde
        self.emit = emit
        self.options = MappingOptions(
            unimportable_passwords=settings.unimportable_passwords,
            banned_users=settings.banned_users,
            role_map=settings.role_map,
            default_phone_region=settings.default_phone_region,
            salt_position=settings.salted_hash_salt_position,
        )
        self.export: ExportFile | None = None
        self._started = time.monotonic()

    # == entry points ============================================================================
    async def start(self, *, dry_run: bool, confirm: Confirm) -> Summary:
        export_path = self.settings.clerk_export
        if export_path is not None:
            self._open_export(export_path)
        run = self.journal.start_run(
            mode="dry-run" if dry_run else "run",
            fingerprint=self.settings.fingerprint(),
            summary=self.settings.mapping_summary(),
            export_path=str(export_path.resolve()) if export_path else None,
            export_fingerprint=file_fingerprint(export_path) if export_path else None,
        )
        self.emit(Notice(f"run {run.id} started ({run.mode}); journal {self.journal.path}"))
        return await self._drive(run, confirm)

    async def resume(self, run_id: int | None, *, allow_changed: bool, confirm: Confirm) -> Summary:
        run = self.journal.run(run_id)
        if run.dry_run:
            raise JournalError(
                f"run {run.id} was a dry run: there is nothing to resume; start a run with `migrator run`"
            )
        self._check_unchanged(run, allow_changed)
        if run.export_path:
            self._open_export(Path(run.export_path))
        # Users whose create may have been in flight when the run died: look them up again.
        with self.journal.transaction():
            self.journal.db.execute(
                "UPDATE users SET lookup = CASE lookup WHEN 'absent' THEN 'recheck' ELSE lookup END"
                " WHERE run_id = ? AND state = 'pending' AND created = 'pending'",
                (run.id,),
            )
            self.journal.set_run(run.id, status="running", ended_at=None)
        self.emit(Notice(f"resuming run {run.id}"))
        return await self._drive(run, confirm)

    async def retry_failed(self, run_id: int | None, *, allow_changed: bool, confirm: Confirm) -> Summary:
        run = self.journal.run(run_id)
        if run.dry_run:
            raise JournalError(f"run {run.id} was a dry run: nothing was attempted, so nothing failed")
        self._check_unchanged(run, allow_changed)
        if run.export_path:
            self._open_export(Path(run.export_path))
        with self.journal.transaction():
            retried = self.journal.db.execute(
                "UPDATE users SET state = 'pending', error_code = NULL, error_message = NULL, error_retryable = NULL,"
                " lookup = CASE WHEN created = 'pending' AND lookup = 'absent' THEN 'recheck' ELSE lookup END"
                " WHERE run_id = ? AND state = 'failed'",
                (run.id,),
            ).rowcount
            self.journal.db.execute(
                "UPDATE memberships SET state = 'pending' WHERE run_id = ? AND state = 'failed'", (run.id,)
            )
            self.journal.set_run(run.id, status="running", ended_at=None)
        self.emit(Notice(f"retrying {retried} failed user(s) of run {run.id}"))
        return await self._drive(run, confirm)

    # == the order of steps =======================================================================
    async def _drive(self, run: Run, confirm: Confirm) -> Summary:
        try:
            await self._preflight(run)
            if not run.fetch_done:
                if self.export is not None and self.journal.export_count(run.id) == 0:
                    self._index_export(run)
                await self._fetch(run)
                shared, skipped = resolve_conflicts(self.journal, run.id, self.settings.duplicate_identities)
                if shared:
                    self.emit(
                        Notice(
                            f"{shared} identities are shared by several Clerk users; {skipped} user(s) skipped"
                            f" (policy {self.settings.duplicate_identities}); see `migrator status` for who",
                            level="warning",
                        )
                    )
                self.journal.set_run(run.id, fetch_done=1)
            await self._lookup(run)
            with self.journal.transaction():
                self.journal.mark_memberships_done_earlier(run.id)
                self.journal.settle_unmigrated_memberships(run.id)
            plan = build_plan(self.journal, run.id, with_export=self.export is not None)
            for warning in plan_warnings(self.journal, plan, policy=self.settings.unimportable_passwords):
                self.emit(Notice(warning, level="warning"))
            write_password_report(self.journal, run.id, self.settings.state_dir)
            if run.dry_run:
                return self._finish(run, plan, status="completed")
            if plan.writes_needed and not confirm(plan):
                self.emit(
                    Notice(
                        f"nothing was written: the operator declined (`migrator resume {run.id}` asks again)",
                        level="warning",
                    )
                )
                return self._finish(run, plan, status="cancelled")
            await self._load(run)
            if self.settings.migrate_organizations:
                await self._organizations(run)
            return self._finish(run, plan, status="completed")
        except (asyncio.CancelledError, KeyboardInterrupt):
            self.journal.set_run(run.id, status="interrupted")
            raise
        except MigratorError:
            self.journal.set_run(run.id, status="failed")
            raise
        finally:
            if self.export is not None:
                self.export.close()

    # == steps =====================================================================================
    def _open_export(self, path: Path) -> None:
        if not path.is_file():
            raise InputError(f"{path}: the Clerk export does not exist (CLERK_EXPORT / --clerk-export)")
        self.export = ExportFile(path)

    def _check_unchanged(self, run: Run, allow_changed: bool) -> None:
        changes = []
        if run.config_fingerprint != self.settings.fingerprint():
            now = self.settings.mapping_summary()
            differing = sorted(k for k in now if run.config_summary.get(k) != now[k])
            changes.append("settings changed: " + ", ".join(differing or ["(unknown)"]))
        if run.export_path:
            path = Path(run.export_path)
            if not path.is_file():
                changes.append(f"the export {path} is gone")
            elif file_fingerprint(path) != run.export_fingerprint:
                changes.append(f"the export {path} changed since the run began")
        if changes and not allow_changed:
            raise JournalError(
                f"run {run.id} cannot resume as is: "
                + "; ".join(changes)
                + ". Re-run with --allow-changed to continue anyway"
            )
        for change in changes:
            self.emit(Notice(f"continuing although {change}", level="warning"))

    async def _preflight(self, run: Run) -> None:
        """Prove both sets of credentials before anything else happens."""
        await self.kinde.tokens.token()
        granted = self.kinde.tokens.scopes
        if granted is not None:
            needed = {"read:users"}
            if not run.dry_run:
                needed |= {"create:users", "update:users", "update:user_passwords"}
                if self.settings.migrate_organizations:
                    needed |= {
                        "read:roles",
                        "create:roles",
                        "read:organizations",
                        "create:organizations",
                        "create:organization_users",
                    }
            missing = sorted(needed - granted)
            if missing:
                raise ScopeError(
                    "the Kinde M2M application lacks scope(s) "
                    + ", ".join(missing)
                    + ": grant them in Kinde (Settings > Applications > your M2M app > APIs > Kinde Management API > Scopes)",
                    scope=missing[0],
                    service="Kinde",
                    status=403,
                )
        count = await self.clerk.count_users()
        self.journal.set_run(run.id, source_count=count)

    def _index_export(self, run: Run) -> None:
        assert self.export is not None
        self.emit(PhaseStarted("export"))
        batch: list[tuple[str, int, int, str | None, bool]] = []
        done = 0
        ticker = _Ticker()
        try:
            with self.journal.transaction():
                # Duplicate ids are caught by the journal's unique key: no set of a million ids here.
                for entry in self.export.scan(check_duplicates=False):
                    batch.append((entry.user_id, entry.offset, entry.row_number, entry.hasher, entry.has_digest))
                    if len(batch) >= 5000:
                        self.journal.add_export_entries(run.id, batch)
                        done += len(batch)
                        batch.clear()
                        if ticker.due():
                            self.emit(PhaseAdvanced("export", done))
                self.journal.add_export_entries(run.id, batch)
                done += len(batch)
        except DuplicateExportRow as dup:
            raise InputError(
                f"{self.export.path}: row {dup.row_number}: user id {dup.user_id!r} already appears at row"
                f" {dup.first_row}; the export is corrupt (export it again)"
            ) from None
        self.emit(PhaseAdvanced("export", done, done))
        self.emit(PhaseFinished("export"))

    def _export_row(self, run_id: int, clerk_id: str) -> ExportRow | None:
        if self.export is None:
            return None
        entry = self.journal.export_entry(run_id, clerk_id)
        if entry is None:
            return None
        return self.export.row_at(entry["offset"], entry["row_number"], expected_id=clerk_id)

    def _stage_row(
        self, run_id: int, seq: int, user: dict[str, Any]
    ) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        clerk_id = user["id"]
        row = self._export_row(run_id, clerk_id)
        result = plan_user(user, row, self.options)
        problems: list[tuple[str, str, str]] = []
        if row is not None and self.export is not None:
            # Bad cells in the export (an address that is not an email, ...) are reported, never fatal.
            problems.extend((clerk_id, "warning", f"{self.export.path}: {p}") for p in row_problems(row))
        base = {
            "clerk_id": clerk_id,
            "seq": seq,
            "hasher": row.password_hasher if row else None,
        }
        if isinstance(result, Skip):
            problems.append((clerk_id, "skipped", f"{result.reason}: {result.detail}".rstrip(": ")))
            password_problem = email_key = None
            if result.reason == "password_not_importable":
                # Still listed in the password report, with the address the team writes to.
                password_problem = result.detail
                kept = plan_user(user, row, replace(self.options, unimportable_passwords="reset"))
                email_key = identity_keys(kept).get("email") if isinstance(kept, UserPlan) else None
            return {
                **base,
                "plan": None,
                "email_key": email_key,
                "username_key": None,
                "phone_key": None,
                "password_method": None,
                "password_problem": password_problem,
                "state": "skipped",
                "lookup": "n/a",
                "created": "n/a",
                "password": "n/a",
                "flags": "n/a",
                "skip_reason": result.reason,
                "skip_detail": result.detail,
            }, problems
        keys = identity_keys(result)
        problems.extend((clerk_id, "warning", warning) for warning in result.warnings)
        has_flags = result.request_password_reset or result.suspended
        return {
            **base,
            "plan": json.dumps({**plan_to_record(result), "keys": all_identity_keys(result)}),
            "email_key": keys.get("email"),
            "username_key": keys.get("username"),
            "phone_key": keys.get("phone"),
            "password_method": result.password.method if result.password else None,
            "password_problem": result.password_problem.reason if result.password_problem else None,
            "state": "pending",
            "lookup": "pending",
            "created": "pending",
            "password": "pending" if result.password else ("reset" if result.request_password_reset else "n/a"),
            "flags": "pending" if has_flags else "n/a",
            "skip_reason": None,
            "skip_detail": None,
        }, problems

    async def _fetch(self, run: Run) -> None:
        """Page users from Clerk (prefetching the next page while mapping this one) into the journal."""
        total = self.journal.run(run.id).source_count
        cursor, seq = self.journal.last_staged(run.id)
        self.emit(PhaseStarted("fetch", total))
        pages: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(maxsize=2)

        async def produce() -> None:
            async for page in self.clerk.iter_user_pages(start_after=cursor, start_offset=seq):
                await pages.put(page)
            await pages.put(None)

        producer = asyncio.create_task(produce())
        staged = self.journal.staged_count(run.id)
        try:
            while (page := await pages.get()) is not None:
                rows, problems = [], []
                for user in page:
                    row, user_problems = self._stage_row(run.id, seq, user)
                    rows.append(row)
                    problems.extend(user_problems)
                    seq += 1
                with self.journal.transaction():
                    staged += self.journal.stage_users(run.id, rows)
                    self.journal.add_problems(run.id, problems)
                    self.journal.set_run(run.id, fetch_cursor=page[-1]["id"])
                self.emit(PhaseAdvanced("fetch", staged, total))
                self._emit_pacing()
            await producer
        finally:
            producer.cancel()
        if self.settings.migrate_organizations:
            await self._fetch_organizations(run)
        fresh_total = await self.clerk.count_users()
        gap = fresh_total - staged
        if gap:
            self.emit(
                Notice(
                    f"Clerk reports {fresh_total} users but {staged} distinct users were fetched"
                    f" ({'missing ' + str(gap) if gap > 0 else 'extra ' + str(-gap)}); users created or deleted"
                    " during the fetch are the usual cause: run again later to pick up new users",
                    level="warning",
                )
            )
        self.emit(PhaseFinished("fetch"))

    async def _fetch_organizations(self, run: Run) -> None:
        problems = []
        with self.journal.transaction():
            async for role in self.clerk.iter_roles():
                try:
                    key = kinde_role_key(str(role.get("key") or ""), self.options)
                except ValueError as exc:
                    problems.append(("-", "warning", f"role {role.get('id')}: {exc}"))
                    continue
                self.journal.stage_role(run.id, key, role_body({**role, "key": key}))
            async for org in self.clerk.iter_organizations():
                if isinstance(org.get("id"), str):
                    self.journal.stage_organization(run.id, org["id"], organization_body(org))
            async for membership in self.clerk.iter_memberships():
                try:
                    user_id, planned = plan_membership(membership, self.options)
                except ValueError as exc:
                    problems.append(("-", "warning", f"membership {membership.get('id')}: {exc}"))
                    continue
                self.journal.stage_role(run.id, planned.role_key, {"name": planned.role_key, "key": planned.role_key})
                self.journal.stage_membership(run.id, user_id, planned.clerk_org_id, planned.role_key)
            self.journal.add_problems(run.id, problems)

    async def _lookup(self, run: Run) -> None:
        """Find users that already exist in Kinde, in batches, so that no run creates a second one."""
        todo = self.journal.count(run.id, "state = 'pending' AND lookup IN ('pending', 'recheck')")
        if not todo:
            return
        self.emit(PhaseStarted("lookup", todo))
        done = 0
        semaphore = asyncio.Semaphore(LOOKUP_CONCURRENCY)

        async def lookup_group(field_name: str, rows: list[Any]) -> None:
            nonlocal done
            async with semaphore:
                values = [r[f"{field_name}_key"] for r in rows]
                found = await self.kinde.find_users(field_name, values)
            with self.journal.transaction():
                for row in rows:
                    record_lookup(self.journal, run.id, row, field_name, found)
            done += len(rows)
            self.emit(PhaseAdvanced("lookup", done, todo))
            self._emit_pacing()

        tasks: set[asyncio.Task[None]] = set()

        async def spawn(field_name: str, group: list[Any]) -> None:
            while len(tasks) >= LOOKUP_CONCURRENCY * 2:
                finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    task.result()  # re-raise a fatal error here
            task = asyncio.create_task(lookup_group(field_name, group))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        for field_name, where in (
            ("email", "email_key IS NOT NULL"),
            ("username", "email_key IS NULL AND username_key IS NOT NULL"),
            ("phone", "email_key IS NULL AND username_key IS NULL AND phone_key IS NOT NULL"),
        ):
            chunk: list[Any] = []
            rows = self.journal.iter_users(
                run.id, f"state = 'pending' AND lookup IN ('pending', 'recheck') AND {where}", batch=1000
            )
            for row in itertools.chain(rows, [None]):  # lazily: never every user at once
                if row is not None:
                    chunk.append(row)
                if chunk and (row is None or len(chunk) >= 1000):
                    for batch in lookup_batches([r[f"{field_name}_key"] for r in chunk]):
                        await spawn(field_name, chunk[: len(batch)])
                        chunk = chunk[len(batch) :]
        if tasks:
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, BaseException):
                    raise result
        self.emit(PhaseFinished("lookup"))

    # == load =====================================================================================
    async def _load(self, run: Run) -> None:
        todo = self.journal.count(run.id, "state = 'pending'")
        if not todo:
            return
        self.emit(PhaseStarted("migrate", todo))
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.settings.concurrency * 4)
        updates: list[tuple[str, dict[str, Any]]] = []
        counts = {"created": 0, "finished": 0, "failed": 0}
        done = 0
        ticker = _Ticker()
        fatal: list[BaseException] = []

        def record(clerk_id: str, fields: dict[str, Any]) -> None:
            updates.append((clerk_id, fields))
            if len(updates) >= COMMIT_BATCH:
                flush()

        def flush() -> None:
            if updates:
                batch = list(updates)
                updates.clear()
                self.journal.update_users(run.id, batch)

        async def committer() -> None:
            while True:
                await asyncio.sleep(COMMIT_INTERVAL)
                flush()

        async def produce() -> None:
            for row in self.journal.iter_users(run.id, "state = 'pending'"):
                await queue.put(row)
            for _ in range(self.settings.concurrency):
                await queue.put(None)

        async def worker() -> None:
            nonlocal done
            while (row := await queue.get()) is not None:
                try:
                    outcome = await self._migrate_user(run, row, record)
                except Exception as exc:  # FATAL (per-user errors are recorded inside), or a bug
                    # No other user would fare better: stop everything now. Requests cut off in
                    # flight are recovered by lookup on resume, like after a crash.
                    fatal.append(exc)
                    for task in (producer, *workers):
                        task.cancel()
                    return
                counts[outcome] += 1
                done += 1
                if ticker.due():
                    self.emit(PhaseAdvanced("migrate", done, todo, dict(counts)))
                    self._emit_pacing()

        commit_task = asyncio.create_task(committer())
        producer = asyncio.create_task(produce())
        workers = [asyncio.create_task(worker()) for _ in range(self.settings.concurrency)]
        try:
            results = await asyncio.gather(producer, *workers, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception):
                    raise result
        finally:
            for task in (producer, *workers):
                task.cancel()
            commit_task.cancel()
            flush()
        if fatal:
            raise fatal[0]
        self.emit(PhaseAdvanced("migrate", done, todo, dict(counts)))
        self._emit_pacing()
        self.emit(PhaseFinished("migrate"))

    async def _migrate_user(self, run: Run, row: Any, record: Callable[[str, dict[str, Any]], None]) -> str:
        """create -> password -> flags for one user; returns 'created', 'finished' or 'failed'."""
        clerk_id = row["clerk_id"]
        plan = plan_from_record(clerk_id, json.loads(row["plan"]))
        fields: dict[str, Any] = {"attempts": row["attempts"] + 1}
        kinde_id = row["kinde_id"]
        outcome = "finished"
        try:
            if row["created"] == "pending":
                kinde_id = await self._create(run, plan)
                fields.update(created="created", kinde_id=kinde_id, lookup="found")
                outcome = "created"
            if row["password"] == "pending":
                await self._set_password(run, plan, kinde_id)
                fields["password"] = "set"
            if row["flags"] == "pending":
                flags: dict[str, Any] = {}
                if plan.request_password_reset:
                    flags["is_password_reset_requested"] = True
                if plan.suspended:
                    flags["is_suspended"] = True
                if flags:
                    await self.kinde.update_user(kinde_id, flags)
                fields["flags"] = "done"
            fields.update(state="done", error_code=None, error_message=None, error_retryable=None)
            return outcome
        except FATAL:
            raise
        except (ApiError, InputError) as exc:
            fields.update(
                state="failed",
                error_code=getattr(exc, "code", None)
                or (str(exc.status) if getattr(exc, "status", None) else type(exc).__name__),
                error_message=str(exc),
                error_retryable=int(bool(getattr(exc, "retryable", False))),
            )
            return "failed"
        finally:
            record(clerk_id, fields)

    async def _create(self, run: Run, plan: UserPlan) -> str:
        """Create the user, reconciling by lookup after any answer that leaves its fate unknown."""
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                return await self.kinde.create_user(plan.create_body())
            except AlreadyExists as exc:
                if (kinde_id := await self._own_user(plan, exc)) is None:
                    raise
                return kinde_id
            except ApiError as exc:
                if not (exc.retryable and exc.ambiguous) or attempt == self.settings.max_attempts:
                    raise
                if (kinde_id := await self._own_user(plan, exc)) is not None:  # it may have happened
                    return kinde_id
                self.emit(Notice(f"{plan.clerk_id}: create had no clear answer and the user is not in Kinde: retrying"))
        raise AssertionError("unreachable")

    async def _own_user(self, plan: UserPlan, exc: ApiError) -> str | None:
        """After "already exists" or no clear answer, look: our user's Kinde id, or None if nobody
        holds the identity. Someone else holding it raises: that user is not ours to touch."""
        existing = await self._find(plan)
        if existing is not None and existing.provided_id == plan.clerk_id:
            return existing.id  # an earlier attempt went through after all
        if existing is not None:  # not ours: our create cannot have gone through
            raise AlreadyExists(
                f"Kinde user {existing.id} (provided_id {existing.provided_id}) already holds an identity of"
                f" this user: {exc}",
                service="Kinde",
                status=exc.status,
                code=exc.code,
            ) from None
        return None

    async def _find(self, plan: UserPlan) -> KindeUser | None:
        for field_name, value in (("email", plan.email), ("username", plan.username), ("phone", plan.phone)):
            if not value:
                continue
            key = value if field_name == "phone" else value.lower()
            for user in await self.kinde.find_users(field_name, [value]):
                if user.provided_id == plan.clerk_id or key_of(user, field_name) == key:
                    return user
        return None

    async def _set_password(self, run: Run, plan: UserPlan, kinde_id: str) -> None:
        row = self._export_row(run.id, plan.clerk_id)
        translated = (
            passwords.translate(row.password_hasher, row.password_digest, salt_position=self.options.salt_position)
            if row
            else None
        )
        if not isinstance(translated, PasswordImport):
            raise InputError(
                f"{plan.clerk_id}: the export no longer holds an importable password for this user"
                " (was it changed since the run began?)"
            )
        await self.kinde.set_password(kinde_id, translated.fields)

    # == organizations ============================================================================
    async def _organizations(self, run: Run) -> None:
        organizations = self.journal.organizations(run.id)
        pending = self.journal.pending_memberships(run.id) if organizations else []
        todo_orgs = [o for o in organizations if o["kinde_code"] is None]
        if not todo_orgs and not pending and not any(r["state"] == "pending" for r in self.journal.roles(run.id)):
            return
        self.emit(PhaseStarted("organizations", len(todo_orgs)))
        await self._ensure_roles(run)
        existing = {o.get("external_id"): o.get("code") for o in await self.kinde.list_organizations()}
        done = 0
        for org in todo_orgs:
            code = existing.get(org["clerk_org_id"])
            if code is None:
                code = await self._create_organization(org)
            self.journal.db.execute(
                "UPDATE organizations SET kinde_code = ?, state = 'done' WHERE run_id = ? AND clerk_org_id = ?",
                (code, run.id, org["clerk_org_id"]),
            )
            done += 1
            self.emit(PhaseAdvanced("organizations", done, len(todo_orgs)))
        added = failed = 0
        by_org: dict[str, list[Any]] = {}
        for m in self.journal.pending_memberships(run.id):
            by_org.setdefault(m["kinde_code"], []).append(m)
        for code, members in by_org.items():
            for start in range(0, len(members), BATCH_ADD_LIMIT):
                batch = members[start : start + BATCH_ADD_LIMIT]
                body = [{"id": m["kinde_id"], "roles": [m["role_key"]]} for m in batch]
                try:
                    await self.kinde.add_organization_users(code, body)
                    state = "done"
                    added += len(batch)
                except FATAL:
                    raise
                except ApiError as exc:
                    state = "failed"
                    failed += len(batch)
                    self.emit(Notice(f"adding {len(batch)} member(s) to {code} failed: {exc}", level="warning"))
                with self.journal.transaction():
                    self.journal.db.executemany(
                        "UPDATE memberships SET state = ? WHERE run_id = ? AND clerk_user_id = ? AND clerk_org_id = ?",
                        [(state, run.id, m["clerk_user_id"], m["clerk_org_id"]) for m in batch],
                    )
        self.emit(PhaseAdvanced("organizations", done, len(todo_orgs), {"memberships": added, "failed": failed}))
        self.emit(PhaseFinished("organizations"))

    async def _ensure_roles(self, run: Run) -> None:
        existing = {r.get("key") for r in await self.kinde.list_roles()}
        for role in self.journal.roles(run.id):
            for attempt in range(1, self.settings.max_attempts + 1):
                if role["key"] in existing:
                    break
                try:
                    await self.kinde.create_role(json.loads(role["body"]))
                    break
                except ApiError as exc:
                    if exc.status not in (400, 409) and not exc.ambiguous:
                        raise
                    existing = {r.get("key") for r in await self.kinde.list_roles()}
                    # Not there: a 5xx or a lost answer that left nothing behind is worth another try.
                    if role["key"] not in existing and (
                        not (exc.retryable and exc.ambiguous) or attempt == self.settings.max_attempts
                    ):
                        raise
            self.journal.db.execute(
                "UPDATE roles SET state = 'done' WHERE run_id = ? AND key = ?", (run.id, role["key"])
            )

    async def _create_organization(self, org: Any) -> str:
        body = json.loads(org["body"])
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                return await self.kinde.create_organization(body)
            except ApiError as exc:
                if exc.status not in (400, 409) and not exc.ambiguous:
                    raise
                for existing in await self.kinde.list_organizations():
                    if existing.get("external_id") == org["clerk_org_id"] and existing.get("code"):
                        return existing["code"]
                # Not there: a 5xx or a lost answer that left nothing behind is worth another try.
                if not (exc.retryable and exc.ambiguous) or attempt == self.settings.max_attempts:
                    raise
        raise AssertionError("unreachable")

    # == end ======================================================================================
    def _emit_pacing(self) -> None:
        for client in (self.clerk, self.kinde):
            self.emit(
                Pacing(
                    service=client.service,
                    rate=client.limiter.rate,
                    requests=client.stats.requests,
                    throttled=client.stats.throttled,
                    backing_off=client.limiter.backing_off,
                    resume_in=client.limiter.resume_in,
                )
            )

    def _finish(self, run: Run, plan: Plan, *, status: str) -> Summary:
        summary = build_summary(self.journal, run.id, run.mode, plan, cancelled=status == "cancelled")
        summary.requests = {client.service: client.stats.requests for client in (self.clerk, self.kinde)}
        summary.throttled = {client.service: client.stats.throttled for client in (self.clerk, self.kinde)}
        summary.seconds = round(time.monotonic() - self._started, 3)
        summary.reports = {"password_resets": str(password_report_path(self.settings.state_dir, run.id))}
        unfinished = summary.failed or summary.pending
        final = "completed-with-failures" if status == "completed" and unfinished else status
        self.journal.set_run(run.id, status=final, ended_at=now_iso())
        return summary
