"""MAX_WAIT: the longest single wait, from the environment or the TOML file, reaches both clients."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from migrator.config import Settings, load_settings
from migrator.connect import connect
from migrator.errors import ConfigError


def test_max_wait_from_env_and_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert load_settings().max_wait == 120.0
    monkeypatch.setenv("MAX_WAIT", "30")
    assert load_settings().max_wait == 30.0
    monkeypatch.delenv("MAX_WAIT")
    toml = tmp_path / "migrator.toml"
    toml.write_text("max_wait = 45.5\n")
    assert load_settings(toml).max_wait == 45.5


@pytest.mark.parametrize("value", ["0", "-1", "86400"])
def test_max_wait_out_of_range_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MAX_WAIT", value)
    with pytest.raises(ConfigError, match="MAX_WAIT"):
        load_settings()


def test_connect_gives_both_clients_and_limiters_the_cap() -> None:
    settings = Settings(
        clerk_secret_key=SecretStr("sk_test_x"),
        clerk_api_url="http://127.0.0.1:9/v1",
        kinde_domain="http://127.0.0.1:9",
        kinde_management_client_id="id",
        kinde_management_client_secret=SecretStr("secret"),
        max_wait=7.0,
    )

    async def caps() -> list[float]:
        async with connect(settings) as (clerk, kinde):
            return [clerk.max_wait, clerk.limiter.max_wait, kinde.max_wait, kinde.limiter.max_wait]

    assert asyncio.run(caps()) == [7.0, 7.0, 7.0, 7.0]
