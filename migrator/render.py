"""Show pipeline events and results: rich progress bars on a terminal, plain lines otherwise.

Only the CLI uses this module. With ``--json`` the progress goes to stderr so stdout holds nothing
but the JSON document.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from rich.text import Text

from migrator.events import PHASES, Event, Notice, Pacing, PhaseAdvanced, PhaseFinished, PhaseStarted, Waiting
from migrator.reports import Plan, Summary

PLAIN_INTERVAL = 2.0  # seconds between plain progress lines per phase
RATE_WINDOW = 3.0  # seconds of request counts behind the live requests/s


def _counts_text(counts: dict[str, int]) -> str:
    return "  ".join(f"{name} {value}" for name, value in counts.items() if value or name != "failed")


PACED_PHASES = ("migrate", "lookup")


def retry_tally(throttled: int, retried: int, reconciled: int) -> str:
    """``76 x429, 12 retried, 3 reconciled``: the pacing line's count of what went wrong and was set right. A retry
    that then succeeds is counted here rather than shown (``-v`` shows each); the summary has the same counts."""
    return f"{throttled} x429, {retried} retried, {reconciled} reconciled"


def clock_time(seconds: float) -> str:
    """``0:01:05``: the same form as the live display's elapsed and remaining columns."""
    whole = int(max(0.0, seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def eta(completed: int, total: int | None, elapsed: float) -> str:
    """Time left at the phase's average rate so far; ``?`` until there is a rate and a total."""
    if total is None or completed <= 0 or elapsed < 0.5:
        return "?"
    return clock_time((total - completed) * elapsed / completed)


class _PacingColumn(ProgressColumn):
    """The pacing text, rendered at every refresh so a server-reset countdown ticks between events."""

    def __init__(self, renderer: Renderer) -> None:
        super().__init__()
        self.renderer = renderer

    def render(self, task: Task) -> Text:
        return Text("\n".join(self.lines(task)))

    def lines(self, task: Task) -> list[str]:
        """One line per API: at 80 columns each one's counts fit, where both on one line would be cut."""
        if not task.fields.get("paced") or task.finished:
            return []
        return self.renderer._pacing_parts()


WIDE, MEDIUM = 160, 100  # terminal widths (columns) at which the progress line gains detail


def progress_columns(width: int) -> list[ProgressColumn]:
    """What fits the terminal, by priority: phase, bar, done/total, ETA; then rate; then elapsed and counts.

    Every column is no_wrap: what does not fit is cut at its end, never folded into a second row."""

    def text(template: str, **column: Any) -> TextColumn:
        return TextColumn(template, table_column=Column(no_wrap=True, **column))

    eta = [text("ETA"), TimeRemainingColumn(table_column=Column(no_wrap=True))]
    done = MofNCompleteColumn(table_column=Column(no_wrap=True))
    if width < MEDIUM:
        return [text("[bold]{task.description}", max_width=16), BarColumn(bar_width=10), done, *eta]
    rate = text("{task.fields[rate]}")
    if width < WIDE:
        return [
            SpinnerColumn(),
            text("[bold]{task.description}", min_width=16),
            BarColumn(bar_width=20),
            done,
            rate,
            *eta,
            text("{task.fields[counts]}", overflow="ellipsis", max_width=width - MEDIUM),
        ]
    return [
        SpinnerColumn(),
        text("[bold]{task.description}", min_width=18),
        BarColumn(bar_width=40),
        done,
        rate,
        TimeElapsedColumn(table_column=Column(no_wrap=True)),
        *eta,
        text("{task.fields[counts]}", overflow="ellipsis", max_width=width - WIDE + 30),
    ]


class _FittingProgress(Progress):
    """Rich's progress with columns chosen by the terminal's width at every refresh, and the pacing
    (requests/s, the limiter's pace, 429s, a server-reset countdown) on a line of its own."""

    def __init__(self, renderer: Renderer, console: Console, **kwargs: Any) -> None:
        self._width_of, self._pacing = console, _PacingColumn(renderer)  # set first: Live renders in __init__
        super().__init__(console=console, **kwargs)

    def get_renderables(self) -> Iterable[RenderableType]:
        self.columns = tuple(progress_columns(self._width_of.width))
        yield self.make_tasks_table(self.tasks)
        for task in self.tasks:
            for line in self._pacing.lines(task):
                yield Text("  pacing: ", style="dim", no_wrap=True, overflow="ellipsis") + Text(line)


class Renderer:
    """Receives events (``renderer(event)``); a context manager that owns the live display."""

    def __init__(
        self,
        console: Console,
        *,
        live: bool,
        clock: Callable[[], float] = time.monotonic,
        quiet: bool = False,
        verbose: bool = False,
    ) -> None:
        self.console = console
        self.quiet = quiet  # -q: no progress at all; warnings still show
        self.verbose = verbose  # -v: the ``detail`` notices too (each retry and reconciliation)
        self.live = live and not quiet
        self._clock = clock
        self.pacing: dict[str, Pacing] = {}
        self._pacing_at: dict[str, float] = {}  # when each service's last Pacing arrived
        self._waits: dict[str, tuple[float, str]] = {}  # service -> (when its announced wait ends, why)
        self._samples: dict[str, deque[tuple[float, int]]] = {}  # (time, requests so far) per service
        self._tasks: dict[str, TaskID] = {}
        self._last_line: dict[str, float] = {}
        self._started: dict[str, float] = {}
        self.progress = _FittingProgress(self, console=console, transient=False, disable=not self.live)

    def __enter__(self) -> Renderer:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *_: Any) -> None:
        if self.live:
            self.progress.stop()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the live display while the operator reads the plan and answers."""
        if self.live:
            self.progress.stop()
        try:
            yield
        finally:
            if self.live:
                self.progress.start()

    def _pacing_text(self) -> str:
        return "; ".join(self._pacing_parts())

    def _pacing_parts(self) -> list[str]:
        """Per API: measured requests/s over the last few seconds, the limiter's pace, 429s, retries and
        reconciliations, back-off or a countdown."""
        parts = []
        now = self._clock()
        for service, pacing in self.pacing.items():
            samples = self._samples[service]
            (t0, r0), (t1, r1) = samples[0], samples[-1]
            measured = (r1 - r0) / (t1 - t0) if t1 > t0 else 0.0
            left = pacing.resume_in - (now - self._pacing_at.get(service, now))
            ends, why = self._waits.get(service, (0.0, ""))
            if left > 0:
                state = f", holding for the server's reset: {left:.0f} s more"
            elif ends > now:
                state = f", waiting ({why}): resuming in {ends - now:.0f} s"
            else:
                state = ", backing off" if pacing.backing_off and not pacing.resume_in else ""
            tally = retry_tally(pacing.throttled, pacing.retried, pacing.reconciled)
            parts.append(f"{service} {measured:.0f} req/s (pace {pacing.rate:.0f}), {tally}{state}")
        return parts

    def __call__(self, event: Event) -> None:
        if self.quiet and isinstance(event, PhaseStarted | PhaseAdvanced | PhaseFinished):
            return
        if isinstance(event, PhaseStarted):
            self._started[event.phase] = self._clock()
            if self.live:
                self._tasks[event.phase] = self.progress.add_task(
                    PHASES.get(event.phase, event.phase),
                    total=event.total,
                    rate="",
                    counts="",
                    paced=event.phase in PACED_PHASES,
                )
            else:
                total = f" ({event.total} items)" if event.total is not None else ""
                self.console.print(f"{PHASES.get(event.phase, event.phase)}: started{total}")
        elif isinstance(event, PhaseAdvanced):
            elapsed = max(1e-6, self._clock() - self._started.get(event.phase, self._clock()))
            rate = f"{event.completed / elapsed:,.0f}/s" if elapsed >= 0.5 else ""
            counts = _counts_text(event.counts)
            if not self.live and event.phase in PACED_PHASES and self.pacing:
                counts = (counts + "  " + self._pacing_text()).strip()  # live: the pacing column shows it
            if self.live and event.phase in self._tasks:
                self.progress.update(
                    self._tasks[event.phase], completed=event.completed, total=event.total, rate=rate, counts=counts
                )
            elif not self.live:
                now = self._clock()
                if now - self._last_line.get(event.phase, 0.0) >= PLAIN_INTERVAL:
                    self._last_line[event.phase] = now
                    of = f"/{event.total}" if event.total is not None else ""
                    timing = f"elapsed {clock_time(elapsed)}, ETA {eta(event.completed, event.total, elapsed)}"
                    parts = [f"{PHASES.get(event.phase, event.phase)}: {event.completed}{of}", rate, timing, counts]
                    self.console.print("  ".join(p for p in parts if p), highlight=False, soft_wrap=True)
        elif isinstance(event, PhaseFinished):
            if not self.live:
                took = clock_time(self._clock() - self._started.get(event.phase, self._clock()))
                self.console.print(f"{PHASES.get(event.phase, event.phase)}: done in {took}", soft_wrap=True)
        elif isinstance(event, Pacing):
            self.pacing[event.service] = event
            now = self._clock()
            self._pacing_at[event.service] = now
            samples = self._samples.setdefault(event.service, deque())
            samples.append((now, event.requests))
            while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW:
                samples.popleft()
        elif isinstance(event, Waiting):
            self._waits[event.service] = (self._clock() + event.seconds, event.reason)
            seconds = f"{event.seconds:.0f} s"
            asked = f"asked to wait {seconds}" if event.reason == "Retry-After" else f"waits {seconds}"
            message = f"{event.service} {asked} ({event.reason}): resuming in {seconds}"
            self.console.print(f"[dim]{message}[/dim]", highlight=False, soft_wrap=True)
        elif isinstance(event, Notice):
            if event.level == "detail" and not self.verbose:
                return  # counted on the pacing line; -v shows each
            style = "yellow" if event.level == "warning" else "dim"
            prefix = "warning: " if event.level == "warning" else ""
            self.console.print(f"[{style}]{prefix}{event.message}[/{style}]", highlight=False, soft_wrap=True)


def catch_up_rows(plan: Plan) -> list[tuple[str, Any]]:
    """A catch-up's writes to users already in Kinde, and its deletions (shown when there are any)."""
    rows: list[tuple[str, Any]] = [
        ("Users to update in Kinde", plan.users_to_update),
        ("  identities to add", plan.identities_to_add),
        ("  identities to remove", plan.identities_to_remove),
        ("  passwords to import again", plan.passwords_to_update),
        ("Users to delete from Kinde (gone from Clerk)", plan.users_to_delete),
        ("Gone from Clerk, listed only (--delete-removed deletes)", plan.users_gone_listed),
        ("Gone from Clerk before their import (nothing to do)", plan.users_gone_before_import),
    ]
    return [(label, count) for label, count in rows if count]


def plan_table(plan: Plan, *, title: str) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("users", justify="right")
    rows: list[tuple[str, Any]] = [
        ("Users in Clerk", plan.source_users if plan.source_users is not None else "?"),
        ("Fetched", plan.staged),
        ("To create in Kinde", plan.to_create),
        ("Already in Kinde", plan.already_present),
    ]
    if plan.to_finish:
        rows.append(("Created earlier (or moved at sign-in), steps left", plan.to_finish))
    for reason, count in sorted(plan.skipped.items()):
        rows.append((f"Skipped: {reason}", count))
    for method, count in sorted(plan.password_imports.items()):
        rows.append((f"Password to import ({method})", count))
    rows.append(("Password reset needed", plan.password_resets))
    if plan.lazy:
        rows.append(("Left to Kinde's workflow (lazy.csv)", plan.lazy))
    if plan.without_password:
        rows.append(("Created without password (policy)", plan.without_password))
    if plan.password_missing:
        rows.append(("Password in Clerk, no digest in export", plan.password_missing))
    for reason, count in plan.password_problems.items():
        rows.append((f"  Clerk password unusable: {reason}", count))
    if plan.export_only:
        rows.append(("Only in the CSV export (not migrated)", plan.export_only))
    if plan.api_only:
        rows.append(("Only in the API (no export row)", plan.api_only))
    if plan.organizations:
        rows.append(("Organizations", plan.organizations))
        rows.append(("Memberships to add", plan.memberships_pending))
    if plan.properties_to_write:
        rows.append(("Users with properties to write", plan.properties_to_write))
    for key in plan.properties_missing:
        rows.append(("Property definition missing in Kinde", key))
    if plan.social_to_link:
        rows.append(("Users with social identities to link", plan.social_to_link))
    for provider, count in plan.social_unmapped.items():
        rows.append((f"Users with {provider} (no Kinde connection mapped)", count))
    for provider, count in plan.social_not_carried.items():
        rows.append((f"Users with a {provider} account that cannot be linked", count))
    if plan.mfa_reenrol:
        rows.append(("Users to re-enrol in MFA", plan.mfa_reenrol))
    rows += catch_up_rows(plan)
    if plan.property_sample:
        rows.append(("Example mapping", json.dumps(plan.property_sample, ensure_ascii=False)))
    if plan.failed:
        rows.append(("Failed earlier", plan.failed))
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def _pass_rows(counts: Summary | dict[str, Any], other: Summary | dict[str, Any]) -> dict[str, int]:
    """The counts a pass did (a Summary) or earlier passes did (``Summary.earlier``), by row label; the skip
    reasons and password methods of ``other`` too (0 here), so both columns list the same rows in one order."""

    def get(of: Summary | dict[str, Any], name: str, default: Any = 0) -> Any:
        return of.get(name, default) if isinstance(of, dict) else getattr(of, name)

    rows = {"Created in Kinde": get(counts, "created"), "Already in Kinde": get(counts, "already_present")}
    rows["Finished (created by an earlier pass)"] = get(counts, "finished_created_earlier")
    rows["Failed"] = get(counts, "failed")
    for name, label in (("skipped", "Skipped: {}"), ("passwords_set", "Password imported ({})")):
        mine, theirs = get(counts, name, {}), get(other, name, {})
        rows |= {label.format(key): mine.get(key, 0) for key in sorted({*mine, *theirs})}
    rows["Password reset requested"] = get(counts, "password_resets")
    rows["Passwords / resets done by earlier runs"] = get(counts, "done_earlier")
    rows["Memberships added"] = get(counts, "memberships_added")
    return rows


# a catch-up's users gone from Clerk: deleted only on Kinde's confirmation, already gone only on its proof
DELETION_ROWS = (
    ("Deleted from Kinde (gone from Clerk)", "deleted"),
    ("Already gone from Kinde (nothing to delete)", "already-gone"),
    ("Kept in Kinde (not ours)", "kept"),
    ("Deletions failed", "failed"),
)
LAZY_ROWS = {  # Summary.lazy (journal.users.lazy_counts)
    "cohort": "Lazy cohort (move at sign-in)",
    "awaiting_sign_in": "  Left to the workflow (lazy.csv)",
    "moved": "  Moved at sign-in, adopted",
    "created": "  Created by the migrator",
    "skipped": "  Skipped",
    "failed": "  Failed",
}
ALWAYS_SHOWN = ("Created in Kinde", "Already in Kinde", "Failed", "Password reset requested")


def summary_table(summary: Summary) -> Table:
    """The pass's counts; a resume or retry-failed shows them beside what the run's earlier passes did
    (run_passes.py). Not finished, failed memberships, requests and seconds are the run's state now."""
    split = summary.earlier is not None
    title = f"Run {summary.run_id} ({summary.mode})" + (f", pass {summary.pass_number} ({summary.pass_kind})" * split)
    table = Table(title=title, show_header=split, title_justify="left")
    table.add_column("what")
    table.add_column("this pass", justify="right")
    if split:
        table.add_column("earlier passes", justify="right")
    now, before = _pass_rows(summary, summary.earlier or {}), _pass_rows(summary.earlier or {}, summary)
    memberships = summary.memberships_failed or now["Memberships added"] or before["Memberships added"]
    for name, value in now.items():
        if not (name in ALWAYS_SHOWN or value or before[name] or (memberships and name == "Memberships added")):
            continue
        table.add_row(name, str(value), *[str(before[name])] * split)
        if name == "Failed" and summary.pending:
            table.add_row("Not finished", str(summary.pending), *[""] * split)
        if name == "Memberships added":
            table.add_row("Memberships failed", str(summary.memberships_failed), *[""] * split)
    for key, count in summary.lazy.items():  # the run's (not the pass's): the cohort is a state
        table.add_row(LAZY_ROWS.get(key, f"Lazy cohort: {key}"), str(count), *[""] * split)
    for label, state in DELETION_ROWS:
        if summary.deletions.get(state):
            table.add_row(label, str(summary.deletions[state]), *[""] * split)
    for service, count in summary.requests.items():
        table.add_row(f"Requests to {service}", f"{count} ({summary.throttled.get(service, 0)} x429)", *[""] * split)
        retried, reconciled = summary.retried.get(service, 0), summary.reconciled.get(service, 0)
        if retried or reconciled:  # what the pacing line counted, on a row of its own: 80 columns hold it
            table.add_row("  retried / reconciled", f"{retried} / {reconciled}", *[""] * split)
    table.add_row("Seconds", f"{summary.seconds:.1f}", *[""] * split)
    return table
