"""Every request a catch-up's update and its undo send, and every answer, against Kinde's OpenAPI spec.

In-process over the sandbox apps: a full run; in Clerk a rename, a ban, an email added and a primary email
replaced; a catch-up (which now reads each user's profile before its PATCH and keeps Kinde's id of each
identity it adds); then the undo of that catch-up (profile PATCHes back, identities re-added and made primary
again, added ones deleted). The operations are asserted too, so the test fails if one stops being sent.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from migrator.journal import Journal
from migrator.runs.actions import Start
from migrator.runs.api import Sync, Undo, UndoSummary, run_migration, run_undo
from migrator.sandbox.clerk_app import build_clerk_app
from migrator.sandbox.generator import Dataset
from migrator.sandbox.kinde_app import KindeSandboxConfig, build_kinde_app
from tests.contract import Contract, in_process_settings
from tests.contract import operation as contract_operation
from tests.test_client_contract import RecordingTransport, contract_problems

pytestmark = pytest.mark.contract

CLERK_KEY = "sk_test_undo_sync_contract"
KINDE_SECRET = "undo-sync-contract-secret"
TEMPLATES = (
    (re.compile(r"^/api/v1/users/[^/]+/identities$"), "/api/v1/users/{user_id}/identities"),
    (re.compile(r"^/api/v1/identities/[^/]+$"), "/api/v1/identities/{identity_id}"),
)
RESTORING = {
    "GET /api/v1/user",
    "PATCH /api/v1/user",
    "GET /api/v1/users/{user_id}/identities",
    "POST /api/v1/users/{user_id}/identities",
    "PATCH /api/v1/identities/{identity_id}",
    "DELETE /api/v1/identities/{identity_id}",
}


def operation(exchange: httpx.Response) -> str:
    return contract_operation(exchange, TEMPLATES)


def eligible_with_email(dataset: Dataset, count: int) -> list[int]:
    found = [
        i for i in range(dataset.n)
        if dataset.expected(i)["eligible"] and dataset.expected(i)["email"] and not dataset.expected(i)["banned"]
    ]  # fmt: skip
    return found[:count]


def catch_up_and_undo(
    tmp_path: Path, *, added_identity_id: bool = True
) -> tuple[UndoSummary, list[httpx.Response], list[httpx.Response]]:
    """(undo summary, the catch-up's Kinde exchanges, the undo's Kinde exchanges)."""
    dataset = Dataset(120)
    export = tmp_path / "clerk-export.csv"
    dataset.write_export_csv(export)
    config = KindeSandboxConfig(client_secret=KINDE_SECRET, added_identity_id=added_identity_id)
    clerk = httpx.ASGITransport(app=build_clerk_app(dataset, secret_key=CLERK_KEY))
    kinde = RecordingTransport(httpx.ASGITransport(app=build_kinde_app(config)))
    settings = in_process_settings(tmp_path / "state", export, CLERK_KEY, config.client_id, KINDE_SECRET)
    transports = {"clerk_transport": clerk, "kinde_transport": kinde}
    journal = Journal(settings.state_dir)
    try:
        run = asyncio.run(run_migration(settings, journal, Start(), on_event=lambda e: None, confirm=lambda p: True,
                                        **transports))  # fmt: skip
        assert run.exit_code == 0, run.failures
        renamed, banned, added, replaced = eligible_with_email(dataset, 4)
        dataset.change_user(renamed, {"first_name": "Renamed"})
        dataset.change_user(banned, {"banned": True})
        dataset.add_email(added, "added-later@example.test")
        old_email = dataset.expected(replaced)["email"]
        dataset.add_email(replaced, "replacement@example.test", primary=True)
        dataset.remove_email(replaced, old_email)
        kinde.exchanges.clear()
        sync = asyncio.run(run_migration(settings, journal, Sync(), on_event=lambda e: None, confirm=lambda p: True,
                                         **transports))  # fmt: skip
        assert sync.exit_code == 0, sync.failures
        synced = list(kinde.exchanges)
        kinde.exchanges.clear()
        summary = asyncio.run(run_undo(settings, journal, Undo(sync.run_id), on_event=lambda e: None,
                                       confirm=lambda c: True, **transports))  # fmt: skip
    finally:
        journal.close()
    return summary, synced, kinde.exchanges


@pytest.mark.parametrize("added_identity_id", [True, False])
def test_a_catch_up_and_its_undo_exchange_only_what_the_spec_allows(
    kinde_spec: Contract, tmp_path: Path, added_identity_id: bool
) -> None:
    """``added_identity_id=False``: a Kinde whose 201 names no identity id; the undo finds what the catch-up
    added, and the identity it re-adds, by type and value."""
    summary, synced, undone = catch_up_and_undo(tmp_path, added_identity_id=added_identity_id)
    assert summary.exit_code == 0
    assert summary.outcomes["user_profile"] == {"deleted": 2}
    assert summary.outcomes["identity_removed"] == {"deleted": 1}
    assert summary.outcomes["identity_added"] == {"deleted": 2}
    assert {operation(e) for e in undone} >= RESTORING
    added = [e for e in synced if operation(e) == "POST /api/v1/users/{user_id}/identities"]
    assert len(added) == 2
    assert all(("identity" in e.json()) == added_identity_id for e in added)
    assert contract_problems(synced, kinde_spec) == []
    assert contract_problems(undone, kinde_spec) == []
