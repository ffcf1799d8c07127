"""What every stage is handed: the run, its journal, both API clients, the mapping options and ``emit``.

Stages are plain async functions over a :class:`RunContext`; each reads its input from the journal
and writes its result there, so any of them can be the first to run after a crash.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from migrator import passwords
from migrator.clerk.client import ClerkClient
from migrator.clerk.export import ExportFile
from migrator.clerk.export_json import JsonExportFile
from migrator.config import Settings
from migrator.errors import ApiError, MigratorError
from migrator.events import Emit, Pacing
from migrator.journal import Journal, Run
from migrator.kinde.client import KindeClient
from migrator.mapping import MappingOptions, property_specs
from migrator.models import ExportRow, PasswordImport
from migrator.stages.creates import Outcome, Reconciled, Reconciliation


@dataclass
class RunContext:
    settings: Settings
    journal: Journal
    clerk: ClerkClient
    kinde: KindeClient
    emit: Emit
    run: Run
    options: MappingOptions
    export: ExportFile | JsonExportFile | None = None  # Clerk's export, CSV or JSON
    notes: list[str] = field(default_factory=list)  # end-of-run findings that make the exit non-zero
    # a canary: identity keys of Clerk users outside it that share one with its users (stages.shared_holders)
    outside_keys: list[tuple[str, str, int, bool]] = field(default_factory=list)
    # identity key -> the migrated user holding it in Kinde (conflicts.settle_shared: never taken off them)
    held_keys: dict[str, str] = field(default_factory=dict)
    # a catch-up: its pending users' places among outside_keys (its rows are staged in its own order)
    conflict_rank: dict[str, int] = field(default_factory=dict)
    # where each reconciliation goes (counted, logged, shown by the session's rule: runs/session.py)
    on_reconciled: Callable[[Reconciliation], None] = lambda _: None

    def reconciled(self, kind: str, key: str) -> Reconciled:
        """For ``create_settled``: the lookups settling the create of ``kind`` ``key``, reported to the session."""

        def report(answer: ApiError, outcome: Outcome) -> None:
            self.on_reconciled(Reconciliation(answer.service or self.kinde.service, kind, key, outcome, answer))

        return report

    def export_row(self, clerk_id: str) -> ExportRow | None:
        """The user's row of the export (CSV or JSON), read again at its indexed offset (digests are never stored)."""
        if self.export is None:
            return None
        entry = self.journal.exports.entry(self.run.id, clerk_id)
        if entry is None:
            return None
        return self.export.row_at(entry.offset, entry.row_number, expected_id=clerk_id)

    def password_import(self, clerk_id: str) -> PasswordImport | None:
        """The user's password as Kinde imports it: the digest read again from the export at its offset and
        translated (``passwords.translate``); None when the export holds no importable one (any more)."""
        row = self.export_row(clerk_id)
        if row is None:
            return None
        translated = passwords.translate(
            row.password_hasher, row.password_digest, salt_position=self.options.salt_position
        )
        return translated if isinstance(translated, PasswordImport) else None

    def emit_pacing(self) -> None:
        for client in (self.clerk, self.kinde):
            self.emit(
                Pacing(
                    service=client.service,
                    rate=client.limiter.rate,
                    requests=client.stats.requests,
                    throttled=client.stats.throttled,
                    backing_off=client.limiter.backing_off,
                    resume_in=client.limiter.resume_in,
                    retried=client.stats.retries,
                    reconciled=client.stats.reconciled,
                )
            )


def mapping_options(settings: Settings) -> MappingOptions:
    """The mapping a run with these settings uses (its fingerprint covers each of these settings)."""
    return MappingOptions(
        unimportable_passwords=settings.unimportable_passwords,
        lazy_fallback=settings.lazy_fallback,
        lazy_users_in_kinde=settings.lazy_users_in_kinde,
        banned_users=settings.banned_users,
        role_map=settings.role_map,
        default_phone_region=settings.default_phone_region,
        salt_position=settings.salted_hash_salt_position,
        export_time=settings.export_time,
        properties=property_specs(settings.properties),
        organization_properties=property_specs(settings.organization_properties),
        social_connections=settings.social_connections,
    )


class Ticker:
    """Rate-limits progress events to ~10 a second."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._last = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False


@asynccontextmanager
async def task_group() -> AsyncIterator[asyncio.TaskGroup]:
    """``asyncio.TaskGroup`` that re-raises the failure itself rather than an ExceptionGroup.

    One failure cancels every partner (no task waits on a queue its failed producer will never
    fill); the CLI then maps the error to its message and exit code. A ``MigratorError`` wins over
    other errors raised by partners in the same moment.
    """
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as failures:
        leaves = _leaves(failures)
        raise next((e for e in leaves if isinstance(e, MigratorError)), leaves[0]) from None


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found
