"""The ``[properties]``, ``[organization_properties]`` and ``[social_connections]`` settings: read from
TOML, refused with a message naming the setting when they cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.config import load_settings
from migrator.errors import ConfigError


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "migrator.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_toml_tables_become_settings_and_change_the_fingerprint(tmp_path: Path) -> None:
    plain = load_settings(config(tmp_path, ""))
    mapped = load_settings(
        config(
            tmp_path,
            '[social_connections]\noauth_google = "conn_1"\n'
            '[properties]\n"public_metadata.plan" = { key = "plan", type = "multi_line_text" }\n',
        )
    )
    assert mapped.properties["public_metadata.plan"].type == "multi_line_text"
    assert mapped.social_connections == {"oauth_google": "conn_1"}
    assert mapped.fingerprint() != plain.fingerprint()
    assert "properties" not in plain.mapping_summary()  # runs begun before the setting keep their fingerprint


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[properties]\n"a" = { key = "kp_plan" }\n', "Kinde's own"),
        ('[properties]\n"a" = { key = "has space" }\n', "PROPERTIES"),
        ('[properties]\n"a" = { key = "x", type = "boolean" }\n', "PROPERTIES"),
        ('[properties]\n"a" = { key = "x" }\n"b" = { key = "x" }\n', "both map to the Kinde property 'x'"),
        ('[properties]\n"public_metadata." = { key = "x" }\n', "is not a Clerk path"),
        ('[social_connections]\ngoogle = "conn_1"\noauth_google = "conn_2"\n', "already mapped to 'conn_1'"),
        ('[social_connections]\n"oauth_" = "conn_1"\n', "oauth_google"),
        ('[social_connections]\ngoogle = " "\n', "Kinde connection id"),
    ],
)
def test_a_mapping_that_cannot_work_is_a_config_error(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match="invalid configuration") as caught:
        load_settings(config(tmp_path, text))
    assert problem in str(caught.value)


@pytest.mark.parametrize("name", ["google", "oauth_google", "OAuth_Google"])
def test_a_provider_is_mapped_by_any_of_its_names(tmp_path: Path, name: str) -> None:
    """Older Clerk data names providers without ``oauth_``: both spellings map the one provider."""
    settings = load_settings(config(tmp_path, f'[social_connections]\n{name} = "conn_1"\ngithub = "conn_2"\n'))
    assert settings.social_connections == {"oauth_google": "conn_1", "oauth_github": "conn_2"}
