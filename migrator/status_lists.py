"""Who failed, who was skipped and which warnings came up, for ``migrator status`` (journal only).

Warnings are free text naming a user and a value; grouping them by *kind* (the text with the user,
the values and the numbers taken out) turns thousands of lines into a short list with counts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from migrator.journal import Journal

FAILED_USER_COLUMNS = ("kind", "clerk_id", "email", "clerk_org_id", "code", "message")
SHOWN = 20  # users listed by a human `status` before "... and N more"

_PREFIXES = (
    re.compile(r"^.*?\(user_\w+\):\s*"),  # the export's "path: row 12 (user_x): "
    re.compile(r"^user_\w+:\s*"),  # the mapping's "user_x: "
)
_VALUES = (
    (re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""), "…"),  # quoted values (repr)
    (re.compile(r"\S+@\S+"), "…"),  # an email address
    (re.compile(r"\buser_\w+"), "…"),  # other users named in it
    (re.compile(r"\+\d+"), "…"),  # a phone number
    (re.compile(r"…(?:, …)+"), "…"),  # a list of them
    (re.compile(r"\+?\d[\d ]*\d|\d"), "N"),  # counts, row numbers, phone numbers
)


def failure_line(code: str, message: str, users: int, messages: int = 1) -> str:
    """One error code's failed users in one line. Messages name each user's details (a Kinde id, a phone), so
    a code's users may have different ones: then the line says how many and shows one as an example only."""
    who = f"{users} user{'s' * (users != 1)} [{code or 'no code'}]"
    if messages <= 1:
        return f"{who}: {message}"
    return f"{who}, {messages} different messages (each user's in `status --failed`), e.g.: {message}"


def warning_kind(message: str) -> str:
    """``user_1: phone_numbers: 2 other number(s) not migrated`` -> ``phone_numbers: N other number(s) not migrated``."""
    for prefix in _PREFIXES:
        message = prefix.sub("", message, count=1)
    for pattern, placeholder in _VALUES:
        message = pattern.sub(placeholder, message)
    return message


def warning_kinds(journal: Journal, run_id: int) -> list[tuple[str, int]]:
    """Every warning of the run, counted by kind, most frequent first."""
    counts = Counter(warning_kind(p.message) for p in journal.users.problems(run_id) if p.kind == "warning")
    return counts.most_common()


def failed_user_rows(journal: Journal, run_id: int) -> Iterator[dict[str, Any]]:
    """Failed users then failed memberships, each with the reason Kinde or Clerk gave."""
    for user in journal.users.failed(run_id):
        yield {
            "kind": "user",
            "clerk_id": user.clerk_id,
            "email": user.email_key,
            "clerk_org_id": None,
            "code": user.error_code,
            "message": user.error_message,
        }
    for member in journal.organizations.failed_memberships(run_id):
        yield {
            "kind": "membership",
            "clerk_id": member.clerk_user_id,
            "email": None,
            "clerk_org_id": member.clerk_org_id,
            "code": None,
            "message": member.error,
        }


def skipped_user_rows(journal: Journal, run_id: int) -> Iterator[dict[str, Any]]:
    for user in journal.users.skipped(run_id):
        yield {
            "clerk_id": user.clerk_id,
            "email": user.email_key,
            "reason": user.skip_reason,
            "detail": user.skip_detail,
        }
