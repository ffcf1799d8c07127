"""A user of a `lazy finish` run's cohort found in Kinde with its own Clerk id: adopted, never created again
(``stages/lazy_finish.py`` says how the run goes; ``reconcile.adopt`` calls this)."""

from __future__ import annotations

import json

from migrator.journal import Created, Journal, Lookup, PasswordStep, Step, UserFields, UserRow, UserState
from migrator.kinde.client import KindeUser
from migrator.models import plan_from_record


def closes_window(row: UserRow) -> bool:
    """The row is of a lazy-finish run's cohort (``users.lazy = 2``: only such a run stages one)."""
    return row.lazy == 2


def adopt_moved(journal: Journal, run_id: int, row: UserRow, match: KindeUser) -> None:
    """A user of the closing cohort found in Kinde with its own Clerk id as ``provided_id``.

    Created by the workflow (the documented reading): moved, adopted. Created by the base run without a password
    (the users-in-Kinde reading): moved once Kinde says it signed in; otherwise it keeps the fallback (a reset
    requested on the user the run created). Nothing is created again either way."""
    earlier = journal.users.earlier_steps(run_id, row.clerk_id, match.id)
    base = journal.runs.get(journal.runs.get(run_id).parent_run_id)
    users_in_kinde = bool(base.config_summary.get("lazy_users_in_kinde"))
    fields: UserFields = {
        "lookup": Lookup.FOUND,
        "kinde_id": match.id,
        "created": Created.EARLIER if earlier is not None else Created.WORKFLOW,
    }
    moved = earlier is None or match.signed_in or not users_in_kinde
    if moved and row.plan:
        plan = json.loads(row.plan)
        plan["request_password_reset"] = False  # the workflow set the password the user signs in with
        fields.update(plan=json.dumps(plan), password=PasswordStep.NA, password_problem=None)
        fields["flags"] = Step.PENDING if plan.get("suspended") else Step.NA
        if earlier is None:
            # The workflow creates the user with what it can send: never a phone (Kinde needs its country, which
            # it cannot work out), never an email another Clerk user holds, the sign-in email alone when Kinde
            # refuses more. The plan decides the identities: the load adds those the Kinde user lacks (it reads
            # the user's identities first, ``created = workflow``), as it adds any a create did not carry.
            identities = plan_from_record(row.clerk_id, plan).create_body()["identities"]
            if len(identities) > 1:  # one: the email the user signed in with, which the workflow always sends
                fields.update(identities=Step.PENDING, missing_identities=json.dumps(identities))
    left = (
        fields.get("identities", row.identities) == Step.PENDING
        or fields.get("flags", row.flags) == Step.PENDING
        or fields.get("password", row.password) == PasswordStep.PENDING
        or row.properties == Step.PENDING
        or row.social == Step.PENDING
    )
    if not left:
        fields["state"] = UserState.DONE
    journal.users.update(run_id, row.clerk_id, **fields)
