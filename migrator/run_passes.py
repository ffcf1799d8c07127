"""A run's passes: its start, then each ``resume`` or ``retry-failed`` over the same run id.

The journal's counts are the run's, across every pass. So that a summary tells what *this* pass did, the
run's counts are recorded (journal ``passes``) when a pass begins, once a resume's or retry's reopening is
done; at its end the summary's counts are the difference, and what the earlier passes did is kept apart in
``Summary.earlier``. Failed users are a state, not a tally: a retry puts them back to pending before the
pass begins, so the failed users at its end that were not failed at its start are the ones it failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrator.journal import Journal

START, RESUME, RETRY_FAILED = "start", "resume", "retry-failed"
COUNTED = ("created", "already_present", "done_earlier", "password_resets", "memberships_added", "failed")
BY_KIND = ("passwords_set", "skipped")  # counts by method / by reason


@dataclass(frozen=True)
class PassStart:
    number: int
    kind: str
    before: dict[str, Any]  # the run's counts when the pass began (COUNTED and BY_KIND)


def run_counts(journal: Journal, run_id: int) -> dict[str, Any]:
    """What the run has done so far, in every pass: the counts a summary shows."""
    outcome = journal.users.outcome_counts(run_id)
    counts: dict[str, Any] = {name: outcome[name] for name in COUNTED if name in outcome}
    counts["memberships_added"] = journal.organizations.membership_counts(run_id).get("done", 0)
    counts["passwords_set"] = outcome["passwords_set"]
    counts["skipped"] = journal.users.skip_counts(run_id)
    return counts


def begin_pass(journal: Journal, run_id: int, kind: str) -> PassStart:
    before = run_counts(journal, run_id)
    return PassStart(journal.runs.begin_pass(run_id, kind, before), kind, before)


def _minus(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {key: value - before.get(key, 0) for key, value in now.items() if value - before.get(key, 0)}


def this_pass(journal: Journal, run_id: int, counts: dict[str, Any], start: PassStart) -> dict[str, Any]:
    """The run's counts now, less what earlier passes had done: this pass's counts. A user an earlier pass
    created (then stopped or failed) and this one finished is not counted as created by this pass, but apart."""
    done: dict[str, Any] = {name: counts[name] - start.before.get(name, 0) for name in COUNTED}
    for name in BY_KIND:
        done[name] = _minus(counts[name], start.before.get(name, {}))
    created = journal.users.created_in_pass(run_id, start.number)
    done["finished_created_earlier"], done["created"] = done["created"] - created, created
    return done
