"""Progress events: what the pipeline tells the outside world while it works.

The pipeline emits these plain values and never prints; the CLI decides how to show them (rich bars
on a terminal, plain lines otherwise, nothing with ``--json``). None of them carries a secret or a
password digest: they hold counts, phase names, user ids and operator-facing messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

PHASES = {
    "export": "Index CSV export",
    "fetch": "Fetch from Clerk",
    "lookup": "Look up in Kinde",
    "migrate": "Migrate users",
    "organizations": "Organizations",
}


@dataclass(frozen=True)
class PhaseStarted:
    phase: str
    total: int | None = None


@dataclass(frozen=True)
class PhaseAdvanced:
    """``completed`` items so far, and the running tallies that matter for this phase."""

    phase: str
    completed: int
    total: int | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PhaseFinished:
    phase: str


@dataclass(frozen=True)
class Pacing:
    """One API's request pacing, for the live requests/s, 429s and back-off display.

    ``resume_in``: seconds the limiter still holds every request for the server's reset (0: none),
    so an operator facing a long ``Retry-After`` sees a countdown rather than a frozen bar.
    ``retried``: requests sent again after a retryable failure; ``reconciled``: creates whose answer left
    their fate unknown, settled by a lookup. Counted here rather than shown one line each: a retry that
    then succeeds is not news.
    """

    service: str
    rate: float
    requests: int
    throttled: int
    backing_off: bool
    resume_in: float = 0.0
    retried: int = 0
    reconciled: int = 0


@dataclass(frozen=True)
class Waiting:
    """An API asked for a wait longer than the operator should sit through without being told why.

    ``seconds``: how long from now; ``reason``: who set it (the server's ``Retry-After``, our back-off).
    """

    service: str
    seconds: float
    reason: str


@dataclass(frozen=True)
class Notice:
    """Something the operator should read: a warning about data, a decision taken; at level ``detail``,
    what is shown only on request (``-v``): each retry and reconciliation as it happens."""

    message: str
    level: str = "info"  # info | warning | detail


Event = PhaseStarted | PhaseAdvanced | PhaseFinished | Pacing | Waiting | Notice
Emit = Callable[[Event], None]
