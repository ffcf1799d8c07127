"""`migrator sandbox serve`'s switches for a rehearsal: each flag reaches the sandbox it serves (probed over
loopback while it serves, the command in-process), and every bad value is refused by the parser (exit 2)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator import demo
from migrator.http import error_details
from migrator.sandbox.clerk_app import ClerkBehaviour
from migrator.sandbox.kinde_app import SharedQuota
from migrator.sandbox.server import Sandbox
from tests.e2e import cli_env, run_cli


def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, probe: Callable[[Sandbox], None], *flags: str) -> Any:
    """``migrator sandbox serve --users 20 FLAGS``, in-process: ``probe`` runs while it serves, then it stops."""
    probed: list[Sandbox] = []

    def probe_then_stop(sandbox: Sandbox) -> None:
        probed.append(sandbox)
        probe(sandbox)

    monkeypatch.setattr(demo, "wait_until_stopped", probe_then_stop)
    result = run_cli("sandbox", "serve", "--users", "20", *flags, cwd=tmp_path, env=cli_env())
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(probed) == 1 and "export KINDE_DOMAIN=" in result.stdout
    return probed[0]


def token(sandbox: Sandbox, http: httpx.Client) -> dict[str, Any]:
    answer = http.post(
        f"{sandbox.kinde_url}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.kinde_config.client_id,
            "client_secret": sandbox.kinde_config.client_secret,
            "audience": f"{sandbox.kinde_url}/api",
        },
    )
    answer.raise_for_status()
    return answer.json()


def test_token_scope_and_clerk_switches_reach_the_served_sandbox(tmp_path: Path, monkeypatch) -> None:
    def probe(sandbox: Sandbox) -> None:
        with httpx.Client(timeout=30) as http:
            issued = token(sandbox, http)
            assert issued["expires_in"] == 120  # --token-lifetime
            bearer = {"Authorization": f"Bearer {issued['access_token']}"}
            refused = http.get(f"{sandbox.kinde_url}/api/v1/roles", headers=bearer)
            assert refused.status_code == 403 and "read:roles" in refused.text  # --without-scope read:roles
            for _ in range(2):  # --token-max-uses 3: the refused call and these two use the token up
                assert http.get(f"{sandbox.kinde_url}/api/v1/users", headers=bearer).status_code == 200
            expired = http.get(f"{sandbox.kinde_url}/api/v1/users", headers=bearer)
            assert expired.status_code == 403  # --bad-token-status 403

            clerk = {"Authorization": f"Bearer {sandbox.secret_key}"}
            users = f"{sandbox.clerk_url}/users"
            first = http.get(users, params={"limit": 5, "order_by": "created_at"}, headers=clerk)
            assert first.status_code == 200
            after = {"limit": 5, "order_by": "created_at", "starting_after": first.json()[-1]["id"]}
            assert http.get(users, params=after, headers=clerk).status_code == 422  # --clerk-cursor rejected
            assert http.get(users, params={"limit": 5}, headers=clerk).status_code == 502  # the outage began

    sandbox = serve(
        tmp_path,
        monkeypatch,
        probe,
        *("--token-lifetime", "120", "--without-scope", "read:roles", "--token-max-uses", "3"),
        *("--bad-token-status", "403", "--clerk-cursor", "rejected"),
        *("--clerk-outage-after-pages", "2", "--clerk-outage-seconds", "600", "--clerk-outage-status", "502"),
    )
    assert sandbox.options.clerk.outage_seconds == 600


def test_a_minimal_token_and_a_clerk_without_organizations_reach_the_served_sandbox(
    tmp_path: Path, monkeypatch
) -> None:
    def probe(sandbox: Sandbox) -> None:
        with httpx.Client(timeout=30) as http:
            bearer = {"Authorization": f"Bearer {token(sandbox, http)['access_token']}"}
            assert http.get(f"{sandbox.kinde_url}/api/v1/users", headers=bearer).status_code == 200
            refused = http.get(f"{sandbox.kinde_url}/api/v1/organizations", headers=bearer)
            assert refused.status_code == 403 and "read:organizations" in refused.text
            clerk = {"Authorization": f"Bearer {sandbox.secret_key}"}
            organizations = http.get(f"{sandbox.clerk_url}/organizations", headers=clerk).json()
            assert organizations == {"data": [], "total_count": 0}
            memberships = http.get(f"{sandbox.clerk_url}/organization_memberships", headers=clerk).json()
            assert memberships["data"] == []
            roles = http.get(f"{sandbox.clerk_url}/organization_roles", headers=clerk).json()["data"]
            assert roles and all(role["permissions"] == [] for role in roles)

    sandbox = serve(
        tmp_path,
        monkeypatch,
        probe,
        *("--only-scope", "read:users", "--only-scope", "create:users"),
        *("--clerk-organizations", "none", "--clerk-role-permissions", "none"),
    )
    assert sandbox.kinde_config.scopes == {"read:users", "create:users"}


def test_rate_limit_switches_reach_the_served_sandbox(tmp_path: Path, monkeypatch) -> None:
    def probe(sandbox: Sandbox) -> None:
        with httpx.Client(timeout=30) as http:
            bearer = {"Authorization": f"Bearer {token(sandbox, http)['access_token']}"}
            answers = [http.get(f"{sandbox.kinde_url}/api/v1/users", headers=bearer) for _ in range(6)]
        limited = [a for a in answers if a.status_code == 429]
        assert limited, [a.status_code for a in answers]  # --kinde-rps 1
        assert int(limited[0].headers["RateLimit-Reset"]) > 1_000_000_000  # --reset-form epoch: a timestamp

    sandbox = serve(
        tmp_path,
        monkeypatch,
        probe,
        *("--kinde-rps", "1", "--reset-form", "epoch"),
        *("--shared-quota", "0.5", "--shared-quota-after", "2", "--shared-quota-for", "30"),
    )
    assert sandbox.kinde_config.shared_quota == SharedQuota(share=0.5, start=2.0, duration=30.0)


def test_a_long_retry_after_of_the_faults_reaches_the_served_sandbox(tmp_path: Path, monkeypatch) -> None:
    """--fault-retry-after: every fault's 429 asks for that wait (rehearses the migrator's countdown)."""

    sandbox = serve(tmp_path, monkeypatch, lambda _: None, "--faults", "light", "--fault-retry-after", "30")
    assert sandbox.kinde_faults.retry_after_seconds == sandbox.clerk_faults.retry_after_seconds == 30


def test_kinde_readings_reach_the_served_sandbox(tmp_path: Path, monkeypatch) -> None:
    def probe(sandbox: Sandbox) -> None:
        with httpx.Client(timeout=30) as http:
            bearer = {"Authorization": f"Bearer {token(sandbox, http)['access_token']}"}
            unknown = http.get(f"{sandbox.kinde_url}/api/v1/user", params={"id": "kp_nobody"}, headers=bearer)
        assert unknown.status_code == 400  # unknown_user_status=400
        assert isinstance(unknown.json()["errors"], dict)  # error_shape=object

    sandbox = serve(
        tmp_path,
        monkeypatch,
        probe,
        *("--kinde-reading", "unknown_user_status=400", "--kinde-reading", "error_shape=object"),
        *("--kinde-reading", "property_null_value=refused", "--kinde-reading", "added_identity_id=false"),
    )
    config = sandbox.kinde_config
    assert (config.property_null_value, config.added_identity_id) == ("refused", False)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--reset-form", "sometimes"], "--reset-form"),
        (["--shared-quota", "1.5", "--kinde-rps", "5"], "--shared-quota"),
        (["--shared-quota", "0"], "--shared-quota"),
        (["--shared-quota", "0.5"], "--kinde-rps"),  # a share of no rate limit
        (["--shared-quota", "0.5", "--kinde-rps", "5", "--shared-quota-for", "0"], "--shared-quota-for"),
        (["--shared-quota-after", "-1"], "--shared-quota-after"),
        (["--token-lifetime", "0"], "--token-lifetime"),
        (["--token-max-uses", "0"], "--token-max-uses"),
        (["--bad-token-status", "500"], "--bad-token-status"),
        (["--without-scope", "read:everything"], "read:everything"),
        (["--clerk-cursor", "sideways"], "--clerk-cursor"),
        (["--fault-retry-after", "0"], "--fault-retry-after"),
        (["--only-scope", "read:everything"], "read:everything"),
        (["--only-scope", "read:users", "--without-scope", "create:users"], "--without-scope"),
        (["--clerk-organizations", "some"], "--clerk-organizations"),
        (["--clerk-outage-after-pages", "-1"], "--clerk-outage-after-pages"),
        (["--clerk-outage-seconds", "30"], "--clerk-outage-after-pages"),  # an outage that never begins
        (["--clerk-outage-after-pages", "1", "--clerk-outage-seconds", "0"], "--clerk-outage-seconds"),
        (["--clerk-outage-status", "418"], "--clerk-outage-status"),
        (["--kinde-reading", "nope=1"], "nope=1"),
        (["--kinde-reading", "added_identity_id=maybe"], "added_identity_id"),
        (["--kinde-reading", "identities_page_size=0"], "identities_page_size"),
        (["--kinde-reading", "error_shape"], "error_shape"),
    ],
)
def test_bad_switch_values_are_refused_by_the_parser(flags: list[str], named: str, tmp_path: Path) -> None:
    result = run_cli("sandbox", "serve", *flags, cwd=tmp_path, env=cli_env())
    assert result.returncode == 2, result.stdout + result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr


def test_a_clerk_outage_with_a_duration_ends_by_itself() -> None:
    behaviour = ClerkBehaviour(outage_after_pages=1, outage_seconds=30, pages_served=1)
    assert behaviour.in_outage(now=100.0)  # the first failure starts the clock
    assert behaviour.in_outage(now=129.9)
    assert not behaviour.in_outage(now=130.0)
    assert behaviour.outage_after_pages is None and not behaviour.in_outage(now=131.0)  # over for good
    assert ClerkBehaviour(outage_after_pages=1, pages_served=1).in_outage(now=10**9)  # no duration: never ends


def test_serve_help_fits_80_columns_and_names_every_switch(tmp_path: Path) -> None:
    result = run_cli("sandbox", "serve", "-h", cwd=tmp_path, env=cli_env(COLUMNS="80"))
    assert result.returncode == 0
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for switch in re.findall(r"^  (--[a-z-]+)", result.stdout, flags=re.M):
        assert switch in readme or switch == "--help", f"{switch} is not in README"


def test_not_found_readings_and_a_refused_route_reach_the_served_sandbox(tmp_path: Path, monkeypatch) -> None:
    def probe(sandbox: Sandbox) -> None:
        with httpx.Client(timeout=30) as http:
            bearer = {"Authorization": f"Bearer {token(sandbox, http)['access_token']}"}
            refused = http.get(f"{sandbox.kinde_url}/api/v1/user", params={"id": "kp_nobody"}, headers=bearer)
            organization = http.delete(f"{sandbox.kinde_url}/api/v1/organization/org_nobody", headers=bearer)
            role = http.delete(f"{sandbox.kinde_url}/api/v1/roles/role_nobody", headers=bearer)
        answers = [(a.status_code, error_details(a.json())[0]) for a in (refused, organization, role)]
        assert answers == [(404, "ROUTE_NOT_FOUND"), (404, "ORGANIZATION_NOT_FOUND"), (404, "ROLE_NOT_FOUND")]

    sandbox = serve(
        tmp_path,
        monkeypatch,
        probe,
        *("--kinde-reading", "refused_route=user", "--kinde-reading", "unknown_organization_status=404"),
        *("--kinde-reading", "unknown_role_status=404"),
    )
    config = sandbox.kinde_config
    assert (config.refused_route, config.unknown_organization_status, config.unknown_role_status) == ("user", 404, 404)


def test_real_data_shapes_reach_the_served_sandbox_and_its_json_export(tmp_path: Path, monkeypatch) -> None:
    """--account-shapes serves older external-account shapes; --export-json writes Clerk's JSON export."""

    def probe(sandbox: Sandbox) -> None:
        with httpx.Client(timeout=30) as http:
            clerk = {"Authorization": f"Bearer {sandbox.secret_key}"}
            users = http.get(f"{sandbox.clerk_url}/users", params={"limit": 100}, headers=clerk).json()
        objects = {a.get("object") for u in users for a in u["external_accounts"]}
        assert objects - {"external_account"}, objects  # legacy *_account objects are served

    export = tmp_path / "users.export"
    sandbox = serve(
        tmp_path,
        monkeypatch,
        probe,
        *("--users", "100", "--account-shapes", "1", "--export-json", str(export), "--export-json-shape", "joined"),
    )
    assert sandbox.options.account_shapes == 1.0
    written = json.loads(export.read_text(encoding="utf-8"))
    assert len(written) == 100 and all(isinstance(u["email_addresses"], str) for u in written)


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--account-shapes", "1.5"], "--account-shapes"), (["--export-json-shape", "xml"], "--export-json-shape")],
)
def test_bad_real_data_switches_are_refused_by_the_parser(flags: list[str], named: str, tmp_path: Path) -> None:
    result = run_cli("sandbox", "serve", *flags, cwd=tmp_path, env=cli_env())
    assert result.returncode == 2, result.stdout + result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr
