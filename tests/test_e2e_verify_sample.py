"""End to end: `migrator verify` by pages with a seeded sample of per-user reads, against `--deep`.

One sandbox and one run serve the module. Kinde is changed behind the migrator's back in ways the
users pages show (deleted, duplicated, renamed, suspended, an identity removed, an organization left)
and in one way only a per-user read shows (an email's verified flag). Where the sample covers every
user, the default verify and `--deep` must give the same verdict and the same findings; with a
sample smaller than the run, the page-visible changes are still found, and the flag change only when
its user was sampled (never claimed for a user nobody read). Request counts come from the sandbox's
own request log.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.sandbox.kinde_app import KindeSandboxConfig
from migrator.sandbox.server import Sandbox, SandboxOptions
from migrator.stages.verify_sample import choose_sample
from tests.e2e import kinde_call, kinde_state
from tests.test_e2e_verify import cli, findings

USERS = 150
SAMPLE = 10
IDENTITIES_READ = "GET /api/v1/users/{user_id}/identities"
USERS_LIST = "GET /api/v1/users"


def verify(sandbox: Sandbox, workdir: Path, *args: str) -> tuple[dict[str, Any], set[tuple[str, ...]], dict[str, int]]:
    """(the JSON verdict, the findings as (kind, clerk id, field, expected, found, checked_by), requests it sent)."""
    before = kinde_state(sandbox)["requests"]["by_route"]
    result = cli(sandbox, workdir, "verify", "--json", *args)
    after = kinde_state(sandbox)["requests"]["by_route"]
    verdict = json.loads(result.stdout)
    assert result.returncode == verdict["exit_code"], result.stderr
    rows = findings(workdir, verdict["reports"]["verify"])
    seen = {(r["kind"], r["clerk_id"], r["field"], r["expected"], r["found"], r["checked_by"]) for r in rows}
    sent = {route: after[route]["total"] - before.get(route, {}).get("total", 0) for route in after}
    return verdict, seen, {route: n for route, n in sent.items() if n}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A clean run, then Kinde changed behind its back; yields the sandbox, the folder and the changed users."""
    workdir = tmp_path_factory.mktemp("verify-sample")
    with Sandbox(SandboxOptions(users=USERS, kinde=KindeSandboxConfig(default_org_joins_new_users=True))) as sandbox:
        sandbox.write_export(workdir / "users.csv")
        run = cli(sandbox, workdir, "run", "--clerk-export", "users.csv", "--yes", "--json")
        assert run.returncode == 0, run.stderr[-3000:]
        state = kinde_state(sandbox)
        default_org = next(o["code"] for o in state["organizations"] if o["is_default"])
        users = state["users"]
        members = [u for u in users if any(o["code"] != default_org for o in u["organizations"])]
        plain = [u for u in users if u not in members]
        verified = [u for u in plain if any(i["type"] == "email" and i["is_verified"] for i in u["identities"])]
        two_ways = [u for u in plain if len({i["type"] for i in u["identities"]}) > 1 and u not in verified[:1]]
        tampered = {
            "deleted": plain[0],
            "twin": plain[1],
            "renamed": plain[2],
            "suspended": plain[3],
            "left": members[0],
            "unverified": next(u for u in verified if u not in plain[:4]),
        }
        tampered["identity_removed"] = next(u for u in two_ways if u not in tampered.values())
        tampered["joined"] = next(u for u in plain if u not in tampered.values())
        door = httpx.Client(base_url=f"{sandbox.kinde_url}/_sandbox/users", timeout=30)
        assert door.delete(f"/{tampered['deleted']['id']}").status_code == 200
        assert door.post(f"/{tampered['twin']['id']}/duplicate").status_code == 200
        assert door.patch(f"/{tampered['renamed']['id']}", json={"given_name": "Renamed"}).status_code == 200
        assert door.patch(f"/{tampered['suspended']['id']}", json={"is_suspended": True}).status_code == 200
        left_org = next(o["code"] for o in tampered["left"]["organizations"] if o["code"] != default_org)
        assert door.patch(f"/{tampered['left']['id']}", json={"leave_organizations": [left_org]}).status_code == 200
        email = next(i["value"] for i in tampered["unverified"]["identities"] if i["type"] == "email")
        assert door.patch(f"/{tampered['unverified']['id']}", json={"unverify": [email]}).status_code == 200
        removed = next(i for i in tampered["identity_removed"]["identities"] if i["type"] != "email")
        door.patch(f"/{tampered['identity_removed']['id']}", json={"remove_identities": [removed["value"]]})
        joined = kinde_call(sandbox, "POST", f"/api/v1/organizations/{left_org}/users",
                            json={"users": [{"id": tampered["joined"]["id"]}]})
        assert joined.status_code == 200, joined.text
        yield sandbox, workdir, {name: user["provided_id"] for name, user in tampered.items()}


def population(sandbox: Sandbox, deleted: str) -> set[str]:
    """The Clerk ids a sample is drawn from: the run's users Kinde still has."""
    return {u["provided_id"] for u in kinde_state(sandbox)["users"]} - {deleted, None}


def flagged(seen: set[tuple[str, ...]], clerk_id: str) -> set[tuple[str, ...]]:
    return {f for f in seen if f[1] == clerk_id and f[2] == "email_verified"}


def test_a_run_within_the_sample_size_gets_the_same_verdict_and_findings_as_deep(world: Any) -> None:
    sandbox, workdir, tampered = world
    default, by_default, sent = verify(sandbox, workdir)
    deep, by_deep, sent_deep = verify(sandbox, workdir, "--deep")
    assert default["verdict"] == deep["verdict"] == "failed"
    assert default["counts"] == deep["counts"]
    assert by_default == by_deep
    found = {(kind, clerk_id, name) for kind, clerk_id, name, *_ in by_default}
    assert ("missing", tampered["deleted"], "user") in found
    assert ("duplicated", tampered["twin"], "clerk_id") in found
    assert ("drift", tampered["renamed"], "given_name") in found
    assert ("drift", tampered["suspended"], "suspended") in found
    assert ("incomplete", tampered["left"], "membership") in found
    assert ("drift", tampered["joined"], "membership") in found  # a membership no plan asked for
    assert any(k == "incomplete" and c == tampered["identity_removed"] for k, c, _ in found)
    assert flagged(by_default, tampered["unverified"])  # every user read: the flag is seen
    coverage = default["coverage"]
    assert coverage["mode"] == "every" and coverage["seed"] is None
    assert coverage["per_user_reads"] == coverage["per_user_of"] == len(population(sandbox, tampered["deleted"]))
    assert sent[IDENTITIES_READ] == coverage["per_user_reads"] + 1  # the twin's two Kinde users are both read
    assert deep["coverage"]["mode"] == "deep" and sent_deep[IDENTITIES_READ] == sent[IDENTITIES_READ]
    assert {f[5] for f in by_default} >= {"user pages", "per-user read", "organization member pages"}


def test_a_sample_smaller_than_the_run_finds_page_changes_and_claims_no_flag_it_did_not_read(world: Any) -> None:
    sandbox, workdir, tampered = world
    ids = population(sandbox, tampered["deleted"])
    _, by_deep, _ = verify(sandbox, workdir, "--deep")
    page_users = {tampered[name] for name in ("renamed", "suspended", "identity_removed", "twin")}
    seeds = range(1, 2000)
    unread = next(s for s in seeds if not (choose_sample(ids, SAMPLE, s) & {tampered["unverified"], *page_users}))
    read = next(s for s in seeds if tampered["unverified"] in choose_sample(ids, SAMPLE, s))

    result, seen, sent = verify(sandbox, workdir, "--sample", str(SAMPLE), "--seed", str(unread))
    assert result["coverage"] | {"text": ""} == {
        "pages": result["kinde_users"],
        "per_user_reads": SAMPLE,
        "per_user_of": len(ids),
        "mode": "sample",
        "seed": unread,
        "memberships": "organization member pages",  # one organization: its member pages cost least
        "roles": "organization member pages",
        "text": "",
    }
    assert f"{SAMPLE} sampled of {len(ids)} (seed {unread})" in result["coverage"]["text"]
    assert not flagged(seen, tampered["unverified"])  # its user was not read: nothing claimed
    assert seen == {f for f in by_deep if f[5] != "per-user read"} | {f for f in seen if f[5] == "per-user read"}
    assert {f for f in seen if f[5] == "per-user read"} <= by_deep
    assert result["verdict"] == "failed"
    # the Kinde requests: the users pages, one identities read per sampled user, the member pages, the roles
    pages = math.ceil(result["kinde_users"] / 500)
    assert sent[USERS_LIST] == pages
    assert sent[IDENTITIES_READ] == SAMPLE
    organizations = len(kinde_state(sandbox)["organizations"])
    roles = len(kinde_state(sandbox)["roles"])
    assert sum(sent.values()) <= pages + SAMPLE + organizations + 1 + roles + 2, sent

    sampled, seen_sampled, _ = verify(sandbox, workdir, "--sample", str(SAMPLE), "--seed", str(read))
    assert flagged(seen_sampled, tampered["unverified"]) == flagged(by_deep, tampered["unverified"]) != set()
    assert sampled["verdict"] == result["verdict"]


def test_the_seed_is_drawn_printed_and_journaled_and_the_same_seed_draws_the_same_sample(world: Any) -> None:
    sandbox, workdir, _ = world
    drawn = cli(sandbox, workdir, "verify", "--sample", str(SAMPLE))
    first = json.loads((workdir / ".migrator" / "runs" / "1" / "summary.json").read_text())["verify"]["coverage"]
    seed = first["seed"]
    assert isinstance(seed, int) and f"(seed {seed})" in " ".join(drawn.stdout.split())  # "Checked by" line
    status = json.loads(cli(sandbox, workdir, "status", "--json").stdout)
    assert status["verify"]["coverage"]["seed"] == seed
    assert f"checked by pages: {first['pages']} users" in cli(sandbox, workdir, "status").stdout
    again, seen, _ = verify(sandbox, workdir, "--sample", str(SAMPLE), "--seed", str(seed))
    assert again["coverage"] == first
    _, seen_again, _ = verify(sandbox, workdir, "--sample", str(SAMPLE), "--seed", str(seed))
    assert seen_again == seen


def test_deep_refuses_a_sample_or_a_seed(world: Any) -> None:
    sandbox, workdir, _ = world
    refused = cli(sandbox, workdir, "verify", "--deep", "--seed", "7")
    assert refused.returncode == 2 and "--deep reads every user" in refused.stdout + refused.stderr
