"""Before a resume or retry: is the run's world the one it began in?

A run's journal holds plans mapped under its settings and byte offsets into its export file; a
resume under other settings or another export would mix two migrations. Changes are refused
unless the operator allows them (``--allow-changed``), and then named.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from migrator.config import Settings
from migrator.errors import JournalError
from migrator.journal import Run


def file_fingerprint(path: Path) -> str:
    """sha256 of the export's bytes: resume refuses a changed export unless told otherwise."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_unchanged(settings: Settings, run: Run, *, allow_changed: bool) -> tuple[Settings, list[str]]:
    """The settings to resume with, and the changes allowed through (an error when not allowed)."""
    # Unless set again, the export time is the one the run began with (in its recorded settings).
    settings = settings.keeping_export_time(run.config_summary)
    changes = []
    if run.config_fingerprint != settings.fingerprint():
        now = settings.mapping_summary()
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
    return settings, changes
