"""Clerk external accounts in every shape Clerk has served -> one model, and the mapping's use of it.

Shapes from Clerk's SDK fixtures and docs (../shared/reference/clerk-backend-api.md, ExternalAccount):
current ``external_account`` objects, legacy ``google_account`` objects without ``provider`` (the
provider's user id in ``google_id``), and bare provider names (``google``) with or without a legacy object.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from migrator.clerk.accounts import canonical_provider, read_external_account
from migrator.mapping import MappingOptions, plan_user, social_identities
from migrator.models import UserPlan, plan_from_record, plan_to_record

CURRENT = {
    "object": "external_account",
    "id": "eac_1",
    "provider": "oauth_google",
    "identification_id": "idn_1",
    "provider_user_id": "107895751011250679587",
    "email_address": "jane@example.com",
    "first_name": "Jane",
}
LEGACY = {  # Clerk's older user JSON (docs and real dumps): no provider, the id in google_id
    "object": "google_account",
    "id": "idn_1o4qfbU8YjpJgClb",
    "google_id": "10086712340624",
    "email_address": "boss@clerk.dev",
    "given_name": "Boss",
    "family_name": "Clerk",
    "picture": "https://x/y",
}
BARE = {  # Clerk's backend fixtures: a legacy object name with a bare provider name
    "object": "google_account",
    "id": "idn_789",
    "provider": "google",
    "identification_id": "987",
    "provider_user_id": "987654321012345678901",
    "email_address": "john.doe@example.com",
}


def test_each_shape_reads_as_the_same_model() -> None:
    current, legacy, bare = (read_external_account(a) for a in (CURRENT, LEGACY, BARE))
    assert (current.provider, current.shape, current.value) == ("oauth_google", "current", "jane@example.com")
    assert (legacy.provider, legacy.shape, legacy.provider_user_id) == ("oauth_google", "legacy", "10086712340624")
    assert (bare.provider, bare.shape, bare.provider_user_id) == ("oauth_google", "legacy", "987654321012345678901")
    plain_bare = read_external_account({"provider": "github", "provider_user_id": 583231})
    assert (plain_bare.provider, plain_bare.shape, plain_bare.value) == ("oauth_github", "bare", "583231")


def test_a_legacy_account_without_email_is_carried_by_its_provider_id() -> None:
    account = read_external_account({"object": "facebook_account", "facebook_id": "fb-7"})
    assert (account.provider, account.value) == ("oauth_facebook", "fb-7")
    assert read_external_account({"object": "github_account", "github_id": 12}).value == "12"
    assert read_external_account({"object": "github_account", "github_id": True}).value is None


def test_what_names_no_provider_is_unknown() -> None:
    for raw in (
        "junk",
        7,
        None,
        [],
        {},
        {"object": "saml_account", "provider": ""},
        {"object": "enterprise_account"},
        {"object": "external_account"},
        {"provider": 5},
        {"provider": "oauth_"},
    ):
        assert read_external_account(raw).provider is None, raw
        assert read_external_account(raw).shape == "unknown"


@given(st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True), st.sampled_from(["", "oauth_", "OAuth_", " oauth_"]))
def test_every_spelling_of_a_provider_is_one_canonical_name(name: str, prefix: str) -> None:
    expected = "oauth_" + name.removeprefix("oauth_") if name.removeprefix("oauth_") else None
    assert canonical_provider(prefix + name + " ") == expected
    if expected is not None:
        assert canonical_provider(expected) == expected  # idempotent


@given(
    provider=st.sampled_from(["google", "github", "facebook", "apple", "microsoft"]),
    shape=st.sampled_from(["current", "legacy", "bare", "legacy_bare"]),
    email=st.one_of(st.none(), st.emails()),
    user_id=st.one_of(st.none(), st.integers(1, 10**20), st.text("0123456789abc", min_size=1, max_size=20)),
    spelled=st.sampled_from(["", "oauth_"]),
)
def test_a_mapped_account_is_linked_or_named_whatever_its_shape(
    provider: str, shape: str, email: str | None, user_id: Any, spelled: str
) -> None:
    raw: dict[str, Any] = {"email_address": email}
    if shape == "current":
        raw |= {"object": "external_account", "provider": f"oauth_{provider}", "provider_user_id": user_id}
    elif shape == "legacy":
        raw |= {"object": f"{provider}_account", f"{provider}_id": user_id}
    elif shape == "bare":
        raw |= {"object": "external_account", "provider": provider, "provider_user_id": user_id}
    else:
        raw |= {"object": f"{provider}_account", "provider": provider, "provider_user_id": user_id}
    options = MappingOptions(social_connections={f"{spelled}{provider}": "conn_1"})
    notes: list[str] = []
    social, unmapped, not_carried = social_identities({"external_accounts": [raw]}, options, notes)
    assert unmapped == ()
    value = email or (str(user_id) if user_id is not None else None)
    if value is None:
        assert social == () and [d.provider for d in not_carried] == [f"oauth_{provider}"]
        assert "neither email nor provider user id" in notes[0]
    else:
        assert [(s.provider, s.connection_id, s.value) for s in social] == [(f"oauth_{provider}", "conn_1", value)]
        assert not_carried == () and notes == []


def test_an_account_not_carried_is_a_warning_naming_the_user_and_survives_the_journal() -> None:
    user = {
        "id": "user_1",
        "email_addresses": [{"id": "e1", "email_address": "a@example.com", "verification": {"status": "verified"}}],
        "primary_email_address_id": "e1",
        "external_accounts": [{"object": "google_account", "given_name": "A"}, {"object": "mystery"}],
    }
    plan = plan_user(user, None, MappingOptions(social_connections={"google": "conn_g"}))
    assert isinstance(plan, UserPlan)
    assert [d.provider for d in plan.social_not_carried] == ["oauth_google", "unknown"]
    assert all(w.startswith("user_1: external_accounts") for w in plan.warnings) and len(plan.warnings) == 2
    assert "'mystery'" in plan.warnings[1]
    again = plan_from_record("user_1", plan_to_record(plan))
    assert again.social_not_carried == plan.social_not_carried
    # users without any keep the plan record's earlier form
    assert "social_not_carried" not in plan_to_record(UserPlan("user_2", ()))
