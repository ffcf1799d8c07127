"""``settle_shared`` on its own, against a real journal: who keeps a shared identity, who is skipped, what is dropped."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrator.journal import Journal
from migrator.stages.conflicts import settle_shared
from tests.journal_rows import clerk_user, new_run, row, stage

PHONE = "+14155552671"
OTHER_PHONE = "+33612345678"


def resolve_conflicts(journal: Journal, run_id: int, policy: str) -> tuple[int, int]:
    """(shared identities, users skipped) of settling the run's pending users under ``policy``."""
    settled = settle_shared(journal, run_id, policy)  # type: ignore[arg-type]
    return settled.shared, settled.skipped


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "state")
    yield j
    j.close()


def states(journal: Journal, run_id: int) -> dict[str, str]:
    return {r.clerk_id: r.state for r in journal.users.all(run_id)}


def plan_of(journal: Journal, run_id: int, clerk_id: str) -> dict:
    return json.loads(journal.users.get(run_id, clerk_id).plan)


def problems(journal: Journal, run_id: int) -> list[tuple[str, str, str]]:
    return [(p.clerk_id, p.kind, p.message) for p in journal.users.problems(run_id)]


def test_a_shared_primary_email_is_kept_by_the_oldest_user_whatever_its_case(journal: Journal) -> None:
    run = new_run(journal)
    # Staged out of seq order, and ids sort the other way: only seq may decide who is oldest.
    stage(
        journal,
        run.id,
        [
            (2, clerk_user("user_a", "ann@example.COM")),
            (0, clerk_user("user_z", "Ann@Example.com")),
            (1, clerk_user("user_m", "mia@example.com")),
        ],
    )

    assert resolve_conflicts(journal, run.id, "first") == (1, 1)

    assert states(journal, run.id) == {"user_z": "pending", "user_m": "pending", "user_a": "skipped"}
    skipped = journal.users.get(run.id, "user_a")
    assert skipped.skip_reason == "duplicate_email"
    assert skipped.skip_detail == "email ann@example.com is shared by user_z, user_a; kept by user_z"
    assert (skipped.lookup, skipped.created, skipped.password, skipped.flags) == ("n/a",) * 4
    assert problems(journal, run.id) == [
        ("user_a", "skipped", "duplicate_email: email ann@example.com is shared by user_z, user_a; kept by user_z")
    ]
    assert plan_of(journal, run.id, "user_z")["keys"] == [["email", "ann@example.com"]]  # the keeper is untouched


def test_a_shared_username_ignoring_case_skips_the_later_user(journal: Journal) -> None:
    run = new_run(journal)
    stage(journal, run.id, [(0, clerk_user("u1", username="Ann")), (1, clerk_user("u2", username="aNN"))])

    assert resolve_conflicts(journal, run.id, "first") == (1, 1)

    assert states(journal, run.id) == {"u1": "pending", "u2": "skipped"}
    assert journal.users.get(run.id, "u2").skip_reason == "duplicate_username"
    assert "username ann is shared by u1, u2; kept by u1" in journal.users.get(run.id, "u2").skip_detail


def test_phone_only_users_sharing_a_phone_keep_it_once(journal: Journal) -> None:
    run = new_run(journal)
    stage(journal, run.id, [(0, clerk_user("u1", phone=PHONE)), (1, clerk_user("u2", phone=PHONE))])

    assert resolve_conflicts(journal, run.id, "first") == (1, 1)

    assert states(journal, run.id) == {"u1": "pending", "u2": "skipped"}
    assert journal.users.get(run.id, "u2").skip_reason == "duplicate_phone"
    assert journal.users.get(run.id, "u1").phone_key == PHONE


def test_a_phone_is_dropped_from_a_user_who_signs_in_by_email_not_from_the_phone_only_user(journal: Journal) -> None:
    run = new_run(journal)
    # The email user is older, but the phone is the only way in for the phone-only user: it keeps it.
    stage(journal, run.id, [(0, clerk_user("u1", "a@example.com", phone=PHONE)), (1, clerk_user("u2", phone=PHONE))])

    assert resolve_conflicts(journal, run.id, "first") == (1, 0)

    assert states(journal, run.id) == {"u1": "pending", "u2": "pending"}
    dropped = journal.users.get(run.id, "u1")
    assert dropped.phone_key is None
    assert dropped.email_key == "a@example.com"
    plan = plan_of(journal, run.id, "u1")
    assert plan["keys"] == [["email", "a@example.com"]]
    assert [i["type"] for i in plan["identities"]] == ["email"]
    assert journal.users.get(run.id, "u2").phone_key == PHONE
    assert problems(journal, run.id) == [("u1", "warning", f"phone {PHONE} dropped: also used by u2, u1")]


def test_a_phone_shared_by_two_email_users_stays_with_the_older_one(journal: Journal) -> None:
    run = new_run(journal)
    stage(
        journal,
        run.id,
        [(0, clerk_user("u1", "a@example.com", phone=PHONE)), (1, clerk_user("u2", "b@example.com", phone=PHONE))],
    )

    assert resolve_conflicts(journal, run.id, "first") == (1, 0)

    assert journal.users.get(run.id, "u1").phone_key == PHONE
    assert ["phone", PHONE] in plan_of(journal, run.id, "u1")["keys"]
    assert journal.users.get(run.id, "u2").phone_key is None
    assert ["phone", PHONE] not in plan_of(journal, run.id, "u2")["keys"]


def test_dropping_an_extra_phone_keeps_a_different_phone_key(journal: Journal) -> None:
    """A plan may hold a phone besides its phone key (journals staged before Kinde kept one phone)."""
    run = new_run(journal)
    identities = [
        {"type": "email", "value": "a@example.com", "is_verified": True},
        {"type": "phone", "value": OTHER_PHONE, "is_verified": True},
        {"type": "phone", "value": PHONE, "is_verified": True},
    ]
    keys = [["email", "a@example.com"], ["phone", OTHER_PHONE], ["phone", PHONE]]
    plan = json.dumps({"identities": identities, "keys": keys})
    journal.users.stage(
        run.id,
        [
            row(
                "u0",
                0,
                email="z@example.com",
                phone_key=PHONE,
                plan=json.dumps({"identities": [{"type": "phone", "value": PHONE}], "keys": [["phone", PHONE]]}),
                email_key=None,
            ),
            row("u1", 1, email="a@example.com", phone_key=OTHER_PHONE, plan=plan),
        ],
    )

    assert resolve_conflicts(journal, run.id, "first") == (1, 0)

    kept = journal.users.get(run.id, "u1")
    assert kept.phone_key == OTHER_PHONE
    assert json.loads(kept.plan)["keys"] == [["email", "a@example.com"], ["phone", OTHER_PHONE]]
    assert [i["value"] for i in json.loads(kept.plan)["identities"]] == ["a@example.com", OTHER_PHONE]


def test_a_shared_extra_email_goes_to_the_user_whose_primary_it_is(journal: Journal) -> None:
    run = new_run(journal)
    stage(
        journal,
        run.id,
        [
            (0, clerk_user("u1", "a@example.com", "Shared@Example.com")),  # older, but only an extra address
            (1, clerk_user("u2", "shared@example.com")),
        ],
    )

    assert resolve_conflicts(journal, run.id, "first") == (1, 0)

    assert states(journal, run.id) == {"u1": "pending", "u2": "pending"}
    plan = plan_of(journal, run.id, "u1")
    assert plan["keys"] == [["email", "a@example.com"]]
    assert [i["value"] for i in plan["identities"]] == ["a@example.com"]
    assert journal.users.get(run.id, "u1").email_key == "a@example.com"
    assert plan_of(journal, run.id, "u2")["keys"] == [["email", "shared@example.com"]]
    assert problems(journal, run.id) == [("u1", "warning", "email shared@example.com dropped: also used by u2, u1")]


def test_a_shared_extra_email_is_dropped_from_later_holders_only(journal: Journal) -> None:
    run = new_run(journal)
    stage(
        journal,
        run.id,
        [
            (0, clerk_user("u1", "a@example.com", "s@example.com")),
            (1, clerk_user("u2", "b@example.com", "S@example.com")),
            (2, clerk_user("u3", "c@example.com", "s@EXAMPLE.com")),
        ],
    )

    assert resolve_conflicts(journal, run.id, "first") == (1, 0)

    assert ["email", "s@example.com"] in plan_of(journal, run.id, "u1")["keys"]
    for later in ("u2", "u3"):
        assert ["email", "s@example.com"] not in plan_of(journal, run.id, later)["keys"]
        assert all(i["value"].lower() != "s@example.com" for i in plan_of(journal, run.id, later)["identities"])
    assert [p[0] for p in problems(journal, run.id)] == ["u2", "u3"]


def test_skip_all_skips_every_holder_of_a_shared_primary_email_and_username(journal: Journal) -> None:
    run = new_run(journal)
    stage(
        journal,
        run.id,
        [
            (0, clerk_user("u1", "ann@example.com")),
            (1, clerk_user("u2", "ANN@example.com")),
            (2, clerk_user("u3", username="bob")),
            (3, clerk_user("u4", username="Bob")),
            (4, clerk_user("u5", "eve@example.com")),
        ],
    )

    assert resolve_conflicts(journal, run.id, "skip-all") == (2, 4)

    assert states(journal, run.id) == {
        "u1": "skipped",
        "u2": "skipped",
        "u3": "skipped",
        "u4": "skipped",
        "u5": "pending",
    }
    assert journal.users.get(run.id, "u1").skip_detail == "email ann@example.com is shared by u1, u2; policy skip-all"
    assert {p[0] for p in problems(journal, run.id) if p[1] == "skipped"} == {"u1", "u2", "u3", "u4"}


def test_skip_all_skips_a_user_sharing_two_identities_once(journal: Journal) -> None:
    run = new_run(journal)
    stage(
        journal,
        run.id,
        [
            (0, clerk_user("u1", "ann@example.com", username="ann")),
            (1, clerk_user("u2", "ANN@example.com", username="Ann")),
        ],
    )

    assert resolve_conflicts(journal, run.id, "skip-all") == (2, 2)

    assert sorted(p[0] for p in problems(journal, run.id)) == ["u1", "u2"]
    assert journal.users.get(run.id, "u1").skip_reason == "duplicate_email"  # the first conflict named is kept


def test_skip_all_leaves_a_shared_extra_email_to_nobody_but_skips_no_one_for_it(journal: Journal) -> None:
    run = new_run(journal)
    stage(
        journal,
        run.id,
        [
            (0, clerk_user("u1", "a@example.com", "s@example.com")),
            (1, clerk_user("u2", "b@example.com", "s@example.com")),
        ],
    )

    assert resolve_conflicts(journal, run.id, "skip-all") == (1, 0)

    assert states(journal, run.id) == {"u1": "pending", "u2": "pending"}
    for holder in ("u1", "u2"):
        assert ["email", "s@example.com"] not in plan_of(journal, run.id, holder)["keys"]


def test_users_already_skipped_neither_conflict_nor_change(journal: Journal) -> None:
    run = new_run(journal)
    stage(journal, run.id, [(0, clerk_user("u1", "ann@example.com")), (1, clerk_user("u2", "ann@example.com"))])
    journal.users.skip(run.id, "u1", "banned", "banned in Clerk")
    before = asdict(journal.users.get(run.id, "u1"))

    assert resolve_conflicts(journal, run.id, "first") == (0, 0)

    assert states(journal, run.id) == {"u1": "skipped", "u2": "pending"}
    after = asdict(journal.users.get(run.id, "u1"))
    assert (after["skip_reason"], after["skip_detail"]) == ("banned", "banned in Clerk")
    assert after == before
    assert problems(journal, run.id) == []


def test_other_runs_users_do_not_conflict(journal: Journal) -> None:
    earlier, run = new_run(journal), new_run(journal)
    stage(journal, earlier.id, [(0, clerk_user("u1", "ann@example.com"))])
    stage(journal, run.id, [(0, clerk_user("u2", "ann@example.com"))])

    assert resolve_conflicts(journal, run.id, "first") == (0, 0)
    assert states(journal, run.id) == {"u2": "pending"}


def test_nobody_is_skipped_for_a_keeper_that_is_skipped_itself(journal: Journal) -> None:
    """u1 loses its email to u0, so the username it shares with u2 is free: u2 must keep it."""
    run = new_run(journal)
    stage(
        journal,
        run.id,
        [
            (0, clerk_user("u0", "ann@example.com")),
            (1, clerk_user("u1", "ann@example.com", username="ann")),
            (2, clerk_user("u2", "bob@example.com", username="ann")),
        ],
    )

    assert resolve_conflicts(journal, run.id, "first") == (2, 1)

    assert states(journal, run.id) == {"u0": "pending", "u1": "skipped", "u2": "pending"}
    assert journal.users.get(run.id, "u1").skip_detail.endswith("kept by u0")


def test_a_keeper_that_loses_another_identity_to_an_older_user_keeps_nothing(journal: Journal) -> None:
    """u1 would keep cy@ from u2, but u1 loses its username to the older u0: cy@ stays with u2."""
    run = new_run(journal)
    stage(
        journal,
        run.id,
        [
            (0, clerk_user("u0", "ann@example.com", username="ann")),
            (1, clerk_user("u1", "cy@example.com", username="ann")),
            (2, clerk_user("u2", "cy@example.com")),
        ],
    )

    assert resolve_conflicts(journal, run.id, "first") == (2, 1)

    assert states(journal, run.id) == {"u0": "pending", "u1": "skipped", "u2": "pending"}
    skipped = journal.users.get(run.id, "u1")
    assert (skipped.skip_reason, skipped.skip_detail) == (
        "duplicate_username",
        "username ann is shared by u0, u1; kept by u0",
    )


# -- properties -----------------------------------------------------------------------------------

POOL = ("ann@example.com", "bob@example.com", "cy@example.com")


def recased(address: str, flips: list[bool]) -> str:
    return "".join(c.upper() if flip else c for c, flip in zip(address, flips + [False] * len(address), strict=False))


primary_emails = st.lists(
    st.tuples(st.sampled_from(POOL), st.lists(st.booleans(), max_size=8)), min_size=1, max_size=8
).flatmap(lambda emails: st.tuples(st.just(emails), st.permutations(range(len(emails)))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=primary_emails)
def test_under_first_exactly_the_oldest_holder_of_each_primary_email_stays(journal: Journal, case) -> None:
    emails, seqs = case
    run = new_run(journal)  # one run per example: runs never see each other's users
    users = [
        (seq, clerk_user(f"u{n}", recased(email, flips)))
        for n, ((email, flips), seq) in enumerate(zip(emails, seqs, strict=True))
    ]
    stage(journal, run.id, users)
    holders: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for seq, user in users:
        holders[user["email_addresses"][0]["email_address"].lower()].append((seq, user["id"]))

    shared, skipped = resolve_conflicts(journal, run.id, "first")

    final = states(journal, run.id)
    for key, group in holders.items():
        pending = [cid for _, cid in group if final[cid] == "pending"]
        assert pending == [min(group)[1]], key
    assert shared == sum(len(group) > 1 for group in holders.values())
    assert skipped == len(users) - len(holders) == sum(state == "skipped" for state in final.values())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=primary_emails)
def test_under_skip_all_only_users_with_an_unshared_email_stay(journal: Journal, case) -> None:
    emails, seqs = case
    run = new_run(journal)
    users = [(seq, clerk_user(f"u{n}", email)) for n, ((email, _), seq) in enumerate(zip(emails, seqs, strict=True))]
    stage(journal, run.id, users)
    counts = defaultdict(int)
    for email, _ in emails:
        counts[email] += 1

    shared, skipped = resolve_conflicts(journal, run.id, "skip-all")

    final = states(journal, run.id)
    for (_, user), (email, _) in zip(users, emails, strict=True):
        assert final[user["id"]] == ("pending" if counts[email] == 1 else "skipped")
    assert (shared, skipped) == (sum(n > 1 for n in counts.values()), sum(n for n in counts.values() if n > 1))


NAMES = ("ann", "bob")
mixed_users = st.lists(
    st.tuples(st.sampled_from(POOL), st.none() | st.sampled_from(POOL), st.none() | st.sampled_from(NAMES)),
    min_size=1,
    max_size=7,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=mixed_users, policy=st.sampled_from(["first", "skip-all"]))
def test_after_resolution_no_two_pending_users_share_any_identity(journal: Journal, specs, policy) -> None:
    """Primary and extra emails and usernames in any overlap: nothing Kinde keeps unique is left twice,
    and under ``first`` every user skipped for a duplicate lost it to a user that is still pending."""
    run = new_run(journal)
    users = []
    for n, (primary, extra, username) in enumerate(specs):
        emails = [primary] + ([extra] if extra and extra != primary else [])
        users.append((n, clerk_user(f"u{n}", *emails, username=username)))
    stage(journal, run.id, users)

    _, skipped = resolve_conflicts(journal, run.id, policy)

    pending = [r for r in journal.users.all(run.id) if r.state == "pending"]
    skipped_ids = sorted(r.clerk_id for r in journal.users.all(run.id) if r.state == "skipped")
    assert skipped == len(skipped_ids)
    assert sorted(p[0] for p in problems(journal, run.id) if p[1] == "skipped") == skipped_ids  # once each
    owners: dict[str, str] = {}
    for r in pending:
        for kind, value in json.loads(r.plan)["keys"]:
            assert owners.setdefault(f"{kind}:{value}", r.clerk_id) == r.clerk_id, (kind, value)
        keys = {tuple(k) for k in json.loads(r.plan)["keys"]}
        assert ("email", r.email_key) in keys  # a primary email is never dropped from a user who stays
    if policy == "first":
        for r in journal.users.all(run.id):
            if r.state == "skipped":
                kind, value = r.skip_detail.split(" ")[:2]
                keeper = r.skip_detail.rsplit("; kept by ", 1)[1]
                assert owners.get(f"{kind}:{value}") == keeper, r.skip_detail
