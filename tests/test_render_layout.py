"""The progress display at 80, 120 and 200 columns (rich's recording console), and piped output: one
plain line per step with elapsed time and ETA, never wrapped."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from migrator.events import Pacing, PhaseAdvanced, PhaseFinished, PhaseStarted
from migrator.render import Renderer

COUNTS = {"created": 392000, "existed": 1200, "failed": 5, "skipped": 20}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def feed(renderer: Renderer, clock: Clock) -> None:
    renderer(PhaseStarted("export", 132480))
    clock.now += 4.0
    renderer(PhaseAdvanced("export", 132480, 132480, {}))
    renderer(PhaseFinished("export"))
    renderer(PhaseStarted("migrate", 1000000))
    renderer(Pacing(service="Kinde", rate=40.0, requests=100, throttled=3, backing_off=True, resume_in=87))
    clock.now += 30.0
    renderer(Pacing(service="Kinde", rate=40.0, requests=1300, throttled=3, backing_off=True, resume_in=87))
    renderer(PhaseAdvanced("migrate", 392000, 1000000, COUNTS))


def live_lines(width: int) -> list[str]:
    clock = Clock()
    console = Console(file=io.StringIO(), width=width, record=True, force_terminal=True, color_system=None)
    renderer = Renderer(console, live=True, clock=clock)
    feed(renderer, clock)
    console.print(renderer.progress.get_renderable())
    return [line.rstrip() for line in console.export_text().splitlines() if line.strip()]


@pytest.mark.parametrize("width", [80, 120, 200])
def test_phase_bar_done_total_and_eta_survive_every_width(width: int) -> None:
    lines = live_lines(width)
    assert all(len(line) <= width for line in lines)
    export, migrate, pacing = lines
    assert "Index CSV export" in export and "132480/132480" in export and "ETA" in export
    assert "Migrate users" in migrate and "392000/1000000" in migrate and "ETA" in migrate
    assert "━" in migrate  # the bar
    assert pacing.lstrip().startswith("pacing: Kinde") and "3 x429" in pacing  # its own line
    assert "Kinde" not in migrate


def test_wider_terminals_add_the_rate_then_the_counts() -> None:
    narrow, medium, wide = (live_lines(w)[1] for w in (80, 120, 200))
    assert "/s" not in narrow and "created" not in narrow
    assert "13,067/s" in medium and "created 392000" in medium
    assert "13,067/s" in wide and "skipped 20" in wide  # every count at 200 columns
    assert "holding for the server's reset: 87 s more" in live_lines(120)[2]


def test_piped_lines_carry_elapsed_and_eta_and_are_never_wrapped() -> None:
    out, clock = io.StringIO(), Clock()
    renderer = Renderer(Console(file=out, width=80), live=False, clock=clock)
    feed(renderer, clock)
    lines = out.getvalue().splitlines()
    step = next(line for line in lines if line.startswith("Migrate users: 392000/1000000"))
    assert len(step) > 80  # longer than the console, and still one line
    assert "elapsed 0:00:30, ETA 0:00:46" in step
    assert "skipped 20" in step and "3 x429" in step
    assert "Index CSV export: done in 0:00:04" in lines
    assert all(line.split(":")[0] in ("Index CSV export", "Migrate users") for line in lines)


def test_quiet_shows_no_progress_but_still_the_warnings() -> None:
    from migrator.events import Notice

    out, clock = io.StringIO(), Clock()
    renderer = Renderer(Console(file=out, width=80), live=True, clock=clock, quiet=True)
    feed(renderer, clock)
    renderer(Notice("3 users share an email", level="warning"))
    assert out.getvalue().strip() == "warning: 3 users share an email"


def test_at_80_columns_each_api_has_its_pacing_line_and_its_counts_fit() -> None:
    clock = Clock()
    console = Console(file=io.StringIO(), width=80, record=True, force_terminal=True, color_system=None)
    renderer = Renderer(console, live=True, clock=clock)
    renderer(PhaseStarted("migrate", 1000))
    for service, retried in (("Clerk", 2), ("Kinde", 12)):
        renderer(Pacing(service, 40.0, 100, throttled=76, backing_off=False, retried=retried, reconciled=3))
    clock.now += 1.0
    for service in ("Clerk", "Kinde"):
        renderer(Pacing(service, 40.0, 138, throttled=76, backing_off=False, retried=12, reconciled=3))
    renderer(PhaseAdvanced("migrate", 392, 1000, COUNTS))
    console.print(renderer.progress.get_renderable())
    lines = [line.rstrip() for line in console.export_text().splitlines() if line.strip()]
    assert all(len(line) <= 80 for line in lines)
    _migrate, clerk, kinde = lines
    assert clerk.strip() == "pacing: Clerk 38 req/s (pace 40), 76 x429, 12 retried, 3 reconciled"
    assert kinde.strip() == "pacing: Kinde 38 req/s (pace 40), 76 x429, 12 retried, 3 reconciled"
