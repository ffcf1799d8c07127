"""Every request a canary sends to Clerk, and every answer, against Clerk's OpenAPI spec.

A canary of the two users who share an email (the sandbox's users 11 and 12) and one phone-only user, in
process over the sandbox apps: besides the ordinary requests it asks Clerk who else holds its users'
identities (``email_address`` / ``phone_number`` / ``username`` filters, ``stages.shared_holders``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from migrator.journal import Journal
from migrator.runs.api import Canary, run_migration
from migrator.sandbox.clerk_app import build_clerk_app
from migrator.sandbox.generator import SHARED_EMAIL_OTHER, SHARED_EMAIL_OWNER, Dataset
from migrator.sandbox.kinde_app import KindeSandboxConfig, build_kinde_app
from tests.contract import Contract, in_process_settings
from tests.test_client_contract import RecordingTransport, contract_problems, operation, query

pytestmark = pytest.mark.contract

CLERK_KEY = "sk_test_canary_contract"
KINDE_SECRET = "canary-contract-secret"


def test_a_canary_asks_clerk_for_the_other_holders_as_the_spec_allows(clerk_spec: Contract, tmp_path: Path) -> None:
    dataset = Dataset(120)
    export = tmp_path / "clerk-export.csv"
    dataset.write_export_csv(export)
    phone_only = next(
        i for i in range(dataset.n) if dataset.identifiers(i)["phones"] and not dataset.identifiers(i)["emails"]
    )
    chosen = (SHARED_EMAIL_OWNER, SHARED_EMAIL_OTHER, phone_only)
    config = KindeSandboxConfig(client_secret=KINDE_SECRET)
    clerk = RecordingTransport(httpx.ASGITransport(app=build_clerk_app(dataset, secret_key=CLERK_KEY)))
    kinde = httpx.ASGITransport(app=build_kinde_app(config))
    settings = in_process_settings(tmp_path / "state", export, CLERK_KEY, config.client_id, KINDE_SECRET)
    journal = Journal(settings.state_dir)
    try:
        summary = asyncio.run(
            run_migration(
                settings, journal, Canary(only=tuple(dataset.user_id(i) for i in chosen)),
                on_event=lambda event: None, confirm=lambda plan: True, clerk_transport=clerk, kinde_transport=kinde,
            )
        )  # fmt: skip
    finally:
        journal.close()
    assert summary.failed == 0 and summary.created == 3
    filters = {name for e in clerk.exchanges if operation(e) == "GET /v1/users" for name in query(e)}
    assert {"email_address", "phone_number", "user_id"} <= filters
    assert contract_problems(clerk.exchanges, clerk_spec) == []
