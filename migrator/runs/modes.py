"""The names of run kinds as the journal records them (``runs.mode``), and the run options they share."""

from __future__ import annotations

RUN = "run"
DRY_RUN = "dry-run"
CANARY = "canary"
SYNC = "sync"
EXPORT = "export"
UNDO = "undo"

BASE_MODES = (RUN, SYNC, CANARY, EXPORT)  # runs a catch-up can follow, or an undo take back
DEFAULT_SINCE_MODES = (RUN, SYNC, EXPORT)  # a canary covers a few users: never the default base of a catch-up
FILES_OPTION = "files"  # run_options of an export run: the folder its import files were written to
