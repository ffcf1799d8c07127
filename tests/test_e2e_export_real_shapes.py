"""End to end: `migrator export` over users whose external accounts come in every older shape Clerk has served
(legacy ``*_account`` objects, bare provider names, both at once, an account with nothing Kinde could match a
sign-in on, an entry naming no provider). After the sandbox's dashboard import, each mapped account with a
value is a social identity in Kinde (Custom NDJSON) or its user is in api-users.csv with the reason (Custom
CSV, or a user no file carries); each account nothing can carry is counted in the manifest, its user named in
the run's warnings and, once imported, in verify's ``not_carried``: none is silently absent."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from migrator.clerk.accounts import read_external_account
from migrator.mapping import connection_for
from migrator.sandbox.kinde_app import KindeSandboxConfig
from migrator.sandbox.server import Sandbox
from migrator.stages.export_files import SOCIAL_BY_API, social_not_carried
from tests.e2e import cli_env, kinde_state, run_cli
from tests.test_e2e_import_files import upload_all

USERS = 60  # with the default seed, enough for every older shape on a mapped provider (asserted below)
GOOGLE, GITHUB = "conn_google0001", "conn_github0001"
# One provider spelled bare in the table and one as Clerk does now: the mapping accepts both.
CONFIG = f'[social_connections]\ngoogle = "{GOOGLE}"\noauth_github = "{GITHUB}"\n'
CONNECTIONS = {"oauth_google": GOOGLE, "oauth_github": GITHUB}
OLDER_SHAPES = {"legacy", "bare", "legacy_bare", "no_identity", "unknown"}
FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200", "MAX_ATTEMPTS": "2"}


def accounts_of(sandbox: Sandbox) -> tuple[dict[str, set[tuple[str, str]]], dict[str, set[str]]]:
    """Per Clerk user the generator made eligible: the (connection, value) of each mapped account that has a
    value, and the providers ("unknown" for a shape naming none) of each account nothing can carry."""
    dataset = sandbox.dataset
    wanted: dict[str, set[tuple[str, str]]] = {}
    unlinkable: dict[str, set[str]] = {}
    for i in range(dataset.n):
        if not dataset.expected(i)["eligible"]:
            continue
        for raw in dataset.user(i)["external_accounts"]:
            account = read_external_account(raw)
            connection = connection_for(CONNECTIONS, account.provider) if account.provider else None
            if account.provider is None or (connection and account.value is None):
                unlinkable.setdefault(dataset.user_id(i), set()).add(account.provider or "unknown")
            elif connection and account.value:
                wanted.setdefault(dataset.user_id(i), set()).add((connection, account.value))
    return wanted, unlinkable


def export_and_import(sandbox: Sandbox, cwd: Path, fmt: str) -> tuple[dict[str, Any], dict[str, str], str]:
    """The export run, its files uploaded as an operator would: (manifest, api-users.csv reasons, output)."""
    (cwd / "config").mkdir()
    (cwd / "config" / "migrator.toml").write_text(CONFIG, encoding="utf-8")
    sandbox.write_export(cwd / "users.csv")
    result = run_cli(
        "export", "--format", fmt, "--out", "out", "--clerk-export", "users.csv", "--create-roles",
        cwd=cwd, env=cli_env(sandbox, **FAST),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    manifest = json.loads((cwd / "out" / "manifest.json").read_text())
    upload_all(sandbox, cwd / "out", fmt, manifest)
    with (cwd / "out" / "api-users.csv").open(newline="", encoding="utf-8") as handle:
        reasons = {row["clerk_id"]: row["reason"] for row in csv.DictReader(handle)}
    return manifest, reasons, result.stdout


@pytest.mark.parametrize("fmt", ["kinde-ndjson", "kinde-csv"])
def test_an_export_links_every_mapped_account_or_names_it_whatever_its_shape(
    sandbox_factory, tmp_path: Path, fmt: str
) -> None:
    kinde = KindeSandboxConfig(import_connections=(("google", GOOGLE), ("github", GITHUB)))
    sandbox = sandbox_factory(users=USERS, account_shapes=1.0, kinde=kinde)
    dataset = sandbox.dataset
    shaped = {dataset.account_shape(i) for i in range(dataset.n) if dataset.expected(i)["eligible"]}
    assert shaped >= OLDER_SHAPES, shaped
    wanted, unlinkable = accounts_of(sandbox)
    assert wanted and unlinkable
    manifest, reasons, output = export_and_import(sandbox, tmp_path, fmt)
    env = cli_env(sandbox, **FAST)
    kinde_users = {u["provided_id"]: u for u in kinde_state(sandbox)["users"]}

    # Each mapped account with a value: a social identity on its connection, or its user on the API path.
    linked: Counter[str] = Counter()
    for clerk_id, accounts in wanted.items():
        if clerk_id in reasons:
            assert clerk_id not in kinde_users and reasons[clerk_id], clerk_id
            continue
        held = {(i["connection_id"], i["value"]) for i in kinde_users[clerk_id]["identities"] if i["type"] == "social"}
        assert held == accounts, clerk_id
        linked[dataset.account_shape(dataset.index_of(clerk_id) or 0) or "current"] += len(accounts)
    by_api = set(wanted) & set(reasons)
    assert manifest["not_carried"].get(SOCIAL_BY_API, 0) == len(by_api)
    if fmt == "kinde-ndjson":  # each shape that carries a value reached Kinde through the file
        assert set(linked) >= {"legacy", "bare", "legacy_bare"}, linked
        assert sum(manifest["social_identities"].values()) == sum(linked.values())
    else:  # the Custom CSV carries none: every such user is on the API path, most for that very reason
        assert not linked and by_api == set(wanted)
        assert any("are not carried by the Custom CSV" in reasons[c] for c in by_api)

    # Each account nothing can carry: counted in the manifest and the output, its user named in the warnings.
    by_provider = Counter(p for providers in unlinkable.values() for p in providers)
    assert {k: v for k, v in manifest["not_carried"].items() if "not linked" in k} == {
        social_not_carried(p): n for p, n in by_provider.items()
    }
    for provider, users in by_provider.items():
        assert f"not carried: {social_not_carried(provider)}: {users} user(s)" in output
    status = json.loads(run_cli("status", "--json", cwd=tmp_path, env=env).stdout)
    assert len(status["problems"]) < 50, "status --json lists the first 50 problems: keep the users few"
    warned = {p["clerk_id"] for p in status["problems"] if p["kind"] == "warning" and "not linked" in p["message"]}
    assert warned == set(unlinkable)
    kinds = {item["kind"]: item["count"] for item in status["warning_kinds"]}
    assert sum(n for kind, n in kinds.items() if "not linked" in kind) == sum(by_provider.values())

    # Verify of the export run: imported users' unlinkable accounts are not_carried (not blocking); the rest
    # are api_pending (their API run's verify names them); no identity the files carried is incomplete.
    verified = run_cli("verify", str(manifest["run_id"]), "--json", cwd=tmp_path, env=env)
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
    outcome = json.loads(verified.stdout)
    imported_unlinkable = {c for c in unlinkable if c in kinde_users}
    assert imported_unlinkable and set(unlinkable) - imported_unlinkable <= set(reasons)
    assert outcome["counts"]["incomplete"] == outcome["counts"]["missing"] == 0, outcome["counts"]
    assert outcome["counts"]["not_carried"] == sum(len(unlinkable[c]) for c in imported_unlinkable)
    assert outcome["counts"]["api_pending"] == len(reasons)
    with (tmp_path / outcome["reports"]["verify"]).open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["kind"] == "not_carried"]
    assert {row["clerk_id"] for row in rows} == imported_unlinkable
    assert all("not linked" in row["found"] for row in rows)
