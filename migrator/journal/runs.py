"""Runs and their passes: what was started, how it stands, and where a resumed fetch continues."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from migrator.errors import JournalError
from migrator.journal.repository import Repository, now_iso, now_ms
from migrator.journal.rows import Pass, Run, typed, typed_all
from migrator.journal.states import RunMode, RunStatus


class Runs(Repository):
    def start(
        self,
        *,
        mode: RunMode,
        fingerprint: str,
        summary: dict[str, Any],
        export_path: str | None,
        export_fingerprint: str | None,
        parent_run_id: int | None = None,
        run_options: dict[str, Any] | None = None,
    ) -> Run:
        cursor = self._exec(
            "INSERT INTO runs(started_at, mode, status, config_fingerprint, config_summary, export_path,"
            " export_fingerprint, parent_run_id, run_options, started_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                now_iso(),
                RunMode(mode),
                RunStatus.RUNNING,
                fingerprint,
                json.dumps(summary, sort_keys=True),
                export_path,
                export_fingerprint,
                parent_run_id,
                json.dumps(run_options, sort_keys=True) if run_options is not None else None,
                now_ms(),
            ),
        )
        return self.get(int(cursor.lastrowid or 0))

    def get(self, run_id: int | None = None) -> Run:
        """The run with this id, or the latest one."""
        path = self._journal.path
        if run_id is None:
            rows = self._rows("SELECT * FROM runs ORDER BY id DESC LIMIT 1")
            if not rows:
                raise JournalError(f"no run recorded in {path}: start one with `migrator run`")
        else:
            rows = self._rows("SELECT * FROM runs WHERE id = ?", (run_id,))
            if not rows:
                raise JournalError(f"no run {run_id} in {path}")
        return typed(Run, rows[0])

    def all(self) -> list[Run]:
        """Every run, oldest first (``status`` shows the chain)."""
        return typed_all(Run, self._rows("SELECT * FROM runs ORDER BY id"))

    def latest(self, modes: Sequence[RunMode]) -> Run | None:
        placeholders = ", ".join("?" for _ in modes)
        rows = self._rows(f"SELECT * FROM runs WHERE mode IN ({placeholders}) ORDER BY id DESC LIMIT 1", tuple(modes))
        return typed(Run, rows[0]) if rows else None

    def child(self, parent_run_id: int, mode: RunMode) -> Run | None:
        """The latest run of ``mode`` based on ``parent_run_id`` (an undo of it, say)."""
        rows = self._rows(
            "SELECT * FROM runs WHERE parent_run_id = ? AND mode = ? ORDER BY id DESC LIMIT 1", (parent_run_id, mode)
        )
        return typed(Run, rows[0]) if rows else None

    def reopen(self, run_id: int) -> None:
        """A resumed or retried run is running again, with no end time."""
        self._exec("UPDATE runs SET status = ?, ended_at = NULL WHERE id = ?", (RunStatus.RUNNING, run_id))

    def end(self, run_id: int, status: RunStatus) -> None:
        self._exec("UPDATE runs SET status = ?, ended_at = ? WHERE id = ?", (status, now_iso(), run_id))

    def mark(self, run_id: int, status: RunStatus) -> None:
        """Stopped (failed, interrupted) without an end: `resume` continues it."""
        self._exec("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))

    def record_source_count(self, run_id: int, count: int) -> None:
        self._exec("UPDATE runs SET source_count = ? WHERE id = ?", (count, run_id))

    def record_fetch_cursor(self, run_id: int, cursor: str, created_at: int | None) -> None:
        self._exec("UPDATE runs SET fetch_cursor = ?, fetch_cursor_at = ? WHERE id = ?", (cursor, created_at, run_id))

    def record_fetch_done(self, run_id: int, done: bool = True) -> None:
        """``done=False`` with the cursor cleared: the next resume fetches everything again (a gap was found)."""
        if done:
            self._exec("UPDATE runs SET fetch_done = 1 WHERE id = ?", (run_id,))
        else:
            self._exec(
                "UPDATE runs SET fetch_done = 0, fetch_cursor = NULL, fetch_cursor_at = NULL WHERE id = ?", (run_id,)
            )

    def record_option(self, run_id: int, key: str, value: Any) -> None:
        """One more entry in the run's ``run_options`` (an export run: where it wrote its import files)."""
        options = self.get(run_id).run_options or {}
        self._exec(
            "UPDATE runs SET run_options = ? WHERE id = ?",
            (json.dumps({**options, key: value}, sort_keys=True), run_id),
        )

    # -- passes: a run's start, then each resume or retry-failed ------------------------------------
    def begin_pass(self, run_id: int, kind: str, counts_before: dict[str, Any]) -> int:
        """Record a pass over the run with the run's counts as they stand; returns its number. A run of a
        journal older than passes was started unrecorded: its first recorded resume is pass 2."""
        first = 0 if kind == "start" else 1
        number = self._scalar("SELECT COALESCE(MAX(number), ?) + 1 FROM passes WHERE run_id = ?", (first, run_id))
        self._exec(
            "INSERT INTO passes(run_id, number, kind, started_at, counts_before) VALUES (?, ?, ?, ?, ?)",
            (run_id, number, kind, now_iso(), json.dumps(counts_before, sort_keys=True)),
        )
        return int(number)

    def passes(self, run_id: int) -> list[Pass]:
        """The run's recorded passes, first first."""
        return typed_all(Pass, self._rows("SELECT * FROM passes WHERE run_id = ? ORDER BY number", (run_id,)))
