"""Every command reports its retries by the same rule: a run's, an undo's and a verify's retry is a ``detail``
notice (shown with -v) naming the API, the attempt and the error, and every attempt is a line of the request log.

An undo once retried silently; here Kinde answers 503 to the first request of a kind each command
sends (sandbox apps in-process), and the command still finishes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from migrator.events import Notice
from migrator.journal import Journal
from migrator.runs.api import Start, Undo, run_migration, run_undo, run_verification
from migrator.sandbox.clerk_app import build_clerk_app
from migrator.sandbox.generator import Dataset
from migrator.sandbox.kinde_app import KindeSandboxConfig, build_kinde_app
from tests.contract import in_process_settings

CLERK_KEY = "sk_test_retry_reporting"
KINDE_SECRET = "retry-reporting-secret"


class FailOnce(httpx.AsyncBaseTransport):
    """503 to the first request whose method and path start match; every other request goes through."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.fail: tuple[str, str] | None = None
        self.failed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.fail and request.method == self.fail[0] and request.url.path.startswith(self.fail[1]):
            self.fail, self.failed = None, self.failed + 1
            return httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE", "message": "try again"}]})
        return await self.inner.handle_async_request(request)


def retry_notices(events: list[object]) -> list[str]:
    """The retries' notices: each a ``detail`` (the CLI shows it with -v; the pacing line counts it)."""
    notices = [e for e in events if isinstance(e, Notice) and "retry" in e.message]
    assert all(e.level == "detail" for e in notices)
    return [e.message for e in notices]


def test_a_run_an_undo_and_a_verify_each_report_their_retry(tmp_path: Path) -> None:
    dataset = Dataset(20)
    export = tmp_path / "clerk-export.csv"
    dataset.write_export_csv(export)
    clerk = httpx.ASGITransport(app=build_clerk_app(dataset, secret_key=CLERK_KEY))
    config = KindeSandboxConfig(client_secret=KINDE_SECRET)
    kinde = FailOnce(httpx.ASGITransport(app=build_kinde_app(config)))
    settings = in_process_settings(tmp_path / "state", export, CLERK_KEY, config.client_id, KINDE_SECRET)
    journal = Journal(settings.state_dir)
    transports = {"clerk_transport": clerk, "kinde_transport": kinde}
    try:
        run_events: list[object] = []
        kinde.fail = ("GET", "/api/v1/users")
        summary = asyncio.run(
            run_migration(settings, journal, Start(), on_event=run_events.append, confirm=lambda p: True, **transports)
        )
        assert summary.exit_code == 0, summary.failures

        verify_events: list[object] = []
        kinde.fail = ("GET", "/api/v1/users")
        verified = asyncio.run(
            run_verification(settings, journal, summary.run_id, on_event=verify_events.append, **transports)
        )
        assert verified.passed

        undo_events: list[object] = []
        kinde.fail = ("DELETE", "/api/v1/user")
        undone = asyncio.run(
            run_undo(
                settings, journal, Undo(summary.run_id), on_event=undo_events.append, confirm=lambda c: True, **transports
            )
        )
        assert undone.exit_code == 0
    finally:
        journal.close()

    assert kinde.failed == 3
    for events in (run_events, verify_events, undo_events):
        (notice,) = retry_notices(events)
        assert notice.startswith("Kinde: retry 1 after: ") and "503" in notice
    undo_log = settings.state_dir / "runs" / str(undone.run_id) / "requests.jsonl"
    assert '"attempt":2' in undo_log.read_text()  # the undo's requests, its retry too, are logged in its own folder
