"""Lazy migration end to end through the CLI: `migrator run --unimportable-passwords lazy`, sign-ins through the
Kinde workflow (`migrator lazy init`'s folder, run by the sandbox under Node), `migrator lazy status`,
`verify` before and after, `migrator lazy finish` (dry run, real, again, killed and continued, fallback skip),
and the users-in-Kinde reading. Each test has its own sandbox: the steps of one scenario are one test."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.people_csv import read_csv
from migrator.sandbox.generator import SHARED_EMAIL, SHARED_EMAIL_OTHER, SHARED_EMAIL_OWNER
from migrator.sandbox.kinde_app import KindeSandboxConfig
from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import cli_env, kinde_call, kinde_state, run_cli, start_cli, write_requests
from tests.test_e2e_resume import Background
from tests.workflow_node import ensure_workflow_modules, lazy_candidate

USERS = 150
WEIGHTS = {"bcrypt": 1.0, "argon2id": 1.0}  # half the passwords are argon2: Kinde cannot import them
FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200"}
ARGON2 = re.compile(r"argon2")


@dataclass
class World:
    sandbox: Sandbox
    cwd: Path
    env: dict[str, str]

    def cli(self, *args: str | Path, **env: str) -> Any:
        return run_cli(*args, cwd=self.cwd, env={**self.env, **env})

    def json(self, *args: str | Path, code: int = 0, **env: str) -> dict[str, Any]:
        result = self.cli(*args, "--json", **env)
        assert result.returncode == code, result.stderr[-3000:]
        return json.loads(result.stdout)

    def kinde(self) -> dict[str, dict[str, Any]]:
        return {u["provided_id"]: u for u in kinde_state(self.sandbox)["users"] if u["provided_id"]}

    def read_csv(self, path: str) -> list[dict[str, str]]:
        """A report as its rows (people_csv's reader: a guarded cell read back as the value it holds)."""
        with (self.cwd / path).open(newline="", encoding="utf-8") as handle:
            header, *rows = list(read_csv(handle))
        return [dict(zip(header, row, strict=True)) for row in rows]

    def clerk_user(self, clerk_id: str) -> dict[str, Any]:
        index = self.sandbox.dataset.index_of(clerk_id)
        assert index is not None
        return self.sandbox.dataset.user(index)


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Any]:
    started: list[Sandbox] = []

    def make(*init_flags: str, users: int = USERS, **config: Any) -> World:
        ensure_workflow_modules()
        folder = tmp_path / "kinde-workflows"
        done = run_cli("lazy", "init", "--out", folder, *init_flags, cwd=tmp_path, env=cli_env())
        assert done.returncode == 0, done.stderr
        options = SandboxOptions(users=users, hasher_weights=WEIGHTS, kinde=KindeSandboxConfig(workflow=folder, **config))
        sandbox = Sandbox(options)
        started.append(sandbox)
        export = tmp_path / "clerk-export.csv"
        sandbox.dataset.write_export_csv(export)
        return World(sandbox, tmp_path, cli_env(sandbox, CLERK_EXPORT=str(export), **FAST))

    yield make
    for sandbox in started:
        sandbox.stop()


def unimportable(world: World) -> set[str]:
    """From the export and Clerk alone: an argon2 digest, or a password in Clerk and no digest in the export."""
    with Path(world.env["CLERK_EXPORT"]).open(newline="", encoding="utf-8") as handle:
        digests = {row["id"]: row["password_hasher"] for row in csv.DictReader(handle) if row["password_digest"]}
    dataset = world.sandbox.dataset
    found = set()
    for i in range(dataset.n):
        user = dataset.user(i)
        hasher = digests.get(user["id"])
        if ARGON2.match(hasher or "") or (hasher is None and user["password_enabled"]):
            found.add(user["id"])
    return found


def expected_cohort(world: World) -> set[str]:
    """Unimportable, migrated (not skipped), and a verified email the workflow can find the user by."""
    dataset, cohort = world.sandbox.dataset, set()
    for clerk_id in unimportable(world):
        i = dataset.index_of(clerk_id)
        assert i is not None
        user = dataset.user(i)
        verified = any((e.get("verification") or {}).get("status") == "verified" for e in user["email_addresses"])
        if dataset.expected(i)["eligible"] and verified:
            cohort.add(clerk_id)
    return cohort


def primary_email(user: dict[str, Any]) -> str:
    return next(e["email_address"] for e in user["email_addresses"] if e["id"] == user["primary_email_address_id"])


def sign_in(world: World, email: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{world.sandbox.kinde_url}/_sandbox/sign-in", json={"email": email, "password": password}, timeout=60
    )


def movable(world: World, cohort: set[str]) -> list[str]:
    """Cohort users the workflow can move: argon2, not refused, one email (the identities the workflow sends are
    the ones the run planned: no shared extra email it would have dropped)."""
    dataset = world.sandbox.dataset
    chosen = []
    for clerk_id in sorted(cohort):
        i = dataset.index_of(clerk_id)
        assert i is not None
        if lazy_candidate(dataset, i) and len(dataset.user(i)["email_addresses"]) == 1:
            chosen.append(clerk_id)
    assert len(chosen) >= 4, "too few users the workflow can move in this population"
    return chosen


def move(world: World, clerk_id: str) -> str:
    """The user signs in to Kinde with its old Clerk password; returns its new Kinde id."""
    user = world.clerk_user(clerk_id)
    password = world.sandbox.dataset.clerk_password(clerk_id)
    assert password is not None
    answer = sign_in(world, primary_email(user), password)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def start_lazy_run(world: World) -> tuple[dict[str, Any], set[str]]:
    summary = world.json("run", "--unimportable-passwords", "lazy", "--yes")
    cohort = expected_cohort(world)
    assert summary["exit_code"] == 0 and summary["pending"] == 0
    assert summary["lazy"] == {"cohort": len(cohort), "awaiting_sign_in": len(cohort)}
    return summary, cohort


def memberships_of(world: World, clerk_id: str) -> set[tuple[str, str]]:
    """(Clerk organization id, role key) of one Clerk user."""
    return {
        (m["organization"]["id"], m["role"].removeprefix("org:"))
        for m in world.sandbox.dataset.memberships()
        if m["public_user_data"]["user_id"] == clerk_id
    }


def test_a_lazy_run_then_sign_ins_status_verify_and_finish(make_world: Any) -> None:
    world = make_world()
    dataset = world.sandbox.dataset

    # The run: the cohort is not created, listed in lazy.csv; the rest as ever.
    summary, cohort = start_lazy_run(world)
    kinde = world.kinde()
    assert cohort and not cohort & kinde.keys()
    lazy_rows = world.read_csv(summary["reports"]["lazy"])
    assert [list(row) for row in lazy_rows[:1]] == [["clerk_id", "email", "reason"]]
    assert {row["clerk_id"] for row in lazy_rows} == cohort
    for row in lazy_rows:
        assert row["email"] == primary_email(world.clerk_user(row["clerk_id"]))
        assert "argon2" in row["reason"] or "no digest" in row["reason"]
    resets = {row["clerk_id"]: row for row in world.read_csv(summary["reports"]["password_resets"])}
    assert not cohort & resets.keys()  # they keep their password: no reset
    phone_only = [
        dataset.user_id(i)
        for i in range(dataset.n)
        if not dataset.user(i)["email_addresses"]
        and dataset.expected(i)["eligible"]
        and ARGON2.match((dataset.password(i) or ("",))[0])
    ]
    assert phone_only, "the population has no phone-only argon2 user"
    for clerk_id in phone_only:  # the workflow cannot find them: the fallback (reset) at run time
        assert resets[clerk_id]["action"] == "password reset requested"
        assert kinde[clerk_id]["is_password_reset_requested"] is True
    html = (world.cwd / summary["reports"]["report"]).read_text(encoding="utf-8")
    assert "lazy.csv" in html and "Left to the workflow" in html

    # A catch-up of a changed cohort user does not create it either (whatever its policy: here the default).
    changed = sorted(cohort - set(movable(world, cohort)))[0]
    httpx.post(
        f"{world.sandbox.clerk_url.removesuffix('/v1')}/_sandbox/users",
        json={"change": {changed: {"first_name": "Renamed"}}},
        timeout=30,
    ).raise_for_status()
    caught_up = world.json("sync", "--yes")
    assert caught_up["created"] == 0 and caught_up["lazy"] == {"cohort": 1, "awaiting_sign_in": 1}
    assert changed not in world.kinde()

    # Sign-ins through the workflow: two move, a wrong password is refused as an unknown email is.
    first, second, wrong, banned = movable(world, cohort)[:4]
    moved = {first: move(world, first), second: move(world, second)}
    refused = sign_in(world, primary_email(world.clerk_user(wrong)), "not-the-password-1")
    unknown = sign_in(world, "nobody-at-all@example.com", "not-the-password-1")
    assert refused.status_code == unknown.status_code == 401 and refused.json() == unknown.json()
    httpx.post(
        f"{world.sandbox.clerk_url.removesuffix('/v1')}/_sandbox/users",
        json={"change": {banned: {"banned": True}}},
        timeout=30,
    ).raise_for_status()

    # lazy status: moved, pending, never (banned); reads only.
    writes = write_requests(kinde_state(world.sandbox))
    status = world.json("lazy", "status")
    assert status["run_id"] == 1 and status["reading"] == "absent" and status["cohort"] == len(cohort)
    users = status["users"]
    assert {u["clerk_id"] for u in users["moved"]} == set(moved)
    assert {u["kinde_id"] for u in users["moved"]} == set(moved.values())
    never = {u["clerk_id"]: u["why"] for u in users["never"]}
    assert never[banned] == "banned in Clerk"
    assert wrong in {u["clerk_id"] for u in users["pending"]}
    assert status["counts"]["pending"] == len(cohort) - 2 - len(never)
    assert status["outside_cohort"] >= len(phone_only)
    assert write_requests(kinde_state(world.sandbox)) == writes

    # verify before the finish: the cohort not in Kinde is pending, not missing; the moved are checked like the
    # run's own users (a name changed in Kinde is drift).
    given = world.clerk_user(first)["first_name"]
    kinde_call(world.sandbox, "PATCH", "/api/v1/user", params={"id": moved[first]}, json={"given_name": "Drifted"})
    verified = world.json("verify", "1")
    assert verified["verdict"] == "passed", verified
    assert verified["counts"]["lazy_pending"] == len(cohort) - 2
    assert verified["counts"]["missing"] == 0 and verified["counts"]["drift"] == 1
    assert [(d["clerk_id"], d["field"], d["found"]) for d in verified["examples"]["drift"]] == [
        (first, "given_name", "Drifted")
    ]
    kinde_call(world.sandbox, "PATCH", "/api/v1/user", params={"id": moved[first]}, json={"given_name": given})
    assert world.json("verify", "1")["counts"]["drift"] == 0

    # The finish's dry run writes nothing, anywhere.
    writes = write_requests(kinde_state(world.sandbox))
    preview = world.json("lazy", "finish", "--dry-run")
    assert (preview["would_adopt"], preview["would_create"], preview["fallback"]) == (2, len(cohort) - 2, "reset")
    assert write_requests(kinde_state(world.sandbox)) == writes
    assert not (world.cwd / ".migrator" / "runs" / "3").exists()  # runs 1 and 2: the run and the catch-up

    # The finish: the moved adopted with their organizations and roles, the rest reset; nothing twice.
    finished = world.json("lazy", "finish", "--yes")
    assert finished["mode"] == "lazy-finish" and finished["run_id"] == 3
    assert finished["lazy"] == {"cohort": len(cohort), "moved": 2, "created": len(cohort) - 2}
    state = kinde_state(world.sandbox)
    assert state["duplicate_creations"] == []
    kinde = {u["provided_id"]: u for u in state["users"] if u["provided_id"]}
    assert cohort <= kinde.keys()
    org_codes = {row["clerk_org_id"]: row["kinde_org_code"] for row in world.read_csv(finished["reports"]["org_map"])}
    for clerk_id, kinde_id in moved.items():
        user = kinde[clerk_id]
        assert user["id"] == kinde_id and user["is_password_reset_requested"] is False
        held = {(o["code"], role) for o in user["organizations"] for role in o["roles"]}
        assert held == {(org_codes[org], role) for org, role in memberships_of(world, clerk_id)}
        password = dataset.clerk_password(clerk_id)
        assert password is not None
        runs = len(state["workflow_runs"])
        assert sign_in(world, primary_email(world.clerk_user(clerk_id)), password).status_code == 200
        assert len(kinde_state(world.sandbox)["workflow_runs"]) == runs  # Kinde's own password now
    for clerk_id in cohort - moved.keys():
        assert kinde[clerk_id]["is_password_reset_requested"] is True and kinde[clerk_id]["password_method"] is None
    assert kinde[banned]["is_suspended"] is True
    finish_resets = {row["clerk_id"] for row in world.read_csv(finished["reports"]["password_resets"])}
    assert finish_resets == cohort - moved.keys()

    # Again: nothing left to do, nothing written; the operator is told to close the window.
    writes = write_requests(kinde_state(world.sandbox))
    again = world.cli("lazy", "finish", "--yes")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Remove the workflow from Kinde" in again.stdout and "Rotate the Clerk secret key" in again.stdout
    assert write_requests(kinde_state(world.sandbox)) == writes

    # verify after: ordinary users, of the run and of the finish.
    for run in ("1", "3"):
        result = world.json("verify", run)
        assert result["verdict"] == "passed", result
        assert "lazy_pending" not in result["counts"] and result["counts"]["missing"] == 0


def test_every_cohort_user_the_workflow_accepts_moves_with_the_old_password_and_nobody_is_reset(
    make_world: Any,
) -> None:
    """The whole cohort signs in: each user `lazy status` does not call unable to move gets in with its Clerk
    password through the workflow, by whichever verified email it has; then nobody is pending, and the finish
    resets only those the workflow refuses (banned, locked, two-factor, ...)."""
    world = make_world(users=60)
    _, cohort = start_lazy_run(world)
    status = world.json("lazy", "status")
    never = {u["clerk_id"] for u in status["users"]["never"]}
    pending = {u["clerk_id"] for u in status["users"]["pending"]}
    assert pending | never == cohort and len(pending) >= 10
    for clerk_id in sorted(pending):
        user = world.clerk_user(clerk_id)
        email = next(
            e["email_address"]
            for e in user["email_addresses"]
            if (e.get("verification") or {}).get("status") == "verified"
        )
        password = world.sandbox.dataset.clerk_password(clerk_id)
        assert password is not None
        answer = sign_in(world, email, password)
        assert answer.status_code == 200, (clerk_id, answer.text)

    status = world.json("lazy", "status")
    assert {u["clerk_id"] for u in status["users"]["moved"]} == pending and status["counts"]["pending"] == 0
    finished = world.json("lazy", "finish", "--yes")
    assert finished["lazy"] == {"cohort": len(cohort), "moved": len(pending), "created": len(never)}
    resets = {row["clerk_id"] for row in world.read_csv(finished["reports"]["password_resets"])}
    assert resets == never
    kinde = world.kinde()
    assert all(kinde[c]["is_password_reset_requested"] is False for c in pending)
    assert kinde_state(world.sandbox)["duplicate_creations"] == []


def test_a_finish_killed_mid_way_continues_without_a_duplicate(make_world: Any) -> None:
    world = make_world()
    _, cohort = start_lazy_run(world)
    moved_id = movable(world, cohort)[0]
    kinde_id = move(world, moved_id)

    def creations() -> int:
        counts = kinde_state(world.sandbox)["creations_by_provided_id"]
        return sum(n for clerk_id, n in counts.items() if clerk_id in cohort)

    slow = {**world.env, "KINDE_MAX_RPS": "4", "KINDE_INITIAL_RPS": "4", "HOME": str(world.cwd)}
    background = Background(start_cli("lazy", "finish", "--yes", cwd=world.cwd, env=slow))
    background.kill_when(lambda: creations() >= 4, "a few of the cohort created by the finish")
    assert creations() < len(cohort), "the finish ended before the kill: slow it down further"

    summary = world.json("lazy", "finish", "--yes")
    assert summary["run_id"] == 2 and summary["pass_kind"] == "resume"  # the same run, continued
    state = kinde_state(world.sandbox)
    assert state["duplicate_creations"] == []
    assert all(state["creations_by_provided_id"].get(clerk_id) == 1 for clerk_id in cohort)
    kinde = world.kinde()
    assert kinde[moved_id]["id"] == kinde_id and kinde[moved_id]["is_password_reset_requested"] is False
    assert summary["lazy"]["moved"] == 1 and summary["lazy"]["created"] == len(cohort) - 1


def test_fallback_skip_records_the_unmoved_skipped_and_creates_nothing_for_them(make_world: Any) -> None:
    world = make_world()
    _, cohort = start_lazy_run(world)
    moved_id, deleted = movable(world, cohort)[:2]
    move(world, moved_id)
    httpx.post(
        f"{world.sandbox.clerk_url.removesuffix('/v1')}/_sandbox/users", json={"delete": [deleted]}, timeout=30
    ).raise_for_status()
    summary = world.json("lazy", "finish", "--yes", "--lazy-fallback", "skip")
    assert summary["lazy"] == {"cohort": len(cohort), "moved": 1, "skipped": len(cohort) - 1}
    assert summary["skipped"] == {"lazy_not_moved": len(cohort) - 2, "deleted_from_clerk": 1}
    assert cohort & world.kinde().keys() == {moved_id}
    for run in ("1", "2"):  # the skipped are accounted for, not missing
        result = world.json("verify", run)
        assert result["verdict"] == "passed" and result["counts"]["missing"] == 0, result


def test_the_users_in_kinde_reading_creates_the_cohort_without_a_password(make_world: Any) -> None:
    world = make_world("--users-in-kinde", workflow_fires_for="passwordless")
    world.env["LAZY_USERS_IN_KINDE"] = "true"
    summary = world.json("run", "--unimportable-passwords", "lazy", "--yes")
    cohort = expected_cohort(world)
    assert summary["lazy"] == {"cohort": len(cohort), "created": len(cohort)}
    kinde = world.kinde()
    for clerk_id in cohort:  # in Kinde, without a password and without a reset
        assert kinde[clerk_id]["password_method"] is None and kinde[clerk_id]["is_password_reset_requested"] is False
    moved_id = movable(world, cohort)[0]
    assert move(world, moved_id) == kinde[moved_id]["id"]

    status = world.json("lazy", "status")
    assert status["reading"] == "users-in-kinde"
    assert [u["clerk_id"] for u in status["users"]["moved"]] == [moved_id]  # signed in: Kinde says so

    finished = world.json("lazy", "finish", "--yes")
    assert finished["created"] == 0 and kinde_state(world.sandbox)["duplicate_creations"] == []
    assert finished["lazy"] == {"cohort": len(cohort), "moved": 1}
    kinde = world.kinde()
    assert kinde[moved_id]["is_password_reset_requested"] is False
    assert all(kinde[c]["is_password_reset_requested"] for c in cohort - {moved_id})


def identities_of(user: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((i["type"], i["value"].lower()) for i in user["identities"])


@pytest.mark.parametrize("partial", [False, True], ids=["create-refused", "identity-left-out"])
def test_a_cohort_user_whose_shared_email_went_to_another_moves_and_the_finish_completes_it(
    make_world: Any, partial: bool
) -> None:
    """User 12's extra email is user 11's primary: the run's conflict rule gives it to 11 (created by the run:
    bcrypt). 12 (argon2, in the cohort) also has a username a hand-made Kinde account holds when 12 signs in:
    Kinde refuses the workflow's create (or, the other reading, creates 12 without that identity), the workflow
    creates 12 with its sign-in email alone, takes nobody's identity, and `lazy finish` (the account gone by
    then) adds what 12's plan holds and Kinde lacks."""
    world = make_world(partial_duplicates=partial)
    dataset = world.sandbox.dataset
    owner, other = dataset.user_id(SHARED_EMAIL_OWNER), dataset.user_id(SHARED_EMAIL_OTHER)
    httpx.post(
        f"{world.sandbox.clerk_url.removesuffix('/v1')}/_sandbox/users",
        json={"change": {other: {"username": "alexandra_m"}}},
        timeout=30,
    ).raise_for_status()
    _, cohort = start_lazy_run(world)
    assert other in cohort and owner not in cohort
    kinde = world.kinde()
    assert ("email", SHARED_EMAIL) in identities_of(kinde[owner])
    owner_before = kinde[owner]
    account = kinde_call(
        world.sandbox, "POST", "/api/v1/user",
        json={"identities": [{"type": "username", "details": {"username": "alexandra_m"}}]},
    )  # fmt: skip
    assert account.status_code == 200, account.text

    user = world.clerk_user(other)
    sign_in_email = primary_email(user)
    password = dataset.clerk_password(other)
    assert password is not None and sign_in_email != SHARED_EMAIL
    moved = sign_in(world, sign_in_email, password)
    assert moved.status_code == 200, moved.text
    state = kinde_state(world.sandbox)
    kinde = {u["provided_id"]: u for u in state["users"] if u["provided_id"]}
    assert identities_of(kinde[other]) == [("email", sign_in_email.lower())]
    assert kinde[owner] == owner_before  # the shared email stays with the user the plan gave it to
    assert state["creations_by_provided_id"][other] == 1

    assert kinde_call(world.sandbox, "DELETE", "/api/v1/user", params={"id": account.json()["id"]}).status_code == 200
    finished = world.json("lazy", "finish", "--yes")
    assert finished["failed"] == 0 and finished["lazy"]["moved"] == 1, finished
    kinde = world.kinde()
    assert kinde[other]["id"] == moved.json()["id"] and kinde[other]["is_password_reset_requested"] is False
    assert identities_of(kinde[other]) == [("email", sign_in_email.lower()), ("username", "alexandra_m")]
    assert identities_of(kinde[owner]) == identities_of(owner_before)
    verified = world.json("verify", str(finished["run_id"]))
    assert verified["verdict"] == "passed" and verified["counts"]["missing"] == 0, verified
    named = json.dumps(verified["examples"])
    assert other not in named and owner not in named
