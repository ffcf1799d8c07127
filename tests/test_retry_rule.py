"""The one rule for retries and reconciliations (runs/session.py), and what create_settled tells it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from migrator.errors import AlreadyExists, ApiError, RateLimited, TransientError
from migrator.events import Notice, Waiting
from migrator.http import ApiClient
from migrator.limiter import AdaptiveLimiter
from migrator.request_log import RequestLog
from migrator.runs.session import report_reconciliations, report_retries
from migrator.stages.creates import Reconciliation, create_settled


def rate_limited(retry_after: float | None) -> RateLimited:
    return RateLimited("Kinde GET /api/v1/users was rate limited (429)", service="Kinde", status=429, retry_after=retry_after)


def test_a_short_wait_is_a_detail_a_long_one_is_announced_once_per_pause() -> None:
    events: list[object] = []
    now = [100.0]
    on_retry = report_retries(events.append, long_wait=10.0, clock=lambda: now[0])
    on_retry("Kinde", rate_limited(2.0), 1, 2.0)
    assert [type(e) for e in events] == [Notice] and events[0].level == "detail"
    events.clear()
    for _ in range(5):  # every request one pause holds meets it: announced once
        on_retry("Kinde", rate_limited(30.0), 1, 30.0)
    waits = [e for e in events if isinstance(e, Waiting)]
    assert waits == [Waiting("Kinde", 30.0, "Retry-After")]
    assert all(e.level == "detail" for e in events if isinstance(e, Notice))
    now[0] += 31.0  # the next pause is news again
    on_retry("Kinde", TransientError("Kinde GET x failed (503)", service="Kinde", status=503), 4, 12.0)
    assert [e for e in events if isinstance(e, Waiting)][-1] == Waiting("Kinde", 12.0, "backing off")


class Kinde(ApiClient):
    service = "Kinde"


def test_each_reconciliation_is_counted_logged_without_whose_and_a_detail(tmp_path: Path) -> None:
    events: list[object] = []
    log = RequestLog()
    log.attach(tmp_path / "requests.jsonl")
    client = Kinde(httpx.AsyncClient(), AdaptiveLimiter(initial_rate=1.0, max_rate=1.0))
    on_reconciled = report_reconciliations(events.append, [client], log)
    answer = TransientError("Kinde POST /api/v1/user failed on the server (503)", service="Kinde", status=503)
    on_reconciled(Reconciliation("Kinde", "user", "user_2secretid", "resent", answer))
    log.close()
    assert client.stats.reconciled == 1
    (line,) = (tmp_path / "requests.jsonl").read_text().splitlines()
    assert line.startswith('{"event":"reconcile","at":')
    assert '"kind":"user","outcome":"resent","answer":503' in line and "user_2secretid" not in line
    (notice,) = events
    assert notice.level == "detail" and notice.message.startswith("user_2secretid: create had no clear answer (")


def settle(answers: list[BaseException | str], found: list[str | None], attempts: int = 3) -> tuple[list, object]:
    told: list[str] = []

    async def create() -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def find(_: ApiError) -> str | None:
        return found.pop(0)

    async def go() -> object:
        try:
            return await create_settled(create, find, attempts=attempts, reconciled=lambda _, o: told.append(o))
        except ApiError as exc:
            return exc

    return told, asyncio.run(go())


def ambiguous() -> TransientError:
    return TransientError("timed out", service="Kinde", retryable=True, ambiguous=True)


@pytest.mark.parametrize(
    ("answers", "found", "told", "result"),
    [
        (["made"], [], [], "made"),  # a clear answer: nothing to reconcile
        ([AlreadyExists("exists", service="Kinde", status=409)], ["ours"], [], "ours"),  # a first clean "exists"
        ([ambiguous()], ["ours"], ["found"], "ours"),
        ([ambiguous(), "made"], [None], ["resent"], "made"),
        ([ambiguous(), AlreadyExists("exists", service="Kinde", status=409)], [None, "ours"], ["resent", "found"], "ours"),
        ([ambiguous(), ambiguous(), ambiguous()], [None, None, None], ["resent", "resent", "failed"], TransientError),
    ],
)
def test_create_settled_tells_each_lookup_after_an_unclear_answer(answers, found, told, result) -> None:
    heard, outcome = settle(list(answers), list(found))
    assert heard == told
    assert outcome == result if isinstance(result, str) else isinstance(outcome, result)
