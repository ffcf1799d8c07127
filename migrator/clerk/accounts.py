"""Clerk external accounts, in every shape Clerk has served, as one model. Pure.

Clerk's user JSON has carried a user's social sign-ins in several shapes over the years
(../shared/reference/clerk-backend-api.md, ExternalAccount; Clerk's SDK fixtures and docs):

* current: ``{"object": "external_account", "provider": "oauth_google", "provider_user_id": ..., "email_address": ...}``;
* legacy: ``{"object": "google_account", "google_id": ..., "given_name": ..., "email_address": ...}``, no
  ``provider``: the provider is in the object's name, the provider's user id in ``<name>_id``;
* bare provider names: ``"provider": "google"`` without ``oauth_`` (Clerk's backend fixtures), sometimes
  on a legacy object.

``read_external_account`` turns any of them into an ``ExternalAccount`` whose provider is canonical
(``oauth_google``), so the mapping and the ``[social_connections]`` table compare one spelling.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

AccountShape = Literal["current", "legacy", "bare", "unknown"]

OAUTH_PREFIX = "oauth_"
# A legacy object's name: ``google_account``, ``facebook_account``... (not the other account kinds Clerk has).
_LEGACY_OBJECT = re.compile(r"^([a-z][a-z0-9]*(?:_[a-z0-9]+)*)_account$")
_NOT_EXTERNAL = frozenset({"external", "saml", "enterprise", "web3"})
_PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


@dataclass(frozen=True, slots=True)
class ExternalAccount:
    """One external account: who provides it, and the values Kinde can match a social sign-in on."""

    provider: str | None  # canonical (``oauth_google``); None when the shape names no provider
    email: str | None
    provider_user_id: str | None
    shape: AccountShape
    object_name: str | None = None  # Clerk's ``object``, to name an account of unknown shape

    @property
    def value(self) -> str | None:
        """What the Kinde identity carries: the email (Kinde matches a social sign-in on it), else the id."""
        return self.email or self.provider_user_id


def canonical_provider(name: Any) -> str | None:
    """``google``, ``oauth_google``, `` OAuth_Google `` -> ``oauth_google``; None when not a provider name."""
    if not isinstance(name, str):
        return None
    cleaned = name.strip().lower()
    if cleaned.startswith(OAUTH_PREFIX):
        cleaned = cleaned[len(OAUTH_PREFIX) :]
    if not cleaned or not _PROVIDER_NAME.match(cleaned):
        return None
    return OAUTH_PREFIX + cleaned


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    return None


def _identifier(value: Any) -> str | None:
    """A provider's user id: text, or a whole number (GitHub's ids are numbers), never a boolean."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return _text(value)


def read_external_account(raw: Any) -> ExternalAccount:
    """Normalise one entry of ``external_accounts``, whatever shape Clerk served it in."""
    if not isinstance(raw, Mapping):
        return ExternalAccount(None, None, None, "unknown", type(raw).__name__)
    object_name = _text(raw.get("object"))
    legacy = _LEGACY_OBJECT.match(object_name.lower()) if object_name else None
    legacy_name = legacy.group(1) if legacy and legacy.group(1) not in _NOT_EXTERNAL else None
    stated = raw.get("provider")
    provider = canonical_provider(stated)
    if provider is not None:
        bare = not stated.strip().lower().startswith(OAUTH_PREFIX)
        shape: AccountShape = "legacy" if legacy_name else ("bare" if bare else "current")
    elif _text(stated) is None and legacy_name is not None:
        provider, shape = OAUTH_PREFIX + legacy_name, "legacy"
    else:
        return ExternalAccount(None, _text(raw.get("email_address")), None, "unknown", object_name)
    name = provider[len(OAUTH_PREFIX) :]
    user_id = _identifier(raw.get("provider_user_id")) or _identifier(raw.get(f"{name}_id"))
    if user_id is None and legacy_name is not None and legacy_name != name:
        user_id = _identifier(raw.get(f"{legacy_name}_id"))
    return ExternalAccount(provider, _text(raw.get("email_address")), user_id, shape, object_name)
