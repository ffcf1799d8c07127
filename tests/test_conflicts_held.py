"""``settle_shared`` with what a catch-up adds: identities held in Kinde by migrated users, and a rank over Clerk.

The keeper is the full run's, except that an identity a migrated user holds in Kinde is never taken off it;
the run's users are ranked among the outside holders by ``rank`` (a catch-up stages in its own order).
"""

from __future__ import annotations

import json

import pytest

from migrator.journal import Journal, RunMode
from migrator.mapping import MappingOptions
from migrator.stages.conflicts import identity_keys, settle_shared
from migrator.stages.shared_holders import STAGED_KEY_COLUMNS
from migrator.stages.staging import staged_row
from tests.journal_rows import clerk_user, new_run, stage


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "state")
    yield j
    j.close()


def outside(user: dict, seq: int) -> list:
    """The identity keys of a Clerk user outside the run, ranked ``seq`` (as ``shared_holders.outside_keys``)."""
    row = staged_row(user, seq, None, MappingOptions(), None)[0]
    return identity_keys(*(row[name] for name in STAGED_KEY_COLUMNS))


def test_a_newcomer_the_policy_would_give_a_migrated_users_extra_email_loses_it_and_is_told(journal: Journal) -> None:
    run = new_run(journal, RunMode.SYNC)
    stage(journal, run.id, [(0, clerk_user("user_new", "shared@example.com"))])  # its primary
    migrated = clerk_user("user_old", "old@example.com", "shared@example.com")  # its extra, in Kinde

    settled = settle_shared(
        journal,
        run.id,
        "first",
        outside(migrated, 0),
        held={"email:shared@example.com": "user_old"},
        rank={"user_new": 1},
    )

    row = journal.users.get(run.id, "user_new")
    assert (row.state, row.skip_reason) == ("skipped", "duplicate_email")
    assert (
        "user_old holds it in Kinde already and keeps it (policy first would give it to user_new)" in row.skip_detail
    )
    assert (settled.skipped, settled.left_in_kinde, settled.outside_lost) == (1, 1, {})


def test_without_it_held_in_kinde_the_newcomer_keeps_its_primary_and_the_outside_holder_loses(
    journal: Journal,
) -> None:
    run = new_run(journal, RunMode.SYNC)
    stage(journal, run.id, [(0, clerk_user("user_new", "shared@example.com"))])
    other = clerk_user("user_old", "old@example.com", "shared@example.com")

    settled = settle_shared(journal, run.id, "first", outside(other, 0), rank={"user_new": 1})

    assert journal.users.get(run.id, "user_new").state == "pending"
    assert settled.outside_lost == {"user_old": {"email:shared@example.com"}} and settled.left_in_kinde == 0


@pytest.mark.parametrize("policy", ["first", "skip-all"])
def test_a_newcomers_extra_email_a_migrated_user_signs_in_with_is_dropped(journal: Journal, policy: str) -> None:
    run = new_run(journal, RunMode.SYNC)
    stage(journal, run.id, [(0, clerk_user("user_new", "new@example.com", "shared@example.com"))])
    migrated = clerk_user("user_old", "shared@example.com")

    settled = settle_shared(
        journal,
        run.id,
        policy,
        outside(migrated, 0),
        held={"email:shared@example.com": "user_old"},
        rank={"user_new": 1},
    )

    row = journal.users.get(run.id, "user_new")
    assert row.state == "pending" and settled.skipped == 0
    assert [i["value"] for i in json.loads(row.plan)["identities"] if i["type"] == "email"] == ["new@example.com"]
    assert settled.left_in_kinde == (1 if policy == "skip-all" else 0)  # skip-all would take it off user_old too


def test_rank_decides_the_keeper_among_the_runs_users_not_their_staging_order(journal: Journal) -> None:
    run = new_run(journal, RunMode.SYNC)
    stage(
        journal,
        run.id,
        [
            (0, clerk_user("user_b", "b@example.com", "x@example.com")),
            (1, clerk_user("user_a", "a@example.com", "x@example.com")),
        ],
    )

    settle_shared(journal, run.id, "first", rank={"user_a": 0, "user_b": 1})  # user_a is the older in Clerk

    def emails(clerk_id: str) -> list[str]:
        return [
            i["value"] for i in json.loads(journal.users.get(run.id, clerk_id).plan)["identities"] if i["type"] == "email"
        ]

    assert emails("user_a") == ["a@example.com", "x@example.com"] and emails("user_b") == ["b@example.com"]
