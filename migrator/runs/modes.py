"""The run modes a catch-up or an undo may take as its base, and the run options run kinds share
(the modes themselves: ``migrator.journal.RunMode``)."""

from __future__ import annotations

from migrator.journal import RunMode

BASE_MODES = (RunMode.RUN, RunMode.SYNC, RunMode.CANARY, RunMode.EXPORT)  # runs a catch-up can follow, or an undo take back
DEFAULT_SINCE_MODES = (RunMode.RUN, RunMode.SYNC, RunMode.EXPORT)  # a canary covers a few users: never the default base of a catch-up
FILES_OPTION = "files"  # run_options of an export run: the folder its import files were written to
