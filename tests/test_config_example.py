"""config/migrator.example.toml says only what is true: every key in it is a setting and every setting is in it,
a commented-out value is the default you get (or an example where there is none), uncommented it loads, and a
comment that names a setting sits on that setting. A misspelt key in a config file is refused, not ignored."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from migrator.config import Settings, load_settings
from migrator.errors import ConfigError
from tests.e2e import cli_env, run_cli

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "migrator.example.toml"
KEY_LINE = re.compile(r'^# ("[^"]+"|[a-z_]+) = ')
TABLE_LINE = re.compile(r"^# \[([a-z_]+)\]$")


def uncommented(text: str) -> str:
    """The example with every commented-out setting and table switched on (prose comments stay comments)."""
    return "\n".join(line[2:] if KEY_LINE.match(line) or TABLE_LINE.match(line) else line for line in text.splitlines())


def top_level_keys(text: str) -> list[str]:
    """The key of each setting line outside a table, in order."""
    keys, in_table = [], False
    for line in text.splitlines():
        in_table = in_table or bool(TABLE_LINE.match(line))
        found = KEY_LINE.match(line)
        if found and not in_table:
            keys.append(found.group(1))
    return keys


def test_every_key_is_a_setting_and_every_setting_is_there() -> None:
    parsed = tomllib.loads(uncommented(EXAMPLE.read_text()))
    assert set(parsed) == set(Settings.model_fields)
    keys = top_level_keys(EXAMPLE.read_text())
    assert len(keys) == len(set(keys))  # each once


def test_a_commented_out_value_is_the_default_or_an_example_where_there_is_none() -> None:
    parsed = tomllib.loads(uncommented(EXAMPLE.read_text()))
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if default not in (None, {}):
            shown = parsed[name]
            assert str(shown) == str(default), f"{name}: the example shows {shown!r}, the default is {default!r}"


def test_the_uncommented_example_loads(tmp_path: Path) -> None:
    config = tmp_path / "migrator.toml"
    config.write_text(uncommented(EXAMPLE.read_text()))
    settings = load_settings(config)
    assert settings.role_map == {"org:admin": "admin", "org:billing_manager": "billing"}
    assert settings.properties["public_metadata.plan"].key == "plan"
    assert settings.social_connections["oauth_google"].startswith("conn_")
    assert settings.salted_hash_salt_position == "prefix"


def test_a_comment_naming_a_setting_sits_on_that_setting() -> None:
    """A prose comment that names settings is followed, before the next blank line, by their lines."""
    names = set(Settings.model_fields)
    lines = EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if not line.startswith("#") or KEY_LINE.match(line) or TABLE_LINE.match(line):
            continue
        named = {word for word in re.findall(r"[a-z_]+", line) if word in names and "_" in word}
        if not named:
            continue
        below = []
        for following in lines[number + 1 :]:
            if not following.startswith("#"):
                break
            if found := KEY_LINE.match(following) or TABLE_LINE.match(following):
                below.append(found.group(1))
        assert named <= set(below), f"line {number + 1} names {sorted(named)}, but sits on {below}"


def test_a_misspelt_key_is_refused_with_the_setting_it_meant(tmp_path: Path) -> None:
    config = tmp_path / "migrator.toml"
    config.write_text('unimportable_password = "skip"\n')
    with pytest.raises(ConfigError, match=r"unimportable_password \(did you mean unimportable_passwords\?\)"):
        load_settings(config)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "migrator.toml").write_text("concurency = 4\n")  # the default config file too
    result = run_cli("run", "--without-export", "--dry-run", cwd=tmp_path, env=cli_env(CLERK_SECRET_KEY="sk_x"))
    assert result.returncode == 2 and "concurency (did you mean concurrency?)" in result.stderr
    assert "Traceback" not in result.stderr
