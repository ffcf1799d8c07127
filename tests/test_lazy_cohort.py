"""Where a user of the lazy cohort stands (``lazy/cohort.standing``, pure), for every combination of what Kinde
and Clerk may say."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from migrator.lazy.cohort import KindeSeen, Member, Standing, standing

MEMBER = Member("user_2abc", "Ann@Example.com", "argon2id digests cannot be verified by Kinde")


def clerk_user(*, banned: bool = False, locked: bool = False, password: bool | None = True, two_factor: bool = False,
               emails: tuple[tuple[str, str], ...] = (("ann@example.com", "verified"),)) -> dict[str, Any]:  # fmt: skip
    user: dict[str, Any] = {
        "id": MEMBER.clerk_id,
        "banned": banned,
        "locked": locked,
        "two_factor_enabled": two_factor,
        "email_addresses": [{"email_address": a, "verification": {"status": s}} for a, s in emails],
    }
    if password is not None:
        user["password_enabled"] = password
    return user


kinde_seen = st.builds(
    KindeSeen,
    kinde_id=st.sampled_from([None, "kp_1"]),
    signed_in=st.booleans(),
    held_by=st.sampled_from([None, "kp_other"]),
)
clerk_seen = st.one_of(
    st.none(),
    st.builds(
        clerk_user,
        banned=st.booleans(),
        locked=st.booleans(),
        two_factor=st.booleans(),
        password=st.sampled_from([True, False, None]),
        emails=st.lists(
            st.tuples(st.sampled_from(["ann@example.com", "other@example.com"]), st.sampled_from(["verified", "unverified"])),
            max_size=2,
        ).map(tuple),
    ),
)


@given(kinde=kinde_seen, clerk=clerk_seen, users_in_kinde=st.booleans())
def test_every_member_gets_exactly_the_standing_its_facts_give(
    kinde: KindeSeen, clerk: dict[str, Any] | None, users_in_kinde: bool
) -> None:
    verdict = standing(MEMBER, kinde, clerk, users_in_kinde=users_in_kinde)
    assert (verdict.clerk_id, verdict.email, verdict.kinde_id) == (MEMBER.clerk_id, MEMBER.email, kinde.kinde_id)
    in_kinde = kinde.kinde_id is not None
    if in_kinde and (kinde.signed_in or not users_in_kinde):
        assert verdict.standing == Standing.MOVED and verdict.why == ""
        return
    refusals = []
    if kinde.held_by and not users_in_kinde:
        refusals.append("holds the email")
    if clerk is None:
        refusals.append("deleted from Clerk")
    else:
        if clerk["banned"]:
            refusals.append("banned")
        if clerk["locked"]:
            refusals.append("locked")
        if clerk["two_factor_enabled"]:
            refusals.append("two-factor")
        if clerk.get("password_enabled") is False:
            refusals.append("no password")
        if not any(status == "verified" for _, status in ((e["email_address"], e["verification"]["status"])
                                                           for e in clerk["email_addresses"])):  # fmt: skip
            refusals.append("no verified email")
    if users_in_kinde and not in_kinde:
        refusals.append("not in Kinde")
    if refusals:
        assert verdict.standing == Standing.NEVER
        assert refusals[0] in verdict.why  # the first reason in this order is the one given
    else:
        assert verdict.standing == Standing.PENDING and verdict.why == ""


def test_moved_wins_whatever_clerk_says_since() -> None:
    verdict = standing(MEMBER, KindeSeen("kp_1"), clerk_user(banned=True), users_in_kinde=False)
    assert verdict.standing == Standing.MOVED


def test_users_in_kinde_moved_only_once_kinde_says_it_signed_in() -> None:
    pending = standing(MEMBER, KindeSeen("kp_1", signed_in=False), clerk_user(), users_in_kinde=True)
    moved = standing(MEMBER, KindeSeen("kp_1", signed_in=True), clerk_user(), users_in_kinde=True)
    assert (pending.standing, moved.standing) == (Standing.PENDING, Standing.MOVED)


def test_an_email_kinde_holds_for_another_user_can_never_move_this_way() -> None:
    verdict = standing(MEMBER, KindeSeen(held_by="kp_9"), clerk_user(), users_in_kinde=False)
    assert verdict.standing == Standing.NEVER and "kp_9" in verdict.why


def test_a_two_factor_user_never_moves_this_way_as_the_workflow_refuses_it() -> None:
    verdict = standing(MEMBER, KindeSeen(), clerk_user(two_factor=True), users_in_kinde=False)
    assert verdict.standing == Standing.NEVER and "refuse_two_factor" in verdict.why
