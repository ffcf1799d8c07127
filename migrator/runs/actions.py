"""What a command asks of the runs: start a run or continue one, a catch-up, a canary, an undo, an export."""

from __future__ import annotations

from dataclasses import dataclass

from migrator.stages.export_files import FileRequest


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


@dataclass(frozen=True)
class Sync:
    """A catch-up (``migrator sync``): what changed in Clerk since ``since_run_id`` began (default: the latest run)."""

    since_run_id: int | None = None
    delete_removed: bool = False
    full: bool = False  # compare every user, not only those Clerk says changed (see ClerkBehaviour)


@dataclass(frozen=True)
class Canary:
    """The full pipeline for a few users: ``sample`` random ones (reproducible by ``seed``) or ``only`` these ids."""

    sample: int | None = None
    seed: int = 1
    only: tuple[str, ...] = ()


@dataclass(frozen=True)
class Undo:
    """Delete what run ``run_id`` created (``migrator undo``); ``dry_run``: only say what."""

    run_id: int
    dry_run: bool = False


@dataclass(frozen=True)
class ExportAction:
    """Kinde's import files (``migrator export``)."""

    request: FileRequest
    resume_run: int | None = None  # continue this export run (None: start one)
    resume: bool = False
    create_roles: bool = False
    allow_changed: bool = False
