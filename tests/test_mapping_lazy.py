"""Policy ``lazy`` in the mapping (pure): who joins the lazy cohort, who gets the fallback, and the staged row."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrator.journal import Created, Lookup, PasswordStep, Step, UserState
from migrator.mapping import (
    NO_DIGEST_REASON,
    STALE_DIGEST_REASON,
    MappingOptions,
    password_policy,
    plan_user,
)
from migrator.models import Identity, PasswordUnimportable, Skip, UserPlan, plan_from_record, plan_to_record
from migrator.stages.staging import staged_row
from tests.test_mapping import BCRYPT, clerk_user, email, export_row, phone

ARGON2 = "$argon2id$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$Zm9vYmFyYmF6cXV4"
PROBLEM = PasswordUnimportable("argon2id", "argon2id digests cannot be verified by Kinde")
VERIFIED = Identity("email", "a@example.com", is_verified=True)
UNVERIFIED = Identity("email", "b@example.com", is_verified=False)
PHONE = Identity("phone", "+14155550100", is_verified=True, phone_country_id="us")
USERNAME = Identity("username", "ann")
FALLBACKS = ("reset", "no-password", "skip")


def lazy(**options: Any) -> MappingOptions:
    return MappingOptions(unimportable_passwords="lazy", **options)


@given(
    identities=st.lists(st.sampled_from([VERIFIED, UNVERIFIED, PHONE, USERNAME]), max_size=4),
    fallback=st.sampled_from(FALLBACKS),
    policy=st.sampled_from(("reset", "no-password", "skip", "lazy")),
    problem=st.sampled_from([None, PROBLEM]),
)
def test_the_policy_is_lazy_only_for_an_unimportable_password_and_a_verified_email(
    identities: list[Identity], fallback: str, policy: str, problem: PasswordUnimportable | None
) -> None:
    options = MappingOptions(unimportable_passwords=policy, lazy_fallback=fallback)  # type: ignore[arg-type]
    chosen, cohort = password_policy(problem, identities, options)
    if problem is None:
        assert (chosen, cohort) == (None, False)
    elif policy != "lazy":
        assert (chosen, cohort) == (policy, False)
    elif VERIFIED in identities:
        assert (chosen, cohort) == ("lazy", True)
    else:
        assert (chosen, cohort) == (fallback, False)


def test_an_argon2_user_with_an_email_joins_the_cohort_without_a_reset() -> None:
    plan = plan_user(clerk_user(password_enabled=True), export_row("argon2id", ARGON2), lazy())
    assert isinstance(plan, UserPlan)
    assert plan.lazy and not plan.request_password_reset and plan.password is None
    assert plan.password_problem is not None and "argon2" in plan.password_problem.reason


@pytest.mark.parametrize("reason", ["stale", "no digest"])
def test_changed_after_the_export_and_no_digest_join_the_cohort_too(reason: str) -> None:
    if reason == "stale":
        user = clerk_user(password_enabled=True, password_last_updated_at=1_800_000_000_000)
        options = lazy(export_time=datetime(2026, 1, 1, tzinfo=UTC))
        plan = plan_user(user, export_row("bcrypt", BCRYPT), options)
        expected = STALE_DIGEST_REASON
    else:
        plan = plan_user(clerk_user(password_enabled=True), None, lazy())
        expected = NO_DIGEST_REASON
    assert isinstance(plan, UserPlan) and plan.lazy and not plan.request_password_reset
    assert plan.password_problem is not None and plan.password_problem.reason == expected


def test_an_importable_password_is_imported_whatever_the_policy() -> None:
    plan = plan_user(clerk_user(password_enabled=True), export_row("bcrypt", BCRYPT), lazy())
    assert isinstance(plan, UserPlan) and not plan.lazy and plan.password is not None


@pytest.mark.parametrize("fallback", FALLBACKS)
@pytest.mark.parametrize(
    "contacts",
    [
        {"email_addresses": [], "primary_email_address_id": None, "phone_numbers": [phone("p1", "+14155550100")],
         "primary_phone_number_id": "p1"},
        {"email_addresses": [email("idn_primary", "jane@example.com", "unverified")]},
        {"email_addresses": [], "primary_email_address_id": None, "username": "jane"},
    ],
    ids=["phone only", "unverified email", "username only"],
)  # fmt: skip
def test_users_the_workflow_cannot_find_get_the_fallback_now(fallback: str, contacts: dict[str, Any]) -> None:
    user = clerk_user(password_enabled=True, **contacts)
    result = plan_user(user, export_row("argon2id", ARGON2), lazy(lazy_fallback=fallback))
    if fallback == "skip":
        assert isinstance(result, Skip) and result.reason == "password_not_importable"
        return
    assert isinstance(result, UserPlan) and not result.lazy
    assert result.request_password_reset is (fallback == "reset")


def test_the_cohort_flag_survives_the_journal_and_is_absent_from_other_plans() -> None:
    plan = plan_user(clerk_user(password_enabled=True), export_row("argon2id", ARGON2), lazy())
    assert isinstance(plan, UserPlan)
    record = plan_to_record(plan)
    assert record["lazy"] is True and plan_from_record(plan.clerk_id, record).lazy
    other = plan_user(clerk_user(), None, lazy())
    assert isinstance(other, UserPlan) and "lazy" not in plan_to_record(other)


@pytest.mark.parametrize("users_in_kinde", [False, True])
def test_the_staged_row_of_a_cohort_user(users_in_kinde: bool) -> None:
    options = lazy(lazy_users_in_kinde=users_in_kinde)
    row, _ = staged_row(clerk_user(password_enabled=True), 0, export_row("argon2id", ARGON2), options, None)
    assert row["lazy"] == 1 and json.loads(row["plan"])["lazy"] is True
    if users_in_kinde:  # created by the run, without a password and without a reset
        assert (row["state"], row["lookup"], row["created"]) == (UserState.PENDING, Lookup.PENDING, Created.PENDING)
        assert (row["password"], row["flags"]) == (PasswordStep.NA, Step.NA)
    else:  # left to the workflow: nothing to do in this run
        assert (row["state"], row["lookup"], row["created"]) == (UserState.LAZY, Lookup.NA, Created.NA)
        assert (row["password"], row["flags"], row["properties"], row["social"]) == (PasswordStep.NA,) + (Step.NA,) * 3


def test_a_row_outside_the_cohort_is_not_lazy() -> None:
    row, _ = staged_row(clerk_user(password_enabled=True), 0, export_row("argon2id", ARGON2), MappingOptions(), None)
    assert row["lazy"] == 0 and row["password"] == PasswordStep.RESET
