"""``migrator.reports`` on its own, against a real journal: plan and summary counts, exit codes, the
password report and ``migrator status``."""

from __future__ import annotations

import csv
import os
import stat

import pytest

from migrator.errors import EXIT_FAILURES, EXIT_INTERRUPTED, EXIT_OK
from migrator.journal import Journal, MembershipState, RunMode, RunStatus
from migrator.mapping import NO_DIGEST_REASON, MappingOptions
from migrator.models import ExportRow
from migrator.passwords import NOT_IMPORTABLE
from migrator.reports import (
    PASSWORD_REPORT_COLUMNS,
    Plan,
    Summary,
    build_plan,
    build_summary,
    password_report_path,
    status_report,
    write_password_report,
)
from migrator.run_passes import RESUME, RETRY_FAILED, START, begin_pass
from migrator.sandbox.hashing import make_clerk_digest
from migrator.stages.conflicts import settle_shared
from tests.journal_rows import clerk_user, new_run, put, stage


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "state")
    yield j
    j.close()


# -- the plan ---------------------------------------------------------------------------------------


def stage_plan_world(journal: Journal) -> int:
    """One user in each situation the plan counts, an export that misses some and has extra rows."""
    run = new_run(journal)
    users = {
        "new_bcrypt": {"password": "pending", "password_method": "bcrypt"},
        "new_pbkdf2_a": {"password": "pending", "password_method": "pbkdf2"},
        "new_pbkdf2_b": {"password": "pending", "password_method": "pbkdf2"},
        "new_reset": {"password": "reset", "flags": "pending", "hasher": "argon2id", "password_problem": "argon2"},
        "new_no_password": {"password": "n/a", "hasher": "argon2id", "password_problem": "argon2"},
        "new_no_digest": {"password": "reset", "flags": "pending", "password_problem": NO_DIGEST_REASON},
        "existed": {"state": "done", "lookup": "found", "created": "existed"},
        "earlier_done": {"state": "done", "lookup": "found", "created": "earlier"},
        "finish_created": {"lookup": "found", "created": "created", "password": "set", "flags": "pending"},
        "finish_earlier": {"lookup": "found", "created": "earlier", "password": "pending", "password_method": "bcrypt"},
        "failed": {"state": "failed", "lookup": "absent", "password": "pending", "password_method": "md5"},
        "dup_1": {"state": "skipped", "skip_reason": "duplicate_email", "created": "n/a"},
        "dup_2": {"state": "skipped", "skip_reason": "duplicate_email", "created": "n/a"},
        "banned": {"state": "skipped", "skip_reason": "banned", "created": "n/a"},
    }
    for seq, (clerk_id, fields) in enumerate(users.items()):
        put(journal, run.id, clerk_id, seq, **fields)
    in_export = ["new_bcrypt", "new_reset", "existed", "failed", "gone_1", "gone_2"]
    journal.exports.add_entries(run.id, [(uid, n * 100, n + 2, None, False) for n, uid in enumerate(in_export)])
    journal.runs.record_source_count(run.id, 15)
    journal.organizations.stage(run.id, "org_1", {"name": "Acme"})
    for clerk_id in ("new_bcrypt", "failed", "existed", "dup_1"):
        journal.organizations.stage_membership(run.id, clerk_id, "org_1", "member")
    return run.id


def test_the_plan_counts_each_situation_once(journal: Journal) -> None:
    run_id = stage_plan_world(journal)

    plan = build_plan(journal, run_id, with_export=True)

    assert plan == Plan(
        run_id=run_id,
        source_users=15,
        staged=14,
        to_create=6,  # the new_* users; the failed user is not one of them
        already_present=2,
        to_finish=2,
        skipped={"duplicate_email": 2, "banned": 1},
        failed=1,
        password_imports={"bcrypt": 2, "pbkdf2": 2},  # finish_earlier's password is still to import
        password_resets=2,
        without_password=1,
        password_missing=1,
        password_problems={"argon2": 2, "password enabled in Clerk but no digest in the export": 1},
        export_only=2,
        api_only=10,
        organizations=1,
        memberships=4,
        memberships_pending=2,  # not the existed user's, not the skipped one's
    )
    assert plan.writes_needed


def test_without_an_export_the_plan_names_no_export_gap(journal: Journal) -> None:
    run_id = stage_plan_world(journal)

    plan = build_plan(journal, run_id, with_export=False)

    assert (plan.export_only, plan.api_only) == (0, 0)
    assert plan.to_create == 6 and plan.password_imports == {"bcrypt": 2, "pbkdf2": 2}


def test_a_plan_with_only_finished_users_needs_no_write(journal: Journal) -> None:
    run = new_run(journal)
    put(journal, run.id, "existed", 0, state="done", created="existed")
    put(journal, run.id, "skipped", 1, state="skipped", skip_reason="banned", created="n/a")

    assert not build_plan(journal, run.id, with_export=False).writes_needed
    journal.organizations.stage(run.id, "org_1", {"name": "Acme"})
    put(journal, run.id, "earlier", 2, state="done", created="earlier")
    journal.organizations.stage_membership(run.id, "earlier", "org_1", "member")
    assert build_plan(journal, run.id, with_export=False).writes_needed  # a membership is still to add


# -- the summary and the exit code --------------------------------------------------------------------


def test_the_summary_counts_what_the_run_did(journal: Journal) -> None:
    run = new_run(journal)
    rows = {
        "created": {"state": "done", "created": "created", "password": "set", "password_method": "bcrypt"},
        "created_reset": {"state": "done", "created": "created", "password": "reset", "flags": "done"},
        "reset_left": {"created": "created", "password": "reset", "flags": "pending"},
        "existed": {"state": "done", "created": "existed"},
        "earlier": {"state": "done", "created": "earlier"},
        "failed_a": {"state": "failed", "error_code": "kinde_400", "error_message": "refused a"},
        "failed_b": {"state": "failed", "error_code": "kinde_400", "error_message": "refused b"},
        "failed_c": {"state": "failed", "error_code": "timeout", "error_message": "no answer"},
        "skipped": {"state": "skipped", "skip_reason": "banned", "skip_detail": "banned in Clerk"},
    }
    for seq, (clerk_id, fields) in enumerate(rows.items()):
        put(journal, run.id, clerk_id, seq, **fields)
    for clerk_id in ("created", "created_reset"):
        journal.organizations.stage_membership(run.id, clerk_id, "org_1", "member")
    journal.organizations.record_memberships(run.id, [("created", "org_1")], MembershipState.DONE)
    journal.organizations.record_memberships(run.id, [("created_reset", "org_1")], MembershipState.FAILED, "no such role")
    plan = build_plan(journal, run.id, with_export=False)

    summary = build_summary(journal, run.id, "run", plan, cancelled=False)

    assert summary.plan is plan
    assert (summary.created, summary.already_present, summary.failed, summary.pending) == (2, 2, 3, 1)
    assert summary.passwords_set == {"bcrypt": 1}
    assert summary.password_resets == 1
    assert (summary.memberships_added, summary.memberships_failed) == (1, 1)
    assert summary.skipped == {"banned": 1}
    assert summary.skipped_users == [{"clerk_id": "skipped", "reason": "banned", "detail": "banned in Clerk"}]
    assert summary.failures == [("kinde_400", "refused a", 2), ("timeout", "no answer", 1)]
    assert summary.exit_code == EXIT_FAILURES
    data = summary.to_json()
    assert data["exit_code"] == EXIT_FAILURES
    assert data["failures"][0] == {"code": "kinde_400", "message": "refused a", "users": 2, "messages": 2}
    assert data["failures"][1]["messages"] == 1


def test_a_retry_counts_only_what_it_did_and_shows_what_earlier_passes_did(journal: Journal) -> None:
    run = new_run(journal)
    first = begin_pass(journal, run.id, START)
    put(journal, run.id, "ok", 0, state="done", password="set", password_method="bcrypt")
    journal.users.update(run.id, "ok", created="created")  # as the load stage records a create
    put(journal, run.id, "there", 1, state="done", created="existed")
    put(journal, run.id, "skip", 2, state="skipped", skip_reason="banned", created="n/a")
    for seq, clerk_id in enumerate(("bad_1", "bad_2", "bad_3", "half"), start=3):
        put(journal, run.id, clerk_id, seq, state="failed", error_code="X", error_message=f"taken by {clerk_id}")
    journal.users.update(run.id, "half", created="created")  # created, then an identity refused: failed
    plan = build_plan(journal, run.id, with_export=False)

    started = build_summary(journal, run.id, "run", plan, cancelled=False, start=first)
    assert (started.pass_number, started.pass_kind, started.earlier) == (1, START, None)
    assert (started.created, started.failed, started.failed_in_run) == (1, 4, 4)

    assert journal.users.reset_failed(run.id) == 4  # what retry-failed does before its pass begins
    retry = begin_pass(journal, run.id, RETRY_FAILED)
    journal.users.update(run.id, "bad_1", state="done", created="created", password="set", password_method="md5")
    journal.users.update(run.id, "bad_2", state="done", created="created", password="reset", flags="done")
    journal.users.update(run.id, "bad_3", state="failed", error_code="X", error_message="still taken")
    journal.users.update(run.id, "half", state="done", created="created")  # its identity added now

    retried = build_summary(journal, run.id, "run", plan, cancelled=False, start=retry)
    assert (retried.pass_number, retried.pass_kind) == (2, RETRY_FAILED)
    assert (retried.created, retried.already_present, retried.failed, retried.failed_in_run) == (2, 0, 1, 1)
    assert retried.finished_created_earlier == 1  # created by the first pass: not this one's creation
    assert (retried.passwords_set, retried.password_resets, retried.skipped) == ({"md5": 1}, 1, {})
    assert retried.earlier is not None
    assert (retried.earlier["created"], retried.earlier["already_present"], retried.earlier["failed"]) == (1, 1, 0)
    assert (retried.earlier["passwords_set"], retried.earlier["skipped"]) == ({"bcrypt": 1}, {"banned": 1})
    assert retried.exit_code == EXIT_FAILURES
    data = retried.to_json()
    assert (data["created"], data["failed"], data["failed_in_run"], data["earlier"]["created"]) == (2, 1, 1, 1)
    assert journal.runs.passes(run.id)[1].counts_before["created"] == 1


def test_a_resume_leaves_earlier_failures_failed_and_the_exit_code_says_so(journal: Journal) -> None:
    run = new_run(journal)
    put(journal, run.id, "bad", 0, state="failed", error_code="X", error_message="refused")
    put(journal, run.id, "left", 1, created="created", password="pending", password_method="bcrypt")
    resumed = begin_pass(journal, run.id, RESUME)  # a journal from before passes: the start was not recorded
    journal.users.update(run.id, "left", state="done", password="set")

    summary = build_summary(journal, run.id, "run", build_plan(journal, run.id, with_export=False), cancelled=False,
                            start=resumed)  # fmt: skip

    assert resumed.number == 2
    assert (summary.created, summary.finished_created_earlier) == (0, 1)  # created before the resume
    assert (summary.failed, summary.earlier["failed"], summary.failed_in_run) == (0, 1, 1)
    assert summary.exit_code == EXIT_FAILURES  # the earlier failure is still there


@pytest.mark.parametrize(
    ("mode", "cancelled", "pending", "exit_code"),
    [("run", False, 1, EXIT_FAILURES), ("dry-run", False, 0, EXIT_OK), ("run", True, 0, EXIT_INTERRUPTED)],
    ids=["run", "dry-run", "declined"],
)
def test_users_left_pending_fail_a_run_only(journal: Journal, mode, cancelled, pending, exit_code) -> None:
    """A dry run or a declined run leaves every user pending by design: that is not a failure."""
    run = new_run(journal, mode)
    put(journal, run.id, "waiting", 0, password="pending", password_method="bcrypt")
    put(journal, run.id, "done", 1, state="done", created="created")

    summary = build_summary(journal, run.id, mode, build_plan(journal, run.id, with_export=False), cancelled=cancelled)

    assert (summary.pending, summary.exit_code) == (pending, exit_code)


@pytest.mark.parametrize(
    ("fields", "exit_code"),
    [
        ({}, EXIT_OK),
        ({"created": 5, "already_present": 3, "skipped": {"banned": 2}}, EXIT_OK),  # skips are accounted for
        ({"failed": 1}, EXIT_FAILURES),
        ({"earlier": {"failed": 1}}, EXIT_FAILURES),  # failed in an earlier pass, not retried by this one
        ({"pending": 1}, EXIT_FAILURES),
        ({"memberships_failed": 1}, EXIT_FAILURES),
        ({"unaccounted": ["Clerk reported 10 users, 9 fetched"]}, EXIT_FAILURES),
        ({"cancelled": True}, EXIT_INTERRUPTED),
        ({"cancelled": True, "failed": 2}, EXIT_INTERRUPTED),
    ],
    ids=[
        "nothing",
        "all-accounted",
        "failed",
        "failed-earlier",
        "pending",
        "membership",
        "unaccounted",
        "cancelled",
        "cancelled-first",
    ],
)
def test_the_exit_code_claims_every_user_is_accounted_for_only_when_true(fields, exit_code: int) -> None:
    summary = Summary(run_id=1, mode=RunMode.RUN, plan=Plan(run_id=1), **fields)

    assert summary.exit_code == exit_code
    assert summary.to_json()["exit_code"] == exit_code


# -- the password report ------------------------------------------------------------------------------


def digest(hasher: str, plaintext: str) -> str:
    return make_clerk_digest(hasher, plaintext, salt=b"0123456789abcdef")


def export_row(clerk_id: str, hasher: str, value: str) -> ExportRow:
    return ExportRow(user_id=clerk_id, row_number=2, password_hasher=hasher, password_digest=value)


def test_the_password_report_lists_who_needs_another_way_in_and_never_a_digest(journal: Journal, tmp_path) -> None:
    state_dir = tmp_path / "state"
    run = new_run(journal)
    digests = {
        "u_bcrypt": ("bcrypt", digest("bcrypt", "correct horse")),
        "u_argon": ("argon2id", digest("argon2id", "battery staple")),
        "u_malformed": ("bcrypt", "$2b$10$thisIsNotAWholeBcryptDigestSecretPart"),
        "u_dup": ("argon2i", digest("argon2i", "tr0ub4dor")),
        "u_no_password": ("scrypt_werkzeug", digest("scrypt_werkzeug", "hunter2")),
        "u_skip": ("argon2id", digest("argon2id", "letmein")),
    }
    export = {clerk_id: export_row(clerk_id, hasher, value) for clerk_id, (hasher, value) in digests.items()}
    stage(
        journal,
        run.id,
        [
            (0, clerk_user("u_bcrypt", "bcrypt@example.com")),
            (1, clerk_user("u_argon", "Argon@Example.com")),
            (2, clerk_user("u_malformed", "malformed@example.com")),
            (3, clerk_user("u_no_digest", "nodigest@example.com", password_enabled=True)),
            (4, clerk_user("u_dup_keeper", "dup@example.com")),
            (5, clerk_user("u_dup", "dup@example.com")),
        ],
        export=export,
    )
    stage(
        journal,
        run.id,
        [(6, clerk_user("u_no_password", "nopw@example.com"))],
        export=export,
        options=MappingOptions(unimportable_passwords="no-password"),
    )
    stage(
        journal,
        run.id,
        [(7, clerk_user("u_skip", "skip@example.com"))],
        export=export,
        options=MappingOptions(unimportable_passwords="skip"),
    )
    settle_shared(journal, run.id, "first")  # u_dup loses its email to u_dup_keeper
    journal.users.update(run.id, "u_argon", state="done", created="created", flags="done")  # the reset was requested
    stale = password_report_path(state_dir, run.id)
    stale.write_text("stale\n")
    os.chmod(stale, 0o644)

    path = write_password_report(journal, run.id, state_dir)

    assert path == stale
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not path.with_suffix(".tmp").exists()
    text = path.read_text(encoding="utf-8")
    for _, value in digests.values():
        assert value not in text
        assert value.split("$")[-1] not in text  # not even the hash part
    with path.open(newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    assert tuple(header) == PASSWORD_REPORT_COLUMNS == ("clerk_id", "email", "hasher", "reason", "action")
    by_user = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    assert list(by_user) == ["u_argon", "u_malformed", "u_no_digest", "u_dup", "u_no_password", "u_skip"]
    assert by_user["u_argon"] == {
        "clerk_id": "u_argon",
        "email": "argon@example.com",
        "hasher": "argon2id",
        "reason": NOT_IMPORTABLE["argon2id"],
        "action": "password reset requested",
    }
    assert by_user["u_malformed"]["reason"].startswith("malformed bcrypt digest")
    assert by_user["u_malformed"]["action"] == "password reset requested"
    assert (by_user["u_no_digest"]["hasher"], by_user["u_no_digest"]["reason"]) == ("", NO_DIGEST_REASON)
    assert by_user["u_dup"]["action"] == "skipped (duplicate_email)"
    assert by_user["u_no_password"]["action"] == "created without a password"
    assert by_user["u_skip"]["action"] == "skipped (password_not_importable)"
    assert by_user["u_skip"]["email"] == "skip@example.com"  # a skipped user is still written to


def test_a_run_without_password_problems_writes_a_header_only_report(journal: Journal, tmp_path) -> None:
    run = new_run(journal)
    stage(journal, run.id, [(0, clerk_user("u1", "a@example.com"))])

    path = write_password_report(journal, run.id, tmp_path / "state")

    assert path.read_text(encoding="utf-8").splitlines() == [",".join(PASSWORD_REPORT_COLUMNS)]


# -- migrator status ----------------------------------------------------------------------------------


def test_a_running_run_whose_process_is_gone_is_shown_stopped(journal: Journal, tmp_path) -> None:
    run = new_run(journal)

    assert status_report(journal, run.id)["run"]["status"] == "stopped"

    holder = Journal(tmp_path / "state")  # another process holding the state directory
    try:
        holder.acquire()
        assert status_report(journal, run.id)["run"]["status"] == "running"
    finally:
        holder.close()
    journal.runs.end(run.id, RunStatus.COMPLETED_WITH_FAILURES)
    assert status_report(journal, run.id)["run"]["status"] == "completed-with-failures"


def test_status_shows_the_latest_run_with_its_counts_and_at_most_fifty_problems(journal: Journal) -> None:
    new_run(journal)
    run = new_run(journal)
    journal.runs.record_source_count(run.id, 4)
    put(journal, run.id, "u_done", 0, state="done", created="created")
    put(journal, run.id, "u_failed", 1, state="failed", error_code="kinde_400", error_message="refused")
    put(journal, run.id, "u_skipped", 2, state="skipped", skip_reason="banned", skip_detail="banned in Clerk")
    journal.organizations.stage_membership(run.id, "u_done", "org_1", "admin")
    journal.organizations.record_memberships(run.id, [("u_done", "org_1")], MembershipState.FAILED, "no role admin")
    journal.users.add_problems(run.id, [("u_failed", "warning", f"note {n}") for n in range(60)])

    report = status_report(journal, None)

    assert report["run"]["id"] == run.id
    assert (report["run"]["mode"], report["run"]["source_count"], report["run"]["fetch_done"]) == ("run", 4, False)
    assert report["users"] == 3
    assert report["steps"]["state"] == {"done": 1, "failed": 1, "skipped": 1}
    assert report["skipped"] == {"banned": 1}
    assert report["skipped_users"] == [{"clerk_id": "u_skipped", "reason": "banned", "detail": "banned in Clerk"}]
    assert report["failures"] == [{"code": "kinde_400", "message": "refused", "users": 1, "messages": 1}]
    assert report["memberships"] == {"failed": 1}
    assert report["failed_memberships"] == [
        {"clerk_user_id": "u_done", "clerk_org_id": "org_1", "role_key": "admin", "error": "no role admin"}
    ]
    assert [p["message"] for p in report["problems"]] == [f"note {n}" for n in range(50)]
