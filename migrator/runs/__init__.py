"""Runs: every command that reads Clerk or writes Kinde goes through one lifecycle.

* ``session.py``   the clients of both APIs opened once per command (retries reported by one rule,
                   every request logged), and the ordered check before a run is recorded or reopened
* ``lifecycle.py`` a journaled run carried through its stages: request log, source count, pass,
                   interrupted / failed / finished, and the one place a failure gets its next step
* ``kinds.py``     each kind of run: its mode, its fetch, its needs, the command that continues it
* ``migration.py`` run, dry run, resume, retry-failed (the stages of a migration)
* ``cutover.py``   catch-ups (``sync``) and canaries: a migration with another fetch stage
* ``undo.py``      undo: deletes what one run created
* ``export.py``    export runs: Kinde's import files instead of API writes
* ``verify.py``    verify: Kinde read back and compared with a run
* ``actions.py``   what a command asks for; ``modes.py``: the run kinds' names in the journal
* ``api.py``       the library entry points (CLI, demo, tests, benchmarks)

This package's ``__init__`` imports nothing, so a stage may name a mode (``modes.py``) without
loading the lifecycle above it.
"""
