"""Catch-ups settle shared identities over all of Clerk, as a full run does, never taking one off a migrated user.

After a run, a Clerk sign-up (or an edit) shares an email with a user already in Kinde. The catch-up asks Clerk
for the other holders of its users' identities (`stages/shared_holders.py`), so the rule sees the migrated user
too: the newcomer is created without the shared extra email (under either policy), and where the rule would give
the newcomer an email a migrated user already holds in Kinde, the migrated user keeps it and the newcomer is
skipped with a reason that says so.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from migrator.sandbox.server import Sandbox
from tests.e2e import cli_env, kinde_state, run_cli, write_requests
from tests.test_e2e_cutover import FAST, Step, by_provided_id, change_clerk

USERS = 80
POLICIES = ("first", "skip-all")  # every value of `duplicate_identities`


def _migrator(sandbox: Sandbox, workdir: Path, policy: str, *args: str) -> Step:
    before = write_requests(kinde_state(sandbox))
    result = run_cli(*args, cwd=workdir, env=cli_env(sandbox, **FAST, DUPLICATE_IDENTITIES=policy))
    assert "Traceback" not in result.stdout + result.stderr
    state = kinde_state(sandbox)
    return Step(result, write_requests(state) - before, state)


def _ok(step: Step) -> dict[str, Any]:
    assert step.result.returncode == 0, step.result.stdout[-2000:] + step.result.stderr[-3000:]
    assert step.state["duplicate_creations"] == []
    return step.output


def _emails(user: dict[str, Any]) -> set[str]:
    return {i["value"].lower() for i in user["identities"] if i["type"] == "email"}


def _migrated(sandbox: Sandbox, workdir: Path, policy: str) -> dict[str, dict[str, Any]]:
    sandbox.write_export(workdir / "users.csv")
    _ok(_migrator(sandbox, workdir, policy, "run", "--clerk-export", "users.csv", "--yes", "--json"))
    return by_provided_id(kinde_state(sandbox))


def _sign_up(sandbox: Sandbox) -> str:
    """A new Clerk user with an email of its own, eligible and not banned."""
    dataset = sandbox.dataset
    for clerk_id in change_clerk(sandbox, {"add": 4})["added"]:
        expected = dataset.expected(dataset.index_of(clerk_id))
        if expected["eligible"] and expected["email"] and not expected["banned"]:
            return clerk_id
    raise AssertionError("no sign-up with an email among the four")


def _holder(sandbox: Sandbox, users: dict[str, dict[str, Any]], extra: bool) -> tuple[str, str]:
    """A migrated user and one of its emails in Kinde: its Clerk primary, or (``extra``) one besides it."""
    dataset = sandbox.dataset
    for clerk_id, user in sorted(users.items()):
        primary = str(dataset.expected(dataset.index_of(clerk_id))["email"] or "").lower()
        emails = sorted(_emails(user) - {primary})
        if extra and emails:
            return clerk_id, emails[0]
        if not extra and primary in _emails(user):
            return clerk_id, primary
    raise AssertionError("no migrated user with such an email")


def _skipped(workdir: Path, run_id: int) -> dict[str, dict[str, str]]:
    with (workdir / ".migrator" / "runs" / str(run_id) / "skipped.csv").open() as handle:
        return {row["clerk_id"]: row for row in csv.DictReader(handle)}


@pytest.mark.parametrize("policy", POLICIES)
def test_a_sign_up_sharing_an_extra_email_with_a_migrated_user_is_created_without_it(
    policy: str, sandbox_factory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(users=USERS)
    users = _migrated(sandbox, tmp_path, policy)
    holder, email = _holder(sandbox, users, extra=False)
    newcomer = _sign_up(sandbox)
    change_clerk(sandbox, {"emails": {newcomer: {"address": email}}})

    summary = _ok(_migrator(sandbox, tmp_path, policy, "sync", "--yes", "--json"))
    after = by_provided_id(kinde_state(sandbox))
    assert summary["failed"] == 0 and summary["skipped"] == {}
    assert email not in _emails(after[newcomer]) and _emails(after[newcomer])  # created, with its own email
    assert after[holder] == users[holder]  # the migrated user is untouched

    again = _migrator(sandbox, tmp_path, policy, "sync", "--yes", "--json")
    assert _ok(again)["created"] == 0 and again.writes == 0


@pytest.mark.parametrize("policy", POLICIES)
def test_a_sign_up_whose_primary_email_a_migrated_user_holds_is_skipped_and_the_email_stays(
    policy: str, sandbox_factory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(users=USERS)
    users = _migrated(sandbox, tmp_path, policy)
    holder, email = _holder(sandbox, users, extra=True)  # under `first` a full run would give it to the newcomer
    newcomer = _sign_up(sandbox)
    change_clerk(sandbox, {"emails": {newcomer: {"address": email, "primary": True}}})

    step = _migrator(sandbox, tmp_path, policy, "sync", "--yes", "--json")
    summary = _ok(step)
    after = by_provided_id(kinde_state(sandbox))
    assert newcomer not in after and after[holder] == users[holder]
    assert summary["skipped"] == {"duplicate_email": 1}
    detail = _skipped(tmp_path, summary["run_id"])[newcomer]["detail"]
    assert f"{holder} holds it in Kinde already and keeps it" in detail
    assert "nothing is taken off a migrated user" in " ".join(step.result.stderr.split())


def test_an_edited_user_gaining_an_email_a_migrated_user_keeps_is_not_sent_it(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=USERS)
    users = _migrated(sandbox, tmp_path, "first")
    holder, email = _holder(sandbox, users, extra=False)
    edited = next(cid for cid, user in sorted(users.items()) if cid != holder and _emails(user))
    change_clerk(sandbox, {"emails": {edited: {"address": email}}})

    step = _migrator(sandbox, tmp_path, "first", "sync", "--yes", "--json")
    _ok(step)
    assert step.writes == 0  # the only change was the shared email: nothing to send
    after = by_provided_id(step.state)
    assert after[edited] == users[edited] and after[holder] == users[holder]
