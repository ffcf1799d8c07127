"""`migrator undo <catch-up>` end to end: the catch-up's updates are taken back, not only its sign-ups.

A full run; then in Clerk: a rename, a ban, an email added, a primary email replaced (new one added as
primary, old one removed), a username removed, a password changed, a user deleted, two sign-ups; a
catch-up brings all of it over. After the catch-up, someone renames one of the renamed users in Kinde by
hand, and gives the removed username to another user. The undo of the catch-up (killed once just after Kinde re-added an identity, then continued) leaves
every user as before the catch-up except the one renamed by hand (kept, reported), the one whose username
Kinde refuses to give back (kept, reported), the password-changed
user (kept, listed: signs in with the new password) and the deleted user (kept, listed). A second undo
writes nothing; a later catch-up brings the changes over again.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.config import Settings
from migrator.journal import DeletionState, Journal
from migrator.runs.api import Undo, run_undo
from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import clerk_password, cli_env, kinde_call, kinde_state, run_cli, sign_in, write_requests
from tests.test_e2e_cutover import by_provided_id, change_clerk, importable_bcrypt_users

USERS = 150
FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200"}


class KilledAfterFirstReAdd(httpx.AsyncBaseTransport):
    """Loopback to the sandbox; Ctrl-C arrives just after Kinde re-added an identity (its answer is lost:
    the undo never recorded that it re-added it, nor made it primary again)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/identities") and response.status_code == 201:
            await response.aread()
            raise KeyboardInterrupt
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def cli(sandbox: Sandbox, workdir: Path, *args: str) -> Any:
    result = run_cli(*args, cwd=workdir, env=cli_env(sandbox, **FAST))
    assert "Traceback" not in result.stdout + result.stderr
    return result


def shape(user: dict[str, Any]) -> dict[str, Any]:
    """What a user is, to compare: names, suspension, identities (the primary of each type first)."""
    primary = {}
    for identity in user["identities"]:
        primary.setdefault(identity["type"], identity["value"].lower())
    return {
        "names": (user["given_name"], user["family_name"]),
        "suspended": user["is_suspended"],
        "identities": sorted((i["type"], i["value"].lower()) for i in user["identities"]),
        "primary": primary,
    }


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Any:
    workdir = tmp_path_factory.mktemp("undo-sync")
    with Sandbox(SandboxOptions(users=USERS)) as sandbox:
        dataset = sandbox.dataset
        sandbox.write_export(workdir / "users.csv")
        assert cli(sandbox, workdir, "run", "--clerk-export", "users.csv", "--yes").returncode == 0
        picks = [dataset.user_id(i) for i in importable_bcrypt_users(dataset)]
        with_username = next(
            dataset.user_id(i) for i in range(dataset.n)
            if dataset.expected(i)["eligible"] and dataset.expected(i)["username"] and dataset.expected(i)["email"]
            and dataset.user_id(i) not in picks[:8]
        )  # fmt: skip
        who = {
            "renamed": picks[0], "by_hand": picks[1], "banned": picks[2], "email_added": picks[3],
            "email_replaced": picks[4], "password": picks[5], "deleted": picks[6], "username_removed": with_username,
        }  # fmt: skip
        old_email = dataset.expected(dataset.index_of(who["email_replaced"]))["email"]
        old_password = clerk_password(sandbox, who["password"])
        username = dataset.expected(dataset.index_of(who["username_removed"]))["username"]
        before = kinde_state(sandbox)
        answer = change_clerk(
            sandbox,
            {
                "add": 2,
                "change": {
                    who["renamed"]: {"first_name": "Renamed"},
                    who["by_hand"]: {"last_name": "Changed"},
                    who["banned"]: {"banned": True},
                    who["username_removed"]: {"username": None},
                },
                "password": [who["password"]],
                "delete": [who["deleted"]],
                "emails": {
                    who["email_added"]: {"address": "added-later@example.test"},
                    who["email_replaced"]: {"address": "replacement@example.test", "primary": True},
                },
                "remove_emails": {who["email_replaced"]: old_email},
            },
        )
        sandbox.write_export(workdir / "users-new.csv")
        now = (datetime.now(UTC) + timedelta(seconds=1)).isoformat(timespec="seconds")
        sync = cli(sandbox, workdir, "sync", "--clerk-export", "users-new.csv", "--export-time", now,
                   "--delete-removed", "--yes", "--json")  # fmt: skip
        assert sync.returncode == 0, sync.stdout + sync.stderr
        synced = kinde_state(sandbox)
        by_hand_kinde_id = by_provided_id(synced)[who["by_hand"]]["id"]
        assert kinde_call(sandbox, "PATCH", "/api/v1/user", params={"id": by_hand_kinde_id},
                          json={"family_name": "ByHand"}).status_code == 200  # fmt: skip
        taken = kinde_call(sandbox, "POST", f"/api/v1/users/{by_hand_kinde_id}/identities",
                           json={"type": "username", "value": username})  # fmt: skip
        assert taken.status_code == 201, taken.text  # the username the catch-up removed now belongs to someone else
        yield sandbox, workdir, who, answer["added"], before, synced, old_password


@pytest.fixture(scope="module")
def dry_run(story: Any) -> dict[str, Any]:
    sandbox, workdir, *_ = story
    result = cli(sandbox, workdir, "undo", "2", "--dry-run", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def undone(story: Any, dry_run: dict[str, Any]) -> dict[str, Any]:
    sandbox, workdir, *_ = story
    settings = Settings(**{k.lower(): v for k, v in sandbox.env().items()}, state_dir=workdir / ".migrator",
                        kinde_max_rps=2000, kinde_initial_rps=200)  # fmt: skip
    journal = Journal(settings.state_dir)
    try:
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(
                run_undo(settings, journal, Undo(2), on_event=lambda e: None, confirm=lambda p: True,
                         kinde_transport=KilledAfterFirstReAdd())
            )  # fmt: skip
        killed_status = journal.runs.get(3).status
    finally:
        journal.close()
    assert killed_status == "interrupted"
    result = cli(sandbox, workdir, "undo", "2", "--yes", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    journal = Journal(settings.state_dir)
    try:
        details = [row.detail for row in journal.cutover.deletions(3, "identity_removed", (DeletionState.DELETED,))]
    finally:
        journal.close()
    assert details == ["already in Kinde, made the primary again"]  # re-added before the kill: not sent twice
    return json.loads(result.stdout)


def test_the_dry_run_counts_each_kind_of_update_and_writes_nothing(story: Any, dry_run: dict[str, Any]) -> None:
    _, _, who, *_ = story
    planned = dry_run["planned"]
    assert planned["user"] == 2  # the sign-ups
    assert planned["user_profile"] == 3  # two names and a suspension
    assert planned["identity_added"] == 2  # the added email, the replacement
    assert planned["identity_removed"] == 2  # the replaced email, the username
    assert (planned["password"], planned["user_deleted"]) == (1, 1)
    kept = "\n".join(dry_run["kept"])
    assert f"password {who['password']}: password changed by the catch-up: cannot be restored" in kept
    assert f"user_deleted {who['deleted']}: " in kept and f"migrator run --only {who['deleted']}" in kept


def test_the_undo_puts_every_user_back_as_before_the_catch_up(story: Any, undone: dict[str, Any]) -> None:
    sandbox, _, who, signups, before, synced, old_password = story
    after = by_provided_id(kinde_state(sandbox))
    earlier = by_provided_id(before)
    assert set(after) == set(earlier) - {who["deleted"]}  # sign-ups gone; the deleted user stays deleted
    assert not set(signups) & set(after)
    differ = {cid for cid in after if shape(after[cid]) != shape(earlier[cid])}
    assert differ == {who["by_hand"], who["username_removed"]}  # changed in Kinde since, or refused by it
    assert "username" not in shape(after[who["username_removed"]])["primary"]
    assert after[who["by_hand"]]["family_name"] == "ByHand"
    changed_by_sync = by_provided_id(synced)
    assert changed_by_sync[who["renamed"]]["given_name"] == "Renamed"  # the catch-up did write it
    email = shape(after[who["email_replaced"]])["primary"]["email"]
    assert email != "replacement@example.test"  # the old primary is back as the primary
    new_password = clerk_password(sandbox, who["password"])
    login = shape(after[who["password"]])["primary"]["email"]
    assert sign_in(sandbox, login, new_password) == 200  # kept: the new password stays
    assert sign_in(sandbox, login, old_password) == 401


def test_the_undo_reports_what_it_kept_and_why(story: Any, undone: dict[str, Any]) -> None:
    _, _, who, *_ = story
    assert undone["outcomes"]["user_profile"] == {"deleted": 2, "kept": 1}
    assert undone["outcomes"]["identity_removed"] == {"deleted": 1, "kept": 1}
    assert undone["outcomes"]["identity_added"] == {"deleted": 2}
    kept = "\n".join(undone["kept"])
    assert f"user_profile {who['by_hand']}/family_name: changed in Kinde since the catch-up wrote it" in kept
    assert f"password {who['password']}: password changed by the catch-up: cannot be restored" in kept
    assert f"user_deleted {who['deleted']}: deleted from Kinde by the catch-up" in kept
    assert f"identity_removed {who['username_removed']}/username:" in kept and "not re-added, Kinde refused" in kept


def test_status_of_the_undo_shows_the_new_kinds(story: Any, undone: dict[str, Any]) -> None:
    sandbox, workdir, who, *_ = story
    result = cli(sandbox, workdir, "status", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "identities a catch-up removed (re-added) 1 1 0 0" in text
    assert "identities a catch-up added (deleted) 2 0 0 0" in text
    assert "names and suspensions a catch-up changed (restored) 2 1 0 0" in text
    assert "passwords a catch-up changed (kept: cannot be restored) 0 1 0 0" in text
    assert "users a catch-up deleted (kept: cannot be recreated) 0 1 0 0" in text
    assert f"user_profile {who['by_hand']}/family_name: changed in Kinde since the catch-up wrote it" in text


def test_a_second_undo_writes_nothing(story: Any, undone: dict[str, Any]) -> None:
    sandbox, workdir, *_ = story
    writes = write_requests(kinde_state(sandbox))
    result = cli(sandbox, workdir, "undo", "2", "--yes", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["already_done"] is True
    assert write_requests(kinde_state(sandbox)) == writes


def test_a_catch_up_after_the_undo_brings_the_changes_again(story: Any, undone: dict[str, Any]) -> None:
    sandbox, workdir, who, *_ = story
    result = cli(sandbox, workdir, "sync", "--since", "1", "--clerk-export", "users-new.csv", "--yes", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    users = by_provided_id(kinde_state(sandbox))
    assert users[who["renamed"]]["given_name"] == "Renamed"
    assert users[who["banned"]]["is_suspended"] is True
