"""Every request an undo sends, and every answer it gets, against Kinde's OpenAPI spec.

A real run (properties, organization properties, role permissions) in-process over the sandbox apps,
against a Kinde that already has a role the run finds (so the run attaches a permission to a role it
did not create) and an organization it finds by external_id (so it writes a value on one it did not
create); then its undo, whose exchanges are recorded and validated one by one. The operations seen
are asserted too, so the test fails if the undo stops sending one (or sends one the spec lacks).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from migrator.connect import connect
from migrator.journal import Journal
from migrator.runs.api import Undo, UndoSummary, run_undo
from migrator.runs.migration import Migration
from migrator.sandbox.clerk_app import build_clerk_app
from migrator.sandbox.generator import Dataset
from migrator.sandbox.kinde_app import KindeSandboxConfig, build_kinde_app
from tests.contract import Contract, in_process_settings
from tests.contract import operation as contract_operation
from tests.test_client_contract import ORGANIZATION_PROPERTIES, PROPERTIES, RecordingTransport, contract_problems

pytestmark = pytest.mark.contract

CLERK_KEY = "sk_test_undo_contract"
KINDE_SECRET = "undo-contract-secret"
TEMPLATES = (
    (re.compile(r"^/api/v1/roles/[^/]+/permissions/[^/]+$"), "/api/v1/roles/{role_id}/permissions/{permission_id}"),
    (re.compile(r"^/api/v1/roles/[^/]+/permissions$"), "/api/v1/roles/{role_id}/permissions"),
    (re.compile(r"^/api/v1/roles/[^/]+$"), "/api/v1/roles/{role_id}"),
    (re.compile(r"^/api/v1/permissions/[^/]+$"), "/api/v1/permissions/{permission_id}"),
    (re.compile(r"^/api/v1/properties/[^/]+$"), "/api/v1/properties/{property_id}"),
    (re.compile(r"^/api/v1/organizations/[^/]+/properties$"), "/api/v1/organizations/{org_code}/properties"),
    (re.compile(r"^/api/v1/organizations/[^/]+/users$"), "/api/v1/organizations/{org_code}/users"),
    (re.compile(r"^/api/v1/organization/[^/]+$"), "/api/v1/organization/{org_code}"),
)
UNDO_OPERATIONS = {
    "POST /oauth2/token",
    "GET /api/v1/user",
    "DELETE /api/v1/user",
    "GET /api/v1/organizations",
    "GET /api/v1/organizations/{org_code}/users",
    "DELETE /api/v1/organization/{org_code}",
    "GET /api/v1/organizations/{org_code}/properties",
    "PATCH /api/v1/organizations/{org_code}/properties",
    "GET /api/v1/roles",
    "GET /api/v1/roles/{role_id}/permissions",
    "DELETE /api/v1/roles/{role_id}/permissions/{permission_id}",
    "DELETE /api/v1/roles/{role_id}",
    "GET /api/v1/permissions",
    "DELETE /api/v1/permissions/{permission_id}",
    "GET /api/v1/search/users",
    "GET /api/v1/properties",
    "DELETE /api/v1/properties/{property_id}",
}


def operation(exchange: httpx.Response) -> str:
    return contract_operation(exchange, TEMPLATES)


async def kinde_holds_before(kinde: httpx.AsyncBaseTransport, config: KindeSandboxConfig, clerk_org_id: str) -> None:
    """A role the run will find (``viewer``) and an organization imported earlier with the Clerk org's id."""
    async with httpx.AsyncClient(transport=kinde, base_url="http://localhost") as http:
        token = (
            await http.post(
                "/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": config.client_id,
                    "client_secret": KINDE_SECRET,
                    "audience": "http://localhost/api",
                },
            )
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        role = await http.post("/api/v1/roles", json={"key": "viewer", "name": "Viewer"}, headers=headers)
        org = await http.post(
            "/api/v1/organization", json={"name": "Imported", "external_id": clerk_org_id}, headers=headers
        )
        assert role.status_code == 201 and org.status_code in (200, 201)


def undo_recording(tmp_path: Path, config: KindeSandboxConfig) -> tuple[UndoSummary, list[httpx.Response]]:
    dataset = Dataset(200)
    export = tmp_path / "clerk-export.csv"
    dataset.write_export_csv(export)
    clerk = httpx.ASGITransport(app=build_clerk_app(dataset, secret_key=CLERK_KEY))
    kinde = RecordingTransport(httpx.ASGITransport(app=build_kinde_app(config)))
    settings = in_process_settings(
        tmp_path / "state",
        export,
        CLERK_KEY,
        config.client_id,
        KINDE_SECRET,
        properties=PROPERTIES,
        organization_properties=ORGANIZATION_PROPERTIES,
    )
    journal = Journal(settings.state_dir)

    async def migrate() -> int:
        await kinde_holds_before(kinde.inner, config, dataset.organizations()[0]["id"])
        async with connect(settings, clerk_transport=clerk, kinde_transport=kinde) as (clerk_api, kinde_api):
            migration = Migration(settings, journal, clerk_api, kinde_api, lambda event: None)
            summary = await migration.start(dry_run=False, confirm=lambda plan: True)
        assert summary.exit_code == 0, summary.failures
        return summary.run_id

    try:
        run_id = asyncio.run(migrate())
        kinde.exchanges.clear()
        summary = asyncio.run(
            run_undo(
                settings,
                journal,
                Undo(run_id),
                on_event=lambda e: None,
                confirm=lambda c: True,
                clerk_transport=clerk,
                kinde_transport=kinde,
            )
        )
    finally:
        journal.close()
    return summary, kinde.exchanges


@pytest.mark.parametrize("null_value", ["clears", "refused"])
def test_every_undo_exchange_matches_the_spec(kinde_spec: Contract, tmp_path: Path, null_value: str) -> None:
    """``refused``: a Kinde that refuses null to clear a value gets the empty string instead."""
    config = KindeSandboxConfig(client_secret=KINDE_SECRET, property_null_value=null_value)  # type: ignore[arg-type]
    summary, exchanges = undo_recording(tmp_path, config)
    assert summary.exit_code == 0
    assert {kind for kind, states in summary.outcomes.items() if states.get("deleted")} >= {
        "user", "organization", "organization_property", "role_permission", "role", "permission", "property",
    }  # fmt: skip
    assert {operation(e) for e in exchanges} == UNDO_OPERATIONS
    assert contract_problems(exchanges, kinde_spec) == []
    clears = [e for e in exchanges if operation(e) == "PATCH /api/v1/organizations/{org_code}/properties"]
    statuses = [e.status_code for e in clears]
    assert statuses == ([200] if null_value == "clears" else [400, 200])


def test_the_checks_refuse_a_broken_undo_exchange(kinde_spec: Contract, tmp_path: Path) -> None:
    """The control: a search answer whose properties are not strings breaks the spec, and is caught."""
    _, exchanges = undo_recording(tmp_path, KindeSandboxConfig(client_secret=KINDE_SECRET))
    search = next(e for e in exchanges if operation(e) == "GET /api/v1/search/users")
    broken = httpx.Response(
        200,
        headers={"content-type": "application/json"},
        json={"results": [{"id": "kp_1", "properties": {"plan": 3}}]},
        request=search.request,
    )
    assert len(contract_problems([broken], kinde_spec)) == 1
