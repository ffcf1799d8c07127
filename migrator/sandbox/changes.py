"""What happened in the sandbox's Clerk after it started: sign-ups, edits, bans, password changes, deletions.

Why a small overlay: the generator computes every user from its index, so a million users cost no
memory; a catch-up test changes a handful of them. Only those are recorded here (a dict entry per
touched user), and ``generator.Dataset`` consults it when it builds a user.

Every change is stamped with the wall-clock time it was made, which is after every generated
timestamp (they end in 2024): so ``+created_at`` order stays index order (sign-ups get the next
indexes) and, in ``-updated_at`` order, the touched users come first, newest first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

PATCHABLE = frozenset({"first_name", "last_name", "banned", "username"})  # username None: removed in Clerk


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class ClerkChanges:
    created: dict[int, int] = field(default_factory=dict)  # index -> created_at of users signed up since
    patches: dict[int, dict[str, Any]] = field(default_factory=dict)  # index -> profile fields that changed
    password_changed: dict[int, int] = field(default_factory=dict)  # index -> when the password changed
    deleted: set[int] = field(default_factory=set)
    identities_changed: set[int] = field(default_factory=set)  # users given an email while serving (filters ask)
    last_ms: int = 0  # stamps strictly increase: two changes in one millisecond still have an order

    def touched(self) -> dict[int, int]:
        """Index -> updated_at of every user changed or signed up since the start (deleted ones excluded)."""
        stamps = {i: patch["updated_at"] for i, patch in self.patches.items() if "updated_at" in patch}
        return {i: at for i, at in stamps.items() if i not in self.deleted}

    def patch(self, index: int, fields: dict[str, Any], at_ms: int, *, bump: bool = True) -> None:
        """Record changed fields; ``bump=False``: Clerk leaves ``updated_at`` as it was (a reading of the spec)."""
        unknown = set(fields) - PATCHABLE
        if unknown:
            raise ValueError(f"not changeable in the sandbox: {sorted(unknown)}; changeable: {sorted(PATCHABLE)}")
        self.last_ms = max(at_ms, self.last_ms + 1)
        self.patches.setdefault(index, {}).update(fields)
        if bump:
            self.patches[index]["updated_at"] = self.last_ms
