"""Users staged in a real journal, for unit tests of the stages that read them (conflicts, reconcile, reports).

``stage`` goes through the fetch stage's own ``staged_row``, so keys and plans look exactly as a run
stages them; ``row`` writes a journal row with chosen step states when a test needs a state that
staging never produces on its own.
"""

from __future__ import annotations

import json
from typing import Any

from migrator.journal import Journal, Run, RunMode
from migrator.mapping import MappingOptions
from migrator.models import ExportRow
from migrator.stages.staging import staged_row


def new_run(journal: Journal, mode: RunMode = RunMode.RUN) -> Run:
    return journal.runs.start(mode=mode, fingerprint="f", summary={}, export_path=None, export_fingerprint=None)


def clerk_user(
    clerk_id: str,
    *emails: str,
    username: str | None = None,
    phone: str | None = None,
    password_enabled: bool | None = None,
) -> dict[str, Any]:
    """Clerk User JSON: the first email is the primary one; every email and the phone are verified."""
    addresses = [
        {"id": f"idn_{clerk_id}_{n}", "email_address": email, "verification": {"status": "verified"}}
        for n, email in enumerate(emails)
    ]
    user: dict[str, Any] = {
        "id": clerk_id,
        "email_addresses": addresses,
        "primary_email_address_id": addresses[0]["id"] if addresses else None,
        "username": username,
        "phone_numbers": [],
    }
    if phone:
        user["phone_numbers"] = [
            {"id": f"idn_{clerk_id}_phone", "phone_number": phone, "verification": {"status": "verified"}}
        ]
        user["primary_phone_number_id"] = f"idn_{clerk_id}_phone"
    if password_enabled is not None:
        user["password_enabled"] = password_enabled
    return user


def stage(
    journal: Journal,
    run_id: int,
    users: list[tuple[int, dict[str, Any]]],
    *,
    export: dict[str, ExportRow] | None = None,
    options: MappingOptions | None = None,
) -> None:
    """Stage ``(seq, clerk user)`` pairs as the fetch stage does, with their problems."""
    rows, problems = [], []
    for seq, user in users:
        staged, user_problems = staged_row(user, seq, (export or {}).get(user["id"]), options or MappingOptions(), None)
        rows.append(staged)
        problems.extend(user_problems)
    journal.users.stage(run_id, rows)
    journal.users.add_problems(run_id, problems)


STAGED_LATER = ("kinde_id", "identities", "missing_identities", "attempts", "error_code", "error_message")


def put(journal: Journal, run_id: int, clerk_id: str, seq: int, **fields: Any) -> None:
    """Stage ``row(clerk_id, seq, **fields)``, then set the columns staging never writes (a Kinde id, ...)."""
    later = {name: fields.pop(name) for name in STAGED_LATER if name in fields}
    journal.users.stage(run_id, [row(clerk_id, seq, **fields)])
    if later:
        journal.users.update(run_id, clerk_id, **later)


def row(clerk_id: str, seq: int, **fields: Any) -> dict[str, Any]:
    """A pending journal row with an email plan; ``fields`` override any column stage_users writes."""
    email = fields.pop("email", f"{clerk_id}@example.com")
    plan = {"identities": [{"type": "email", "value": email, "is_verified": True}], "keys": [["email", email.lower()]]}
    staged = {
        "clerk_id": clerk_id,
        "seq": seq,
        "plan": json.dumps(plan),
        "email_key": email.lower(),
        "username_key": None,
        "phone_key": None,
        "hasher": None,
        "password_method": None,
        "password_problem": None,
        "state": "pending",
        "lookup": "pending",
        "created": "pending",
        "password": "n/a",
        "flags": "n/a",
        "skip_reason": None,
        "skip_detail": None,
    }
    staged.update(fields)
    return staged
