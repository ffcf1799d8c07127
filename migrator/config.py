"""Settings from command-line flags, the environment, `.env` and `config/migrator.toml`, in that order of
precedence (a flag beats the environment, which beats `.env`, which beats the TOML file).

The names are the ones the vendors' own SDKs read (``CLERK_SECRET_KEY``, ``KINDE_DOMAIN``, ...), so
an operator's existing environment just works. Secrets are ``SecretStr`` and never printed; a
validation failure becomes a ``ConfigError`` that names the setting but never echoes its value.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from migrator.clerk.accounts import canonical_provider
from migrator.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("config/migrator.toml")
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _checked_url(value: str) -> str:
    """Refuse plain http:// except on loopback (the sandbox), so secrets never cross a network in clear."""
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = "https://" + value
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("must be an https:// URL, got a value that is not one")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError("uses plain http:// to a host that is not loopback; use https://")
    return value


PROPERTY_KEY = r"^[A-Za-z][A-Za-z0-9_]{0,127}$"


class PropertyMapping(BaseModel):
    """One ``[properties]`` entry: the Kinde property a Clerk value lands in, and its Kinde type."""

    model_config = {"extra": "forbid"}

    key: str = Field(pattern=PROPERTY_KEY)
    type: Literal["single_line_text", "multi_line_text"] = "single_line_text"
    name: str | None = None
    is_private: bool = True

    @field_validator("key")
    @classmethod
    def _not_kinde_builtin(cls, value: str) -> str:
        if value.lower().startswith(("kp_", "kp-")):
            raise ValueError("keys starting with kp_ are Kinde's own properties")
        return value


class Settings(BaseSettings):
    """Everything a run needs. See ``config/migrator.example.toml`` for each setting explained."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # Clerk (source)
    clerk_secret_key: SecretStr | None = None
    clerk_api_url: str = "https://api.clerk.com/v1"
    clerk_export: Path | None = None
    clerk_max_rps: float = Field(default=90.0, gt=0)  # production allows 1000 per 10 s

    # Kinde (target)
    kinde_domain: str | None = None
    kinde_management_client_id: str | None = None
    kinde_management_client_secret: SecretStr | None = None
    kinde_audience: str | None = None  # default <KINDE_DOMAIN>/api
    kinde_max_rps: float = Field(default=50.0, gt=0)  # ceiling; the limiter finds the real rate below it
    kinde_initial_rps: float = Field(default=10.0, gt=0)
    # Lazy migration: the M2M application the Kinde workflow uses (`lazy setup` writes it to Kinde's
    # environment variables); unset: the migrator's own. Better a dedicated one with create:users,
    # update:user_passwords and read:users only.
    lazy_workflow_client_id: str | None = None
    lazy_workflow_client_secret: SecretStr | None = None

    # Behaviour
    state_dir: Path = Path(".migrator")
    concurrency: int = Field(default=16, ge=1, le=256)
    timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, le=50)
    # The longest single wait a server's Retry-After / RateLimit-Reset can impose (seconds).
    max_wait: float = Field(default=120.0, gt=0, le=3600)
    # A wait for an API longer than this (seconds) is announced above the progress, with its countdown;
    # shorter ones are only counted on the pacing line (each shown with -v).
    long_wait: float = Field(default=10.0, ge=0, le=3600)
    # "lazy": users with an email move at their first sign-in through the Kinde workflow (docs/lazy-migration.md)
    unimportable_passwords: Literal["reset", "no-password", "skip", "lazy"] = "reset"
    banned_users: Literal["suspend", "skip"] = "suspend"
    duplicate_identities: Literal["first", "skip-all"] = "first"
    migrate_organizations: bool = True
    role_map: dict[str, str] = Field(default_factory=dict)
    default_phone_region: str | None = None
    # Where Clerk's md5_salted / sha256_salted put the salt: Clerk does not document it, so those
    # digests are imported only once the operator has checked one known password and set this.
    salted_hash_salt_position: Literal["prefix", "suffix"] | None = None
    # Clerk path (``public_metadata.plan``, ``external_id``, ``private_metadata``) -> Kinde property.
    properties: dict[str, PropertyMapping] = Field(default_factory=dict)
    organization_properties: dict[str, PropertyMapping] = Field(default_factory=dict)
    # Missing property definitions are created, unless this is off (--no-create-properties).
    create_properties: bool = True
    # Lazy migration: what the cohort's users without an email get at run time, and the rest at `lazy finish`.
    lazy_fallback: Literal["reset", "no-password", "skip"] = "reset"
    # The other reading of Kinde's trigger: the run creates the cohort without a password (and no reset),
    # for a workflow that handles users Kinde holds (`lazy init --users-in-kinde`).
    lazy_users_in_kinde: bool = False
    # Clerk OAuth provider (``oauth_google``) -> Kinde connection id (``conn_...``).
    social_connections: dict[str, str] = Field(default_factory=dict)
    # When Clerk made the export (--export-time): a password Clerk says changed at or after it is not in
    # the export, so its digest is not imported. Unset: the export file's modification time.
    clerk_export_time: datetime | None = None
    # Unset clerk_export_time: the export file's modification time, read once when the settings are made
    # (the run uses and fingerprints one value even if the file is touched later). `run --only-file` is a
    # flag of `migrator run` (only_file.py), not a setting.
    _export_time_default: datetime | None = PrivateAttr(default=None)

    @field_validator("clerk_export", mode="before")
    @classmethod
    def _clerk_export(cls, value: Any) -> Any:
        # Path("") is "." (the current directory): say what is wrong instead of "./ does not exist".
        if isinstance(value, str) and not value.strip():
            raise ValueError("set but empty: give the path of Clerk's dashboard CSV export, or leave it unset")
        return value

    @field_validator("clerk_export_time", mode="before")
    @classmethod
    def _clerk_export_time(cls, value: Any) -> Any:
        expected = (
            "must be an ISO 8601 date and time with a timezone, e.g. 2025-06-01T12:00:00Z or"
            " 2025-06-01T14:00:00+02:00 (--export-time / CLERK_EXPORT_TIME)"
        )
        if value is None:
            return None
        if isinstance(value, str):
            if not value.strip():
                raise ValueError(f"set but empty: {expected}, or leave it unset to use the export file's time")
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(f"{expected}; got a value that is not one") from None
        if not isinstance(value, datetime):
            raise ValueError(expected)
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"has no timezone: {expected}")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _export_time_from_file(self) -> Settings:
        # Read once, here, so the run uses and fingerprints one value even if the file is touched later.
        if self.clerk_export_time is None and self.clerk_export is not None and self.clerk_export.is_file():
            self._export_time_default = datetime.fromtimestamp(self.clerk_export.stat().st_mtime, UTC)
        return self

    @field_validator("properties", "organization_properties")
    @classmethod
    def _property_paths(cls, value: dict[str, PropertyMapping]) -> dict[str, PropertyMapping]:
        keys: dict[str, str] = {}
        for path, mapping in value.items():
            if not path.strip() or any(not part for part in path.split(".")):
                raise ValueError(f"{path!r} is not a Clerk path such as public_metadata.plan")
            if mapping.key in keys:
                raise ValueError(f"{path!r} and {keys[mapping.key]!r} both map to the Kinde property {mapping.key!r}")
            keys[mapping.key] = path
        return value

    @field_validator("social_connections")
    @classmethod
    def _connections(cls, value: dict[str, str]) -> dict[str, str]:
        # A provider may be written as Clerk spells it now (oauth_google) or bare (google, as older Clerk
        # data has it): both name one provider, kept in the canonical spelling.
        canonical: dict[str, str] = {}
        for provider, connection in value.items():
            name = canonical_provider(provider)
            if name is None or not connection.strip():
                raise ValueError(
                    f"{provider!r}: give a Clerk provider (oauth_google or google, oauth_github, ...) "
                    "and a Kinde connection id"
                )
            if name in canonical and canonical[name] != connection:
                raise ValueError(f"{provider!r}: {name} is already mapped to {canonical[name]!r}")
            canonical[name] = connection
        return canonical

    @field_validator("clerk_api_url")
    @classmethod
    def _clerk_url(cls, value: str) -> str:
        return _checked_url(value)

    @field_validator("kinde_domain")
    @classmethod
    def _kinde_domain(cls, value: str | None) -> str | None:
        return _checked_url(value) if value else None

    @field_validator("kinde_audience")
    @classmethod
    def _kinde_audience(cls, value: str | None) -> str | None:
        return _checked_url(value) if value else None

    @property
    def export_time(self) -> datetime | None:
        """When the export's digests were read out of Clerk: the setting, else the file's time."""
        return self.clerk_export_time or self._export_time_default

    def keeping_export_time(self, recorded: Mapping[str, Any]) -> Settings:
        """For resume: unless the operator sets the export time again, keep the one the run began with.

        The file's time is not read again: a copy or a ``touch`` changes it, not the digests (the
        export's bytes are checked on their own).
        """
        if self.clerk_export_time is not None:
            return self
        kept = self.model_copy()
        value = recorded.get("clerk_export_time")
        try:
            kept._export_time_default = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:  # not ours: the comparison then reports the setting as changed
            kept._export_time_default = None
        return kept

    @property
    def audience(self) -> str:
        return self.kinde_audience or f"{self.kinde_domain}/api"

    def require_credentials(self) -> None:
        """Raise ConfigError naming every missing or empty setting a real run needs."""
        missing = []
        if not self.clerk_secret_key or not self.clerk_secret_key.get_secret_value().strip():
            missing.append("CLERK_SECRET_KEY")
        if not self.kinde_domain:
            missing.append("KINDE_DOMAIN")
        if not (self.kinde_management_client_id or "").strip():
            missing.append("KINDE_MANAGEMENT_CLIENT_ID")
        secret = self.kinde_management_client_secret
        if not secret or not secret.get_secret_value().strip():
            missing.append("KINDE_MANAGEMENT_CLIENT_SECRET")
        if missing:
            raise ConfigError(
                "missing or empty setting(s): "
                + ", ".join(missing)
                + " (set them in the environment, in .env, or in config/migrator.toml)"
            )

    def fingerprint(self) -> str:
        """A hash of the settings that change what a run writes. Never includes a secret."""
        return hashlib.sha256(json.dumps(self.mapping_summary(), sort_keys=True).encode()).hexdigest()[:16]

    def mapping_summary(self) -> dict[str, Any]:
        """The fingerprinted settings, for telling an operator what changed between runs."""
        # Only with a value, so runs begun before the setting existed keep their fingerprint.
        export_time = {"clerk_export_time": self.export_time.isoformat()} if self.export_time else {}
        lazy = (
            {"lazy_fallback": self.lazy_fallback, "lazy_users_in_kinde": self.lazy_users_in_kinde}
            if self.unimportable_passwords == "lazy"
            else {}
        )
        extras = {
            name: value
            for name, value in (
                ("properties", {p: m.model_dump() for p, m in self.properties.items()}),
                ("organization_properties", {p: m.model_dump() for p, m in self.organization_properties.items()}),
                ("social_connections", self.social_connections),
            )
            if value
        }
        return {
            **export_time,
            **extras,
            **lazy,
            "clerk_api_url": self.clerk_api_url,
            "kinde_domain": self.kinde_domain,
            "unimportable_passwords": self.unimportable_passwords,
            "banned_users": self.banned_users,
            "duplicate_identities": self.duplicate_identities,
            "migrate_organizations": self.migrate_organizations,
            "role_map": self.role_map,
            "default_phone_region": self.default_phone_region,
            "salted_hash_salt_position": self.salted_hash_salt_position,
        }


def _describe(error: Any) -> str:
    """One validation error as 'SETTING: problem', without the offending value (it may be a secret)."""
    name = ".".join(str(part) for part in error["loc"]) or "settings"
    message = error["msg"].removeprefix("Value error, ")
    return f"{name.upper()}: {message}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from every source; flags passed as ``overrides`` win. Raises ConfigError."""
    path = config_file if config_file is not None else DEFAULT_CONFIG_FILE
    if config_file is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")

    class _FromFiles(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources = [init_settings, env_settings, dotenv_settings]
            if path.is_file():
                refuse_unknown_keys(path)
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            return tuple(sources)

    clean = {key: value for key, value in overrides.items() if value is not None}
    try:
        settings = _FromFiles(**clean)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None
    except ValueError as exc:  # e.g. malformed TOML
        raise ConfigError(f"cannot read configuration {path}: {exc}") from None
    resolved = Settings.model_construct(**{k: getattr(settings, k) for k in Settings.model_fields})
    resolved._export_time_default = settings._export_time_default
    return resolved


def refuse_unknown_keys(path: Path) -> None:
    """A misspelt key in the TOML file would be ignored silently (the environment may hold anything, the file
    is ours): name it, with the setting it probably meant. Malformed TOML is left to the settings source."""
    try:
        keys = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return
    unknown = sorted(set(keys) - set(Settings.model_fields))
    if unknown:
        hints = [f"{key} (did you mean {close[0]}?)" if (close := _closest(key)) else key for key in unknown]
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(hints)}")


def _closest(key: str) -> list[str]:
    return difflib.get_close_matches(key, list(Settings.model_fields), n=1, cutoff=0.6)
