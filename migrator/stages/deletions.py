"""How an undo journals one deletion, so every count rests on Kinde's answer.

A DELETE is journaled as sent before it goes: if its answer is lost (the process killed, a timeout), the next
pass that finds the item absent knows this undo's DELETE did it ("deleted"); an item Kinde proves absent
without our DELETE having been sent is "already gone". Used by the undo of users, organizations and roles
(undo.py) and of permissions, property definitions and role attachments (undo_definitions.py).
"""

from __future__ import annotations

from typing import Any

from migrator.errors import ApiError
from migrator.journal import DeletionState, Journal

ALREADY_GONE = "already gone from Kinde (it has no such item)"
DELETE_SENT = "DELETE sent"
GONE_SINCE = (DeletionState.GONE, "gone from Kinde before our DELETE reached it (Kinde has no such item)")


def journal_sending(journal: Journal, run_id: int, kind: str, key: str) -> None:
    """Journaled before a DELETE is sent: if its answer is lost (killed, timed out), the next pass that finds the
    item gone knows this undo's DELETE did it."""
    journal.record_deletion(run_id, kind, key, DeletionState.PENDING, DELETE_SENT)


def was_sent(item: Any) -> bool:
    """An earlier pass journaled this item's DELETE as sent (``journal_sending``)."""
    return (item["detail"] or "").startswith(DELETE_SENT)


def failed_detail(item: Any, exc: ApiError) -> str:
    sent = was_sent(item) or exc.ambiguous
    return f"{DELETE_SENT}; {exc}" if sent else str(exc)


def absent_outcome(sent: bool) -> tuple[DeletionState, str]:
    """An item Kinde proves absent: deleted by this undo when an earlier pass sent its DELETE (the answer was
    lost), else already gone."""
    if sent:
        return DeletionState.DELETED, "deleted by an earlier pass of this undo (its answer was lost)"
    return DeletionState.GONE, ALREADY_GONE


def record_outcome(journal: Journal, run_id: int, kind: str, key: str, deleted: bool) -> None:
    """A DELETE Kinde confirmed, or its answer that there was nothing to delete (gone since we looked)."""
    journal.record_deletion(run_id, kind, key, *((DeletionState.DELETED, None) if deleted else GONE_SINCE))
