"""The progress display of pacing: a server-reset hold is shown with the seconds it has left."""

from __future__ import annotations

import io

from rich.console import Console

from migrator.events import Notice, Pacing, PhaseAdvanced, PhaseStarted, Waiting
from migrator.render import Renderer, _PacingColumn


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pacing(resume_in: float, *, requests: int = 100) -> Pacing:
    return Pacing(
        service="Kinde", rate=40.0, requests=requests, throttled=3, backing_off=resume_in > 0, resume_in=resume_in
    )


def test_plain_lines_count_down_the_hold_for_the_server_reset() -> None:
    out, clock = io.StringIO(), Clock()
    renderer = Renderer(Console(file=out, width=200), live=False, clock=clock)
    renderer(PhaseStarted("migrate", 10))
    renderer(pacing(87.0))
    clock.now += 30.0
    renderer(PhaseAdvanced("migrate", 5, 10, {"created": 5}))
    assert "Kinde" in out.getvalue()
    assert "holding for the server's reset: 57 s more" in out.getvalue()


def test_no_hold_no_countdown() -> None:
    out, clock = io.StringIO(), Clock()
    renderer = Renderer(Console(file=out, width=200), live=False, clock=clock)
    renderer(PhaseStarted("migrate", 10))
    renderer(pacing(5.0))
    clock.now += 6.0  # the reset has passed since
    renderer(PhaseAdvanced("migrate", 5, 10, {"created": 5}))
    assert "3 x429" in out.getvalue()
    assert "holding" not in out.getvalue()


def test_the_live_column_ticks_between_events() -> None:
    clock = Clock()
    renderer = Renderer(Console(file=io.StringIO(), force_terminal=True, width=200), live=True, clock=clock)
    with renderer:
        renderer(PhaseStarted("migrate", 10))
        renderer(pacing(120.0))
        column = _PacingColumn(renderer)
        task = renderer.progress.tasks[0]
        assert "120 s more" in column.render(task).plain
        clock.now += 100.0  # no event in between: the column alone moves on
        assert "20 s more" in column.render(task).plain


def test_the_pacing_line_counts_retries_and_reconciliations() -> None:
    out, clock = io.StringIO(), Clock()
    renderer = Renderer(Console(file=out, width=200), live=False, clock=clock)
    renderer(PhaseStarted("migrate", 10))
    renderer(Pacing("Kinde", 40.0, 100, throttled=76, backing_off=False, retried=12, reconciled=3))
    renderer(PhaseAdvanced("migrate", 5, 10, {"created": 5}))
    assert "Kinde 0 req/s (pace 40), 76 x429, 12 retried, 3 reconciled" in out.getvalue()


def test_a_retry_is_shown_only_with_verbose_a_warning_always() -> None:
    for verbose in (False, True):
        out = io.StringIO()
        renderer = Renderer(Console(file=out, width=80), live=False, verbose=verbose)
        renderer(Notice("Kinde: retry 1 after: Kinde GET /api/v1/users failed on the server (503)", level="detail"))
        renderer(Notice("user_2x: identities failed: refused", level="warning"))
        assert ("retry 1 after" in out.getvalue()) is verbose
        assert "warning: user_2x: identities failed: refused" in out.getvalue()


def test_a_long_wait_is_one_line_then_a_countdown_in_place() -> None:
    clock = Clock()
    out = io.StringIO()
    renderer = Renderer(Console(file=out, force_terminal=True, width=80), live=True, clock=clock)
    with renderer:
        renderer(PhaseStarted("migrate", 10))
        renderer(pacing(0.0))
        renderer(Waiting("Kinde", 30.4, "Retry-After"))
        column = _PacingColumn(renderer)
        task = renderer.progress.tasks[0]
        assert "waiting (Retry-After): resuming in 30 s" in column.render(task).plain
        clock.now += 20.0
        assert "resuming in 10 s" in column.render(task).plain
        clock.now += 11.0
        assert "resuming" not in column.render(task).plain
    assert out.getvalue().count("Kinde asked to wait 30 s (Retry-After): resuming in 30 s") == 1
