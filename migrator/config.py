"""Settings: environment, `.env`, `config/migrator.toml`, command-line flags (in rising priority).

The names are the ones the vendors' own SDKs read (``CLERK_SECRET_KEY``, ``KINDE_DOMAIN``, ...), so
an operator's existing environment just works. Secrets are ``SecretStr`` and never printed; a
validation failure becomes a ``ConfigError`` that names the setting but never echoes its value.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

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

    # Behaviour
    state_dir: Path = Path(".migrator")
    concurrency: int = Field(default=16, ge=1, le=256)
    timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, le=50)
    # The longest single wait a server's Retry-After / RateLimit-Reset can impose (seconds).
    max_wait: float = Field(default=120.0, gt=0, le=3600)
    unimportable_passwords: Literal["reset", "no-password", "skip"] = "reset"
    banned_users: Literal["suspend", "skip"] = "suspend"
    duplicate_identities: Literal["first", "skip-all"] = "first"
    migrate_organizations: bool = True
    role_map: dict[str, str] = Field(default_factory=dict)
    default_phone_region: str | None = None
    # Where Clerk's md5_salted / sha256_salted put the salt: Clerk does not document it, so those
    # digests are imported only once the operator has checked one known password and set this.
    salted_hash_salt_position: Literal["prefix", "suffix"] | None = None

    @field_validator("clerk_export", mode="before")
    @classmethod
    def _clerk_export(cls, value: Any) -> Any:
        # Path("") is "." (the current directory): say what is wrong instead of "./ does not exist".
        if isinstance(value, str) and not value.strip():
            raise ValueError("set but empty: give the path of Clerk's dashboard CSV export, or leave it unset")
        return value

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
        return {
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
    return Settings.model_construct(**{k: getattr(settings, k) for k in Settings.model_fields})
