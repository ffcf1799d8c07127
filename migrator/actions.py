"""What ``run_migration`` is asked to do: start a run or continue one (cutover runs: ``cutover.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Start:
    """A new run (``migrator run``)."""

    dry_run: bool = False


@dataclass(frozen=True)
class Resume:
    """Continue a run where it stopped (``migrator resume``); ``failed_only`` retries only failed users."""

    run_id: int | None = None
    allow_changed: bool = False
    failed_only: bool = False
