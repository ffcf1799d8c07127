"""One fetched Clerk user -> the journal row that stages it (its plan, lookup keys and step states).

Pure apart from reading the user's export row: the mapping itself is ``migrator.mapping``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from migrator.clerk.export import row_problems
from migrator.journal import (
    NOT_CARRIED_ACCOUNT,
    NOTHING_TO_DO,
    UNMAPPED_PROVIDER,
    Created,
    Lookup,
    PasswordStep,
    Step,
    UserState,
)
from migrator.mapping import MappingOptions, all_identity_keys, identity_keys, mfa_enrolled, plan_user
from migrator.models import ExportRow, Skip, UserPlan, plan_to_record

Problem = tuple[str, str, str]  # (clerk id, kind, message)


def staged_row(
    user: dict[str, Any], seq: int, row: ExportRow | None, options: MappingOptions, export_path: Path | None
) -> tuple[dict[str, Any], list[Problem]]:
    """The journal row for ``user`` and the problems to report for it (bad export cells, skips, warnings)."""
    clerk_id = user["id"]
    result = plan_user(user, row, options)
    problems: list[Problem] = []
    if row is not None and export_path is not None:
        # Bad cells in the export (an address that is not an email, ...) are reported, never fatal.
        problems.extend((clerk_id, "warning", f"{export_path}: {p}") for p in row_problems(row))
    # MFA is noted for skipped users too: the re-enrolment list names everyone enrolled in Clerk.
    base = {
        "clerk_id": clerk_id,
        "seq": seq,
        "hasher": row.password_hasher if row else None,
        "mfa": int(mfa_enrolled(user, row)),
    }
    if isinstance(result, Skip):
        problems.append((clerk_id, "skipped", f"{result.reason}: {result.detail}".rstrip(": ")))
        return {**base, **_skipped(user, row, options, result)}, problems
    problems.extend((clerk_id, "warning", warning) for warning in result.warnings)
    problems.extend((clerk_id, UNMAPPED_PROVIDER, provider) for provider in result.unmapped_providers)
    problems.extend((clerk_id, NOT_CARRIED_ACCOUNT, item.provider) for item in result.social_not_carried)
    if result.lazy and not options.lazy_users_in_kinde:
        return {**base, **_lazy(result)}, problems
    return {**base, **_pending(result), "lazy": int(result.lazy)}, problems


def _skipped(user: dict[str, Any], row: ExportRow | None, options: MappingOptions, skip: Skip) -> dict[str, Any]:
    password_problem = email_key = None
    if skip.reason == "password_not_importable":
        # Still listed in the password report, with the address the team writes to.
        password_problem = skip.detail
        kept = plan_user(user, row, replace(options, unimportable_passwords="reset"))
        email_key = identity_keys(kept).get("email") if isinstance(kept, UserPlan) else None
    return {
        "plan": None,
        "email_key": email_key,
        "username_key": None,
        "phone_key": None,
        "password_method": None,
        "password_problem": password_problem,
        "state": UserState.SKIPPED,
        **NOTHING_TO_DO,
        "skip_reason": skip.reason,
        "skip_detail": skip.detail,
        "lazy": 0,
    }


def _lazy(plan: UserPlan) -> dict[str, Any]:
    """A user of the lazy cohort: not created by this run (Kinde's workflow creates it at its first sign-in with
    the old password); its organizations, properties and social identities wait for `migrator lazy finish`."""
    return {**_pending(plan), **NOTHING_TO_DO, "state": UserState.LAZY, "lazy": 1}


def _pending(plan: UserPlan) -> dict[str, Any]:
    keys = identity_keys(plan)
    if plan.password:
        password = PasswordStep.PENDING
    else:
        password = PasswordStep.RESET if plan.request_password_reset else PasswordStep.NA
    return {
        "plan": json.dumps({**plan_to_record(plan), "keys": all_identity_keys(plan)}),
        "email_key": keys.get("email"),
        "username_key": keys.get("username"),
        "phone_key": keys.get("phone"),
        "password_method": plan.password.method if plan.password else None,
        "password_problem": plan.password_problem.reason if plan.password_problem else None,
        "state": UserState.PENDING,
        "lookup": Lookup.PENDING,
        "created": Created.PENDING,
        "password": password,
        "flags": Step.PENDING if plan.request_password_reset or plan.suspended else Step.NA,
        "properties": Step.PENDING if plan.properties else Step.NA,
        "social": Step.PENDING if plan.social else Step.NA,
        "skip_reason": None,
        "skip_detail": None,
    }
