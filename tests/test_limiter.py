"""The adaptive limiter, driven by a fake clock: pacing, slow start, back-off, recovery."""

from __future__ import annotations

import asyncio

from migrator.limiter import AdaptiveLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def make(time: FakeTime, **kwargs) -> AdaptiveLimiter:
    defaults = {"initial_rate": 10.0, "max_rate": 100.0, "clock": time.clock, "sleep": time.sleep}
    return AdaptiveLimiter(**{**defaults, **kwargs})


def acquire_many(limiter: AdaptiveLimiter, n: int) -> None:
    async def go() -> None:
        for _ in range(n):
            await limiter.acquire()

    asyncio.run(go())


def test_paces_at_its_rate_without_feedback() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=10.0)
    acquire_many(limiter, 101)
    # The first request goes at once, then one every 0.1 s.
    assert 9.9 <= time.now <= 10.1


def test_slow_start_doubles_roughly_each_second_up_to_the_ceiling() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=10.0, max_rate=50.0)
    for _ in range(15):
        limiter.on_success()
    assert limiter.rate == 25.0
    for _ in range(100):
        limiter.on_success()
    assert limiter.rate == 50.0


def test_throttle_cuts_rate_once_per_episode_and_pauses_for_the_server_reset() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=40.0, jitter=0.0)
    limiter.on_throttle(2.0)
    limiter.on_throttle(2.0)  # a second 429 of the same episode changes nothing more
    assert limiter.rate == 36.0
    assert limiter.slow_start is False
    assert limiter.ceiling == 40.0
    assert limiter.backing_off
    acquire_many(limiter, 1)
    assert time.now >= 2.0
    assert not limiter.backing_off
    assert limiter.stats.throttled == 2


def test_throttle_without_a_hint_waits_a_second() -> None:
    time = FakeTime()
    limiter = make(time, jitter=0.0)
    limiter.on_throttle(None)
    acquire_many(limiter, 1)
    assert time.now == 1.0


def test_jitter_stays_within_bounds() -> None:
    time = FakeTime()
    limiter = make(time, jitter=0.1)
    limiter.on_throttle(10.0)
    acquire_many(limiter, 1)
    assert 10.0 <= time.now <= 11.0


def test_after_a_throttle_the_rate_probes_upward_slowly_and_never_passes_max() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=20.0, max_rate=21.0, probe=0.01, jitter=0.0)
    limiter.on_throttle(0.0)
    assert limiter.rate == 18.0
    for _ in range(100):
        limiter.on_success()
    assert abs(limiter.rate - 19.0) < 1e-9
    for _ in range(10_000):
        limiter.on_success()
    assert limiter.rate == 21.0


def test_rate_never_falls_below_the_minimum() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=1.0, min_rate=0.5, jitter=0.0)
    for _ in range(20):
        limiter.on_throttle(0.0)
        acquire_many(limiter, 1)
    assert limiter.rate == 0.5


def test_credit_accrues_during_a_pause_for_a_burst_afterwards() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=10.0, jitter=0.0)
    acquire_many(limiter, 10)  # drain the bucket
    limiter.on_throttle(1.0)  # rate -> 9
    acquire_many(limiter, 1)
    start = time.now
    acquire_many(limiter, 8)
    assert time.now - start < 0.01  # the server refilled during the pause; so did we
