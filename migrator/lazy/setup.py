"""``migrator lazy setup``: the Kinde environment variables the workflow reads (``ENVIRONMENT_VARIABLES``),
written through the Management API where the token may, else said exactly, for the operator to set by hand.

Idempotent: a variable Kinde already holds under the key is updated (or left, when Kinde shows the same
value), never created twice. A secret's value is never shown by Kinde, so a secret is always written again.
Scopes are checked before the first write (read first: what exists decides whether creating or updating is
needed), so a token without them changes nothing. No value of a secret is ever printed or logged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from migrator.config import Settings
from migrator.errors import AlreadyExists, ConfigError
from migrator.kinde.client import KindeClient
from migrator.kinde.scopes import WHERE_TO_GRANT, Need, check_needs, check_scopes
from migrator.lazy.workflow_files import ENVIRONMENT_VARIABLES

READ = "read:environment_variables"
CREATE = "create:environment_variables"
UPDATE = "update:environment_variables"
SCOPES = (READ, CREATE, UPDATE)
WHERE_TO_SET = "Kinde > Settings > Environment variables"
CLERK_KEY = "CLERK_SECRET_KEY"
WORKFLOW_CLIENT_ID = "KINDE_WF_M2M_CLIENT_ID"
WORKFLOW_CLIENT_SECRET = "KINDE_WF_M2M_CLIENT_SECRET"

Action = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class Variable:
    """One variable to set: ``shown`` is what the operator is told to enter (a secret: what it is, never it)."""

    key: str
    secret: bool
    value: SecretStr | None  # None: unknown here (only --print, without the settings that hold it)
    shown: str


@dataclass(frozen=True)
class Outcome:
    key: str
    action: Action
    secret: bool


def workflow_client(settings: Settings) -> tuple[str | None, SecretStr | None]:
    """The M2M application the workflow uses: ``lazy_workflow_client_id`` (a dedicated one with only
    create:users, update:user_passwords, read:users), else the migrator's own."""
    if settings.lazy_workflow_client_id:
        return settings.lazy_workflow_client_id, settings.lazy_workflow_client_secret
    return settings.kinde_management_client_id, settings.kinde_management_client_secret


def wanted(settings: Settings) -> list[Variable]:
    """The variables, in ``ENVIRONMENT_VARIABLES``' order, with their values from the settings."""
    client_id, client_secret = workflow_client(settings)
    if settings.lazy_workflow_client_id and not client_secret:
        raise ConfigError("lazy_workflow_client_id is set without LAZY_WORKFLOW_CLIENT_SECRET: set both, or neither")
    application = f"the M2M application {client_id}" if client_id else "an M2M application"
    known = {
        CLERK_KEY: (settings.clerk_secret_key, "the Clerk secret key you use for this migration"),
        WORKFLOW_CLIENT_ID: (SecretStr(client_id) if client_id else None, client_id or ""),
        WORKFLOW_CLIENT_SECRET: (client_secret, f"the client secret of {application}"),
    }
    found = []
    for key, secret, what in ENVIRONMENT_VARIABLES:
        value, shown = known.get(key, (None, what))
        found.append(Variable(key, secret, value if value and value.get_secret_value() else None, shown or what))
    return found


def manual_lines(variables: Iterable[Variable]) -> list[str]:
    """What to set by hand: each name, whether it is sensitive, its value (a secret: what it is)."""
    lines = [f"Set these Kinde environment variables ({WHERE_TO_SET}):"]
    for variable in variables:
        mark = " (sensitive)" if variable.secret else ""
        lines.append(f"  {variable.key}{mark} = {variable.shown}")
    lines.append(
        f"or grant the M2M application {', '.join(SCOPES)} ({WHERE_TO_GRANT}) and run `migrator lazy setup` again."
    )
    return lines


def _plan(variables: list[Variable], existing: list[dict]) -> list[tuple[Variable, list[str], Action]]:
    """Each variable with the ids Kinde holds it under and what to do."""
    planned = []
    for variable in variables:
        held = [item for item in existing if item["key"] == variable.key]
        ids = [item["id"] for item in held if isinstance(item.get("id"), str)]
        if not held:
            planned.append((variable, [], "created"))
            continue
        assert variable.value is not None
        same = all(
            item.get("is_secret") is variable.secret
            and not variable.secret
            and item.get("value") == variable.value.get_secret_value()
            for item in held
        )
        planned.append((variable, ids, "unchanged" if same else "updated"))
    return planned


async def set_variables(kinde: KindeClient, variables: list[Variable]) -> list[Outcome]:
    """Create or update each variable in Kinde; scopes checked before the first write."""
    missing = [v.key for v in variables if v.value is None]
    if missing:
        raise ConfigError(
            f"no value for {', '.join(missing)}: set the migrator's credentials (see `migrator lazy setup --print`)"
        )
    await kinde.tokens.token()
    check_scopes(kinde.tokens.scopes, {READ}, "`lazy setup` reads the variables Kinde holds, so none is created twice")
    planned = _plan(variables, await kinde.environment_variables())
    creates = [v.key for v, _, action in planned if action == "created"]
    updates = [v.key for v, _, action in planned if action == "updated"]
    needs = []
    if creates:
        needs.append(Need(frozenset({CREATE}), f"Kinde does not hold {', '.join(creates)} yet"))
    if updates:
        needs.append(Need(frozenset({UPDATE}), f"Kinde holds {', '.join(updates)} already (updated, never duplicated)"))
    check_needs(kinde.tokens.scopes, needs)
    outcomes = []
    for variable, ids, action in planned:
        assert variable.value is not None
        value = variable.value.get_secret_value()
        if action == "created":
            try:
                await kinde.create_environment_variable(variable.key, value, secret=variable.secret)
            except AlreadyExists:
                # Created meanwhile (another setup, the dashboard): update what Kinde holds now instead.
                ids = [item["id"] for item in await kinde.environment_variables() if item["key"] == variable.key]
                if not ids:
                    raise
                action = "updated"
        if action == "updated":
            for variable_id in ids:
                await kinde.update_environment_variable(variable_id, value, secret=variable.secret)
        outcomes.append(Outcome(variable.key, action, variable.secret))
    return outcomes
