"""The generator's real-data shapes: older external-account shapes for a share of users, and the JSON export.

Off by default (``account_shapes=0``): the documented population, and every test that counts it, is unchanged.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from migrator.clerk.accounts import read_external_account
from migrator.sandbox.generator import ACCOUNT_SHAPES, Dataset


def test_by_default_every_account_is_served_in_the_current_shape() -> None:
    dataset = Dataset(300)
    accounts = [a for i in range(dataset.n) for a in dataset.user(i)["external_accounts"]]
    assert accounts and all(a["object"] == "external_account" and a["provider"].startswith("oauth_") for a in accounts)
    assert all(dataset.account_shape(i) is None for i in range(dataset.n))


def test_a_share_of_accounts_is_served_in_each_older_shape_deterministically() -> None:
    dataset, again = Dataset(600, account_shapes=0.5), Dataset(600, account_shapes=0.5)
    shapes = Counter(dataset.account_shape(i) for i in range(dataset.n))
    assert set(shapes) == {None, *ACCOUNT_SHAPES}
    with_account = sum(1 for i in range(dataset.n) if dataset.user(i)["external_accounts"])
    reshaped = dataset.n - shapes[None]
    assert 0.35 * with_account < reshaped < 0.65 * with_account, (reshaped, with_account)
    for i in range(dataset.n):
        assert dataset.user(i) == again.user(i)
        current = Dataset(600).user(i)["external_accounts"]
        served = dataset.user(i)["external_accounts"]
        shape = dataset.account_shape(i)
        for before, after in zip(current, served, strict=True):
            account, original = read_external_account(after), read_external_account(before)
            if shape in (None, "legacy", "bare", "legacy_bare"):  # the same provider and identity, whatever the shape
                assert (account.provider, account.value) == (original.provider, original.value), (i, after)
            elif shape == "no_identity":
                assert account.provider == original.provider and account.value is None
            else:
                assert account.provider is None
            if shape == "legacy":
                assert "provider" not in after and after["object"].endswith("_account")


@pytest.mark.parametrize("shape", ["list", "joined", "ndjson"])
def test_the_json_export_holds_the_csvs_users_and_digests(tmp_path: Path, shape: str) -> None:
    dataset = Dataset(150, seed=4)
    path = tmp_path / "export.json"
    assert dataset.write_export_json(path, shape) == 150  # type: ignore[arg-type]
    text = path.read_text(encoding="utf-8")
    users = [json.loads(line) for line in text.splitlines()] if shape == "ndjson" else json.loads(text)
    assert [u["id"] for u in users] == [dataset.user_id(i) for i in range(150)]
    for i, user in enumerate(users):
        secret = dataset.password(i)
        assert (user["password_hasher"], user["password_digest"]) == (secret if secret else (None, None))
        emails = user["email_addresses"]
        assert isinstance(emails, str if shape == "joined" else list)
        assert ("primary_email_address" in user) == (shape != "joined")
    assert path.stat().st_mtime_ns == dataset.export_time_ms * 1_000_000
