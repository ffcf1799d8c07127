"""``record_lookup`` and ``adopt`` on their own, against a real journal: whose is a user Kinde already has."""

from __future__ import annotations

import json

import pytest

from migrator.journal import Journal, RunMode
from migrator.kinde.client import KindeUser
from migrator.stages.reconcile import adopt, record_lookup
from tests.journal_rows import new_run, put

CLERK_ID = "user_ann"
KINDE_ID = "kp_0123456789abcdef"
STEPS = ("state", "lookup", "created", "kinde_id", "password", "flags", "identities", "missing_identities")


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "state")
    yield j
    j.close()


def kinde_user(provided_id: str | None = CLERK_ID, kinde_id: str = KINDE_ID, **identities: str) -> KindeUser:
    return KindeUser(
        id=kinde_id,
        provided_id=provided_id,
        email=identities.get("email", "ann@example.com"),
        username=identities.get("username"),
        phone=identities.get("phone"),
    )


def staged(journal: Journal, run_id: int, **fields) -> object:
    """Stage the user ``ann`` (email ann@example.com) with ``fields``; return its journal row."""
    put(journal, run_id, CLERK_ID, 0, email="Ann@Example.com", **fields)
    return journal.users.get(run_id, CLERK_ID)


def steps(journal: Journal, run_id: int) -> dict:
    user = journal.users.get(run_id, CLERK_ID)
    return {name: getattr(user, name) for name in STEPS}


def problems(journal: Journal, run_id: int) -> list[tuple[str, str, str]]:
    return [(p.clerk_id, p.kind, p.message) for p in journal.users.problems(run_id)]


def earlier_run(journal: Journal, mode: RunMode = RunMode.RUN, **fields) -> int:
    """An earlier run of this journal that staged ``ann`` and left it in the state ``fields`` say."""
    run = new_run(journal, mode)
    put(journal, run.id, CLERK_ID, 0, email="ann@example.com", **fields)
    return run.id


# -- record_lookup: which of the users Kinde returned is this one ----------------------------------


@pytest.mark.parametrize(
    "found",
    [
        [],
        [kinde_user(provided_id="user_bob", email="bob@example.com")],  # a lookup may return others
    ],
    ids=["nothing", "someone-else"],
)
def test_nobody_holding_the_identity_is_recorded_absent(journal: Journal, found) -> None:
    run = new_run(journal)
    user = staged(journal, run.id, password="pending", flags="pending")

    record_lookup(journal, run.id, user, "email", found)

    assert steps(journal, run.id) == {
        "state": "pending",
        "lookup": "absent",
        "created": "pending",
        "kinde_id": None,
        "password": "pending",
        "flags": "pending",
        "identities": "n/a",
        "missing_identities": None,
    }
    assert problems(journal, run.id) == []


def test_the_email_is_compared_ignoring_case(journal: Journal) -> None:
    run = new_run(journal)
    user = staged(journal, run.id)

    record_lookup(journal, run.id, user, "email", [kinde_user(provided_id=None, email="ANN@example.COM")])

    assert steps(journal, run.id)["kinde_id"] == KINDE_ID


def test_the_username_is_compared_ignoring_case(journal: Journal) -> None:
    run = new_run(journal)
    user = staged(journal, run.id, email_key=None, username_key="ann")

    record_lookup(journal, run.id, user, "username", [kinde_user(provided_id=None, email=None, username="Ann")])

    assert steps(journal, run.id)["kinde_id"] == KINDE_ID


@pytest.mark.parametrize(("kinde_phone", "matches"), [("+14155552671", True), ("+1 415 555 2671", False)])
def test_the_phone_is_compared_exactly(journal: Journal, kinde_phone: str, matches: bool) -> None:
    run = new_run(journal)
    user = staged(journal, run.id, email_key=None, phone_key="+14155552671")

    record_lookup(journal, run.id, user, "phone", [kinde_user(provided_id=None, email=None, phone=kinde_phone)])

    assert steps(journal, run.id)["lookup"] == ("found" if matches else "absent")


def test_our_clerk_id_wins_over_a_user_holding_the_same_email(journal: Journal) -> None:
    """Kinde may return a foreign user with the email and ours (created before a crash) under another one."""
    run = new_run(journal)
    user = staged(journal, run.id, lookup="recheck", password="pending")
    foreign = kinde_user(provided_id="user_bob", kinde_id="kp_foreign")
    ours = kinde_user(kinde_id="kp_ours", email="ann.old@example.com")

    record_lookup(journal, run.id, user, "email", [foreign, ours])

    assert steps(journal, run.id)["kinde_id"] == "kp_ours"
    assert steps(journal, run.id)["created"] == "created"
    assert problems(journal, run.id) == []


# -- adopt: whose is it, and what is left to do -----------------------------------------------------


def test_ours_found_on_a_recheck_was_created_by_this_run_and_its_steps_continue(journal: Journal) -> None:
    run = new_run(journal)
    user = staged(journal, run.id, lookup="recheck", password="pending", flags="pending")

    adopt(journal, run.id, user, kinde_user())

    assert steps(journal, run.id) == {
        "state": "pending",
        "lookup": "found",
        "created": "created",
        "kinde_id": KINDE_ID,
        "password": "pending",
        "flags": "pending",
        "identities": "n/a",
        "missing_identities": None,
    }


@pytest.mark.parametrize(
    ("earlier", "carried"),
    [
        ({"password": "set", "flags": "done"}, {"password": "set", "flags": "done", "state": "done"}),
        ({"password": "n/a", "flags": "n/a"}, {"password": "n/a", "flags": "n/a", "state": "done"}),
        ({"password": "set", "flags": "pending"}, {"password": "set", "flags": "pending", "state": "pending"}),
        ({"password": "pending", "flags": "done"}, {"password": "pending", "flags": "done", "state": "pending"}),
        ({"password": "reset", "flags": "n/a"}, {"password": "pending", "flags": "n/a", "state": "pending"}),
    ],
    ids=["all-done", "nothing-needed", "flags-left", "password-left", "reset-is-not-a-password"],
)
def test_ours_created_by_an_earlier_run_carries_over_the_steps_it_finished(journal: Journal, earlier, carried) -> None:
    earlier_run(journal, created="created", kinde_id=KINDE_ID, state="done", **earlier)
    run = new_run(journal)
    user = staged(journal, run.id, password="pending", flags="pending")

    adopt(journal, run.id, user, kinde_user())

    result = steps(journal, run.id)
    assert (result["lookup"], result["created"], result["kinde_id"]) == ("found", "earlier", KINDE_ID)
    assert {name: result[name] for name in carried} == carried
    assert problems(journal, run.id) == []


def test_steps_this_run_does_not_need_stay_as_this_run_staged_them(journal: Journal) -> None:
    earlier_run(journal, created="created", kinde_id=KINDE_ID, password="set", flags="done")
    run = new_run(journal)
    user = staged(journal, run.id, password="reset", flags="n/a")  # no importable password now

    adopt(journal, run.id, user, kinde_user())

    result = steps(journal, run.id)
    assert (result["password"], result["flags"], result["state"]) == ("reset", "n/a", "done")


def test_identities_an_earlier_run_could_not_add_are_still_to_add(journal: Journal) -> None:
    missing = json.dumps([{"type": "phone", "value": "+14155552671"}])
    earlier_run(
        journal,
        created="created",
        kinde_id=KINDE_ID,
        password="set",
        flags="n/a",
        state="pending",
        identities="pending",
        missing_identities=missing,
    )
    run = new_run(journal)
    user = staged(journal, run.id, password="pending", flags="n/a")

    adopt(journal, run.id, user, kinde_user())

    result = steps(journal, run.id)
    assert (result["identities"], result["missing_identities"]) == ("pending", missing)
    assert (result["password"], result["state"]) == ("set", "pending")  # one step left: not done


def test_the_latest_earlier_run_that_created_the_user_is_the_one_that_counts(journal: Journal) -> None:
    earlier_run(journal, created="created", kinde_id=KINDE_ID, password="pending", flags="pending")
    earlier_run(journal, created="earlier", kinde_id=KINDE_ID, password="set", flags="done")  # it continued
    run = new_run(journal)
    user = staged(journal, run.id, password="pending", flags="pending")

    adopt(journal, run.id, user, kinde_user())

    assert steps(journal, run.id)["state"] == "done"


def test_ours_that_an_earlier_run_meant_to_create_continues_from_the_start(journal: Journal) -> None:
    """The earlier run looked, found nothing and died mid-create: the user is ours, no step is done."""
    earlier_run(journal, lookup="absent", created="pending", password="pending", flags="pending")
    run = new_run(journal)
    user = staged(journal, run.id, password="pending", flags="pending")

    adopt(journal, run.id, user, kinde_user())

    result = steps(journal, run.id)
    assert (result["lookup"], result["created"], result["kinde_id"]) == ("found", "earlier", KINDE_ID)
    assert (result["password"], result["flags"], result["state"]) == ("pending", "pending", "pending")
    assert problems(journal, run.id) == []


def test_an_earlier_dry_run_never_meant_to_create(journal: Journal) -> None:
    earlier_run(journal, RunMode.DRY_RUN, lookup="absent", created="pending", password="pending")
    run = new_run(journal)
    user = staged(journal, run.id, password="pending", flags="pending")

    adopt(journal, run.id, user, kinde_user())

    result = steps(journal, run.id)
    assert (result["created"], result["state"], result["password"]) == ("existed", "done", "n/a")


@pytest.mark.parametrize("owner", ["user_bob", None], ids=["other-provided-id", "no-provided-id"])
def test_a_user_that_is_not_ours_is_left_untouched_and_reported(journal: Journal, owner: str | None) -> None:
    run = new_run(journal)
    user = staged(journal, run.id, lookup="recheck", password="pending", flags="pending")

    adopt(journal, run.id, user, kinde_user(provided_id=owner))

    assert steps(journal, run.id) == {
        "state": "done",
        "lookup": "found",
        "created": "existed",
        "kinde_id": KINDE_ID,
        "password": "n/a",
        "flags": "n/a",
        "identities": "n/a",
        "missing_identities": None,
    }
    ((clerk_id, kind, message),) = problems(journal, run.id)
    assert (clerk_id, kind) == (CLERK_ID, "warning")
    assert KINDE_ID in message
    assert (owner or "(none)") in message


def test_a_foreign_user_is_not_adopted_even_if_an_earlier_run_created_that_kinde_id(journal: Journal) -> None:
    """Provenance needs our Clerk id on the Kinde user too: someone may have reused it since."""
    earlier_run(journal, created="created", kinde_id=KINDE_ID, password="set", flags="done")
    run = new_run(journal)
    user = staged(journal, run.id, password="pending", flags="pending")

    adopt(journal, run.id, user, kinde_user(provided_id="user_bob"))

    assert steps(journal, run.id)["created"] == "existed"
    assert len(problems(journal, run.id)) == 1


def test_ours_with_no_history_in_this_journal_is_already_present(journal: Journal) -> None:
    """Our Clerk id but no run of this journal made it (another state directory did): nothing to redo."""
    earlier_run(journal, created="created", kinde_id="kp_another", password="set", flags="done")
    run = new_run(journal)
    user = staged(journal, run.id, password="pending", flags="pending")

    adopt(journal, run.id, user, kinde_user())

    result = steps(journal, run.id)
    assert (result["created"], result["state"], result["password"], result["flags"]) == (
        "existed",
        "done",
        "n/a",
        "n/a",
    )
