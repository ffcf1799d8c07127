"""The migration, step by step. The only module that knows the order of a migration's stages.

    preflight -> index export -> fetch (+ map, stage) -> conflicts -> lookup -> [lazy finish: skip the
    unmoved] -> [confirm] -> load -> organizations -> summary

Every stage (``migrator.stages``) reads its input from the journal and writes its result there, so
a run that dies anywhere continues with ``resume``: done users cost no API call, users whose create
may have been in flight are looked up again (never re-created blindly), and the fetch continues
from its cursor. Progress is reported through ``emit`` (see ``migrator.events``); nothing here prints.
The run's lifecycle around the stages is ``lifecycle.carry``'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from migrator.errors import JournalError
from migrator.events import Notice
from migrator.journal import Run, RunMode, RunStatus
from migrator.report_files import write_run_reports
from migrator.reports import (
    Plan,
    Summary,
    build_plan,
    build_summary,
    plan_warnings,
    write_lazy_report,
    write_mfa_report,
    write_password_report,
)
from migrator.run_passes import RESUME, RETRY_FAILED, START, PassStart
from migrator.runs.kinds import KINDS, kind_of
from migrator.runs.lazy_window import refuse_while_window_open
from migrator.runs.lifecycle import carry
from migrator.runs.session import Session
from migrator.stages.context import RunContext
from migrator.stages.gather import gather
from migrator.stages.lazy_finish import skip_unmoved
from migrator.stages.load import load
from migrator.stages.lookup import lookup
from migrator.stages.organizations import organizations
from migrator.stages.preflight import Checked, Intent
from migrator.stages.properties import ensure_definitions, plan_definitions
from migrator.stages.unchanged import check_unchanged, file_fingerprint
from migrator.stages.updates import apply_updates

Confirm = Callable[[Plan], bool]


def _export_of(run: Run) -> Path | None:
    return Path(run.export_path) if run.export_path else None


def _resumed_intent(run: Run) -> Intent:
    """A resumed run does what it was started to do (a canary's verify came with its start, not its resume)."""
    delete_removed = bool((run.run_options or {}).get("delete_removed"))
    return replace(kind_of(run).needs(delete_removed=delete_removed), verify=False)


class Migration(Session):
    """Migration runs over a session: start (or a dry run), resume, retry-failed; cutover runs drive the same."""

    def record_run(self, mode: str, **fields: object) -> Run:
        """A new run of ``mode`` with this session's settings and export."""
        export = self.settings.clerk_export
        return self.journal.runs.start(
            mode=mode,
            fingerprint=self.settings.fingerprint(),
            summary=self.settings.mapping_summary(),
            export_path=str(export.resolve()) if export else None,
            export_fingerprint=file_fingerprint(export) if export else None,
            **fields,
        )

    async def start(self, *, dry_run: bool, confirm: Confirm) -> Summary:
        kind = KINDS[RunMode.DRY_RUN if dry_run else RunMode.RUN]
        policy = self.settings.unimportable_passwords
        refuse_while_window_open(self.journal, "a new run", policy, dry_run=dry_run, emit=self.emit)
        checked = await self.check(kind.needs(), self.settings.clerk_export)
        run = self.record_run(kind.mode)
        self.emit(Notice(f"run {run.id} started ({run.mode}); journal {self.journal.path}"))
        return await self.drive(run, confirm, checked)

    async def resume(self, run_id: int | None, *, allow_changed: bool, confirm: Confirm) -> Summary:
        run = self.reopen(run_id, allow_changed, "there is nothing to resume; start a run with `migrator run`")
        checked = await self.check(_resumed_intent(run), _export_of(run))

        def reopen() -> None:
            with self.journal.transaction():
                self.journal.users.mark_for_recheck(run.id)
                self.journal.organizations.reset_failed_memberships(run.id)
                self.journal.runs.reopen(run.id)
            self.emit(Notice(f"resuming run {run.id}"))

        return await self.drive(run, confirm, checked, reopen, RESUME)

    async def retry_failed(self, run_id: int | None, *, allow_changed: bool, confirm: Confirm) -> Summary:
        run = self.reopen(run_id, allow_changed, "nothing was attempted, so nothing failed")
        checked = await self.check(_resumed_intent(run), _export_of(run))

        def reopen() -> None:
            with self.journal.transaction():
                retried = self.journal.users.reset_failed(run.id)
                self.journal.organizations.reset_failed_memberships(run.id)
                self.journal.runs.reopen(run.id)
            self.emit(Notice(f"retrying {retried} failed user(s) of run {run.id}"))

        return await self.drive(run, confirm, checked, reopen, RETRY_FAILED)

    def reopen(self, run_id: int | None, allow_changed: bool, why_not_dry: str) -> Run:
        """The run a resume continues, once its export and settings are the same (or allowed to differ)."""
        run = self.journal.runs.get(run_id)
        if run.mode == RunMode.EXPORT:
            raise JournalError(f"run {run.id} is an export: `migrator export --resume --run {run.id}` continues it")
        if run.mode == RunMode.UNDO:
            raise JournalError(f"run {run.id} is an undo: `migrator undo {run.parent_run_id}` continues it")
        if run.dry_run:
            raise JournalError(f"run {run.id} was a dry run: {why_not_dry}")
        self.continue_unchanged(run, allow_changed)
        return run

    def continue_unchanged(self, run: Run, allow_changed: bool) -> None:
        """Continue with the run's own settings; refuse a changed export or mapping unless allowed."""
        self.settings, changes = check_unchanged(self.settings, run, allow_changed=allow_changed)
        self.options = replace(self.options, export_time=self.settings.export_time)
        for change in changes:
            self.emit(Notice(f"continuing although {change}", level="warning"))

    async def drive(
        self,
        run: Run,
        confirm: Confirm,
        checked: Checked,
        reopen: Callable[[], None] | None = None,
        pass_kind: str = START,
    ) -> Summary:
        """Take a journaled run (new, resumed, or a cutover run) through the stages, once ``checked`` (the
        ordered check passed before the run was recorded or reopened). The pass begins with it
        (run_passes.py): the summary counts what this pass did."""

        async def stages(ctx: RunContext, this_pass: PassStart | None) -> Summary:
            return await self._stages(ctx, confirm, this_pass)

        return await carry(self, run, stages, checked=checked, reopen=reopen, pass_kind=pass_kind)

    async def _stages(self, ctx: RunContext, confirm: Confirm, this_pass: PassStart | None) -> Summary:
        run = ctx.run
        await gather(ctx, kind_of(run).fetch)
        await lookup(ctx)
        skip_unmoved(ctx)  # a lazy finish with fallback skip: whom the workflow did not move; else a no-op
        with self.journal.transaction():
            self.journal.organizations.mark_memberships_done_earlier(run.id)
            self.journal.organizations.settle_unmigrated_memberships(run.id)
        plan = build_plan(self.journal, run.id, with_export=ctx.export is not None)
        await plan_definitions(ctx, plan)
        for warning in plan_warnings(self.journal, plan, policy=self.settings.unimportable_passwords):
            self.emit(Notice(warning, level="warning"))
        write_password_report(self.journal, run.id, self.settings.state_dir, dry_run=run.dry_run)
        write_lazy_report(self.journal, run.id, self.settings.state_dir)
        write_mfa_report(self.journal, run.id, self.settings.state_dir, dry_run=run.dry_run)
        if run.dry_run:
            return self._finish(ctx, plan, RunStatus.COMPLETED, this_pass)
        if plan.writes_needed and not confirm(plan):
            declined = f"nothing was written: the operator declined (`migrator resume {run.id}` asks again)"
            self.emit(Notice(declined, "warning"))
            return self._finish(ctx, plan, RunStatus.CANCELLED, this_pass)
        await ensure_definitions(ctx)
        await load(ctx)
        await apply_updates(ctx)  # catch-ups: users already in Kinde brought up to date; else a no-op
        if self.settings.migrate_organizations:
            await organizations(ctx)
        return self._finish(ctx, plan, RunStatus.COMPLETED, this_pass)

    def _finish(self, ctx: RunContext, plan: Plan, status: RunStatus, this_pass: PassStart | None) -> Summary:
        cancelled = status == RunStatus.CANCELLED
        summary = build_summary(self.journal, ctx.run.id, ctx.run.mode, plan, cancelled=cancelled, start=this_pass)
        summary.unaccounted = list(ctx.notes)
        summary.requests = self.request_counts()
        summary.throttled = {client.service: client.stats.throttled for client in (self.clerk, self.kinde)}
        summary.retried, summary.reconciled = self.retry_counts()
        summary.seconds = round(time.monotonic() - self.started, 3)
        summary.reports = write_run_reports(self.journal, ctx.run.id, self.settings.state_dir, summary.to_json())
        unfinished = summary.failed_in_run or summary.pending or summary.unaccounted
        final = RunStatus.COMPLETED_WITH_FAILURES if status == RunStatus.COMPLETED and unfinished else status
        self.journal.runs.end(ctx.run.id, final)
        return summary
