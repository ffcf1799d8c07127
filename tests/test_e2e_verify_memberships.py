"""End to end: memberships checked from the users pages, roles for the sampled users' memberships.

A tenant with many small organizations (one per 10 users here) would pay a member page per
organization; with a sample smaller than the run, reading the sampled users' roles one by one costs
less, so a default verify sends the users pages, the sample's reads and its members' role reads, and
no member page. Kinde is changed behind the run's back: a membership removed and one added for users
outside the sample (found from the pages), and a member's roles removed (found when its user is
sampled, never claimed when not). ``--deep`` reads every member page and gives the same verdict.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.sandbox.kinde_app import ALL_SCOPES, KindeSandboxConfig
from migrator.sandbox.server import Sandbox, SandboxOptions
from migrator.stages.verify_sample import choose_sample
from tests.e2e import kinde_call, kinde_state
from tests.test_e2e_verify import cli
from tests.test_e2e_verify_sample import verify  # (verdict, findings with checked_by, requests by route)

USERS = 200
ORGANIZATIONS = 20  # one per 10 users: the most the generator makes
SAMPLE = 10
MEMBER_PAGES = "GET /api/v1/organizations/{org_code}/users"
MEMBER_ROLES = "GET /api/v1/organizations/{org_code}/users/{user_id}/roles"
IDENTITIES_READ = "GET /api/v1/users/{user_id}/identities"
USERS_LIST = "GET /api/v1/users"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A clean run over many small organizations, then Kinde changed behind its back."""
    workdir = tmp_path_factory.mktemp("verify-memberships")
    with Sandbox(SandboxOptions(users=USERS, organizations=ORGANIZATIONS)) as sandbox:
        sandbox.write_export(workdir / "users.csv")
        run = cli(sandbox, workdir, "run", "--clerk-export", "users.csv", "--yes", "--json")
        assert run.returncode == 0, run.stderr[-3000:]
        users = kinde_state(sandbox)["users"]
        ids = {u["provided_id"] for u in users}
        seed = 1
        sampled = choose_sample(ids, SAMPLE, seed)
        members = [u for u in users if u["organizations"] and any(o["roles"] for o in u["organizations"])]
        outside = [u for u in members if u["provided_id"] not in sampled]
        role_user = next(u for u in members if u["provided_id"] in sampled)
        left, joiner = outside[0], next(u for u in users if u["provided_id"] not in sampled and not u["organizations"])
        door = httpx.Client(base_url=f"{sandbox.kinde_url}/_sandbox/users", timeout=30)
        left_org = left["organizations"][0]["code"]
        assert door.patch(f"/{left['id']}", json={"leave_organizations": [left_org]}).status_code == 200
        joined = kinde_call(sandbox, "POST", f"/api/v1/organizations/{left_org}/users", json={"users": [{"id": joiner["id"]}]})
        assert joined.status_code == 200, joined.text
        role_org = next(o for o in role_user["organizations"] if o["roles"])
        assert door.patch(f"/{role_user['id']}", json={"roles": {role_org["code"]: []}}).status_code == 200
        unread = next(s for s in range(2, 2000) if role_user["provided_id"] not in choose_sample(ids, SAMPLE, s))
        tampered = {"left": left["provided_id"], "joined": joiner["provided_id"], "roles": role_user["provided_id"]}
        yield sandbox, workdir, tampered, ids, seed, unread


def kinde_memberships(sandbox: Sandbox, clerk_ids: set[str]) -> int:
    return sum(len(u["organizations"]) for u in kinde_state(sandbox)["users"] if u["provided_id"] in clerk_ids)


def test_memberships_come_from_the_pages_and_roles_from_the_sampled_users_memberships(world: Any) -> None:
    sandbox, workdir, tampered, ids, seed, _ = world
    result, seen, sent = verify(sandbox, workdir, "--sample", str(SAMPLE), "--seed", str(seed))
    assert result["verdict"] == "failed"
    coverage = result["coverage"]
    assert coverage["memberships"] == "user pages" and coverage["roles"] == "sampled users' memberships"
    assert "roles: sampled users' memberships" in coverage["text"]
    found = {(kind, clerk_id, name, by) for kind, clerk_id, name, _e, _f, by in seen}
    # outside the sample, found from the pages
    assert ("incomplete", tampered["left"], "membership", "user pages") in found
    assert ("drift", tampered["joined"], "membership", "user pages") in found
    assert ("drift", tampered["roles"], "roles", "membership role reads") in found
    # cost: the users pages, the sample's identities, its members' roles, a token: no member page
    assert MEMBER_PAGES not in sent
    assert sent[USERS_LIST] == math.ceil(len(ids) / 500)
    assert sent[IDENTITIES_READ] == SAMPLE
    assert sent[MEMBER_ROLES] == kinde_memberships(sandbox, choose_sample(ids, SAMPLE, seed))
    # beside those: the token and the role definitions (a read per role, whatever the users)
    small = {r: n for r, n in sent.items() if "token" in r or r.startswith(("GET /api/v1/roles", "GET /_sandbox"))}
    assert {r: n for r, n in sent.items() if r not in small} == {
        USERS_LIST: 1,
        IDENTITIES_READ: SAMPLE,
        MEMBER_ROLES: sent[MEMBER_ROLES],
    }
    assert sum(small.values()) <= 12, small


def test_a_role_change_of_an_unsampled_user_is_not_claimed(world: Any) -> None:
    sandbox, workdir, tampered, _ids, _seed, unread = world
    _, seen, _ = verify(sandbox, workdir, "--sample", str(SAMPLE), "--seed", str(unread))
    assert not {f for f in seen if f[1] == tampered["roles"]}
    found = {(kind, clerk_id, name) for kind, clerk_id, name, *_ in seen}
    assert ("incomplete", tampered["left"], "membership") in found  # the pages still cover everyone
    assert ("drift", tampered["joined"], "membership") in found


def test_the_sampled_verdict_is_deeps_on_what_the_sample_covers(world: Any) -> None:
    sandbox, workdir, _tampered, _ids, seed, _ = world
    sampled, by_sample, _ = verify(sandbox, workdir, "--sample", str(SAMPLE), "--seed", str(seed))
    deep, by_deep, sent_deep = verify(sandbox, workdir, "--deep")
    assert deep["coverage"]["roles"] == "organization member pages" and sent_deep[MEMBER_PAGES] >= ORGANIZATIONS
    assert sampled["verdict"] == deep["verdict"] and sampled["counts"] == deep["counts"]
    assert {f[:5] for f in by_sample} == {f[:5] for f in by_deep}


def test_verify_asks_for_the_role_scope_only_when_it_reads_roles_one_by_one(tmp_path: Path) -> None:
    """Without ``read:organization_user_roles``: a verify that would read the sampled users' roles stops
    before its first read and names it; one whose roles come from the member pages needs no such scope."""
    scopes = ALL_SCOPES - {"read:organization_user_roles"}
    options = SandboxOptions(users=USERS, organizations=ORGANIZATIONS, kinde=KindeSandboxConfig(scopes=scopes))
    with Sandbox(options) as sandbox:
        sandbox.write_export(tmp_path / "users.csv")
        assert cli(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--yes", "--json").returncode == 0
        before = kinde_state(sandbox)["requests"]["by_route"]
        refused = cli(sandbox, tmp_path, "verify", "--sample", str(SAMPLE))
        assert refused.returncode == 3 and "read:organization_user_roles" in refused.stderr
        after = kinde_state(sandbox)["requests"]["by_route"]
        assert after.get(USERS_LIST) == before.get(USERS_LIST)  # nothing read before the refusal
        every = cli(sandbox, tmp_path, "verify", "--json")  # every user read: member pages cost less
        assert every.returncode == 0, every.stderr[-2000:]
        assert json.loads(every.stdout)["coverage"]["roles"] == "organization member pages"


@pytest.mark.parametrize("role_scope_only", [False, True])
def test_a_kinde_that_lists_no_organizations_is_verified_by_the_member_pages(
    tmp_path: Path, role_scope_only: bool
) -> None:
    """A Kinde whose users list ignores ``expand=organizations``: the memberships are read from the member pages
    instead (a membership removed outside the sample is still found); a token without their scope is refused
    before the first member page, naming it."""
    scopes = ALL_SCOPES - {"read:organization_users"} if role_scope_only else ALL_SCOPES
    config = KindeSandboxConfig(users_list_organizations="ignored", scopes=scopes)
    with Sandbox(SandboxOptions(users=USERS, organizations=ORGANIZATIONS, kinde=config)) as sandbox:
        sandbox.write_export(tmp_path / "users.csv")
        assert cli(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--yes", "--json").returncode == 0
        users = kinde_state(sandbox)["users"]
        sampled = choose_sample({u["provided_id"] for u in users}, SAMPLE, 1)
        left = next(u for u in users if u["organizations"] and u["provided_id"] not in sampled)
        door = httpx.Client(base_url=f"{sandbox.kinde_url}/_sandbox/users", timeout=30)
        org = left["organizations"][0]["code"]
        assert door.patch(f"/{left['id']}", json={"leave_organizations": [org]}).status_code == 200
        if role_scope_only:
            refused = cli(sandbox, tmp_path, "verify", "--sample", str(SAMPLE), "--seed", "1")
            assert refused.returncode == 3 and "read:organization_users" in refused.stderr, refused.stderr
            assert MEMBER_PAGES not in kinde_state(sandbox)["requests"]["by_route"]
            return
        result, seen, sent = verify(sandbox, tmp_path, "--sample", str(SAMPLE), "--seed", "1")
        assert result["coverage"]["memberships"] == "organization member pages"
        assert ("incomplete", left["provided_id"], "membership") in {(k, c, n) for k, c, n, *_ in seen}
        assert sent[MEMBER_PAGES] >= ORGANIZATIONS
