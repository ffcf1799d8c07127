"""``migrator runs`` at 80 and 120 columns (rich's recording console): every row on one line within the width,
the numbers always there; below 100 columns the longest state is shortened and explained under the table."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from migrator.cli.runs import runs_legend, runs_table


def row(run_id: int, kind: str, state: str, started: str, ended: str | None, **counts: int) -> dict[str, object]:
    base = {"done": 0, "failed": 0, "skipped": 0, "pending": 0}
    return {"id": run_id, "kind": kind, "state": state, "started_at": started, "ended_at": ended, **base, **counts}


ROWS = [
    row(1, "dry-run", "aborted", "2026-11-29T22:26:42.1+00:00", "2026-11-29T22:26:42.9+00:00"),
    row(2, "dry-run", "completed", "2026-11-29T22:26:42+00:00", "2026-11-29T22:26:43+00:00", skipped=3, pending=997),
    row(
        12,
        "run",
        "completed-with-failures",
        "2026-11-29T22:26:43+00:00",
        "2026-11-30T04:01:07+00:00",
        done=499412,
        failed=388,
        skipped=200,
        pending=0,
    ),
    row(13, "sync", "interrupted", "2026-11-30T05:00:00+00:00", None, done=12000, pending=487600),
    row(140, "canary", "declined", "2026-11-30T06:00:00+00:00", "2026-11-30T06:00:09+00:00", pending=50),
]


def table_lines(width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, record=True, force_terminal=True, color_system=None)
    console.print(runs_table(ROWS, width))
    for line in runs_legend(ROWS, width):
        console.print(line)
    return [line.rstrip() for line in console.export_text().splitlines() if line.strip()]


@pytest.mark.parametrize("width", [80, 120])
def test_every_run_fits_one_line_with_its_counts(width: int) -> None:
    lines = table_lines(width)
    assert all(len(line) <= width for line in lines), [len(line) for line in lines]
    header, *runs = lines[: len(ROWS) + 1]
    assert header.split()[:3] == ["id", "kind", "state"]
    assert len(runs) == len(ROWS)  # one line each: nothing wrapped onto a second line
    partial = runs[2].split()
    assert partial[:2] == ["12", "run"]
    assert partial[3:7] == ["499412", "388", "200", "0"]
    assert "not ended" in runs[3] and "12000" in runs[3] and "487600" in runs[3]
    assert runs[4].split()[:3] == ["140", "canary", "declined"]


def test_at_80_columns_the_longest_state_is_shortened_and_explained() -> None:
    lines = table_lines(80)
    assert "completed-with-failures" not in "\n".join(lines[:-1])
    assert lines[3].split()[2] == "partial"
    assert lines[-1].startswith("partial: completed-with-failures")
    assert "11-29 22:26" in lines[3] and "11-30 04:01" in lines[3]  # to the minute; ended on another day


def test_at_120_columns_states_and_times_are_whole() -> None:
    lines = table_lines(120)
    assert lines[3].split()[2] == "completed-with-failures"
    assert "11-29 22:26:43" in lines[3] and "11-30 04:01:07" in lines[3]
    assert lines[2].rstrip().endswith("22:26:43")  # the same day: only the time
    assert not any(line.startswith("partial:") for line in lines)
