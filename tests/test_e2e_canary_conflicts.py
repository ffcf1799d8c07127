"""Canaries settle shared identities as a full run does: the keeper is chosen over every Clerk user.

The sandbox's users 11 and 12 share an email (11's primary, 12's extra). A full run or an export gives
it to 11 and drops it from 12. A canary holding only one of them still asks Clerk who else holds its
users' identities, so 12 is created without the email whichever of them came first, and 11 keeps it:
no `USER_ALREADY_EXISTS`, no user taken for another's Kinde user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from migrator.sandbox.clerk_app import ClerkBehaviour
from migrator.sandbox.generator import SHARED_EMAIL, SHARED_EMAIL_OTHER, SHARED_EMAIL_OWNER
from migrator.sandbox.server import Sandbox
from tests.test_e2e_cutover import Step, by_provided_id, change_clerk, migrator
from tests.test_e2e_import_files import upload_all
from tests.test_e2e_import_sync import export

USERS = 60


def _emails(user: dict[str, Any]) -> set[str]:
    return {i["value"].lower() for i in user["identities"] if i["type"] == "email"}


def _pair(sandbox: Sandbox) -> tuple[str, str]:
    return sandbox.dataset.user_id(SHARED_EMAIL_OWNER), sandbox.dataset.user_id(SHARED_EMAIL_OTHER)


def _canary(sandbox: Sandbox, workdir: Path, *selection: str) -> Step:
    step = migrator(sandbox, workdir, "run", "--clerk-export", "users.csv", *selection, "--yes", "--json")
    assert step.result.returncode == 0, step.result.stdout[-2000:] + step.result.stderr[-3000:]
    assert step.output["failed"] == 0 and step.state["duplicate_creations"] == []
    return step


def test_only_file_api_users_after_an_export_settles_an_email_shared_with_an_imported_user(
    sandbox_factory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(users=USERS)
    owner, other = _pair(sandbox)
    change_clerk(sandbox, {"change": {other: {"banned": True}}})  # banned: only the API carries it
    sandbox.write_export(tmp_path / "users.csv")
    _, manifest, ids = export(sandbox, tmp_path)
    assert other in ids["api"] and owner in ids["files"]
    upload_all(sandbox, tmp_path / "out", "kinde-ndjson", manifest)

    step = _canary(sandbox, tmp_path, "--only-file", "out/api-users.csv")
    users = by_provided_id(step.state)
    assert set(users) >= ids["api"]  # every user of api-users.csv migrated, none failed
    assert SHARED_EMAIL in _emails(users[owner]) and SHARED_EMAIL not in _emails(users[other])
    assert users[other]["is_suspended"] is True


def test_a_canary_after_an_api_run_of_the_keeper_drops_the_shared_email(sandbox_factory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=USERS)
    sandbox.write_export(tmp_path / "users.csv")
    owner, other = _pair(sandbox)
    _canary(sandbox, tmp_path, "--only", owner)
    step = _canary(sandbox, tmp_path, "--only", other)
    users = by_provided_id(step.state)
    assert set(users) == {owner, other} and step.output["created"] == 1
    assert SHARED_EMAIL in _emails(users[owner]) and SHARED_EMAIL not in _emails(users[other])


@pytest.mark.parametrize("identity_filters", ["honoured", "ignored"])
def test_a_canary_leaves_a_shared_email_to_its_keeper_outside_it(
    sandbox_factory, tmp_path: Path, identity_filters: str
) -> None:
    """Also against a Clerk that ignores ``email_address=`` and answers every user: the search for other
    holders keeps only real holders, ends by itself, and reaches the same keeper."""
    sandbox = sandbox_factory(users=USERS, clerk=ClerkBehaviour(identity_filters=identity_filters))  # type: ignore[arg-type]
    sandbox.write_export(tmp_path / "users.csv")
    owner, other = _pair(sandbox)
    _canary(sandbox, tmp_path, "--only", other)  # 11 is not in this canary: it still keeps the email
    step = _canary(sandbox, tmp_path, "--only", owner)
    users = by_provided_id(step.state)
    assert step.output["created"] == 1  # 11 is created, not taken for 12's Kinde user
    assert SHARED_EMAIL in _emails(users[owner]) and SHARED_EMAIL not in _emails(users[other])
