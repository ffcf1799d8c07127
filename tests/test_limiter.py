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
    # Once the rate was measured between two 429s, the pause earns a burst (the server refilled too).
    time = FakeTime()
    limiter = make(time, initial_rate=10.0, jitter=0.0, probe=0.0)
    limiter.slow_start = False
    limiter.on_throttle(0.0)  # the first 429: rate 9, the measuring window starts
    for _ in range(20):  # two seconds at 9/s, all answered
        acquire_many(limiter, 1)
        limiter.on_success()
    limiter.on_throttle(1.0)  # a measured episode: rate min(8.1, ~9.5) = 8.1
    assert abs(limiter.rate - 8.1) < 1e-9
    acquire_many(limiter, 1)
    start = time.now
    acquire_many(limiter, 7)
    assert time.now - start < 0.01  # the server refilled during the pause; so did we


def test_no_burst_after_the_pause_that_ends_slow_start() -> None:
    # Slow start's window began with the server's bucket full: its rate is an overestimate, so the
    # first requests after the pause are paced, not sent as a burst that would meet more 429s.
    time = FakeTime()
    limiter = make(time, initial_rate=10.0, jitter=0.0, probe=0.0)
    acquire_many(limiter, 10)
    limiter.on_throttle(1.0)  # rate 9, no credit for the pause
    acquire_many(limiter, 1)
    start = time.now
    acquire_many(limiter, 9)
    assert abs(time.now - start - 9 / 9.0) < 0.01  # one every 1/9 s


def test_a_throttle_after_overshooting_cuts_to_the_delivered_rate() -> None:
    # Slow start overshot: the limiter runs at 80/s but the server let only 20/s through for 2 s.
    time = FakeTime()
    limiter = make(time, initial_rate=80.0, jitter=0.0, probe=0.0)
    limiter.slow_start = False
    for _ in range(40):
        time.now += 0.05
        acquire_many(limiter, 4)  # sends at its 80/s: its bucket never fills
        limiter.on_success()  # but only one in four succeeds
    limiter.on_throttle(1.0)
    assert abs(limiter.rate - 40 / time.now) < 1e-9  # ~20/s  # not 72 (= 80 * 0.9): one episode instead of a dozen


def test_a_short_window_is_not_trusted_and_the_cut_stays_multiplicative() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=50.0, jitter=0.0, probe=0.0)
    limiter.slow_start = False
    time.now += 0.2
    for _ in range(3):
        limiter.on_success()
    limiter.on_throttle(1.0)
    assert limiter.rate == 45.0


def test_an_idle_spell_restarts_the_measuring_window() -> None:
    # A quiet minute (nobody sending) must not be read as a server that allows one request a minute.
    time = FakeTime()
    limiter = make(time, initial_rate=40.0, jitter=0.0, probe=0.0)
    limiter.slow_start = False
    acquire_many(limiter, 1)
    limiter.on_success()
    time.now += 60.0
    acquire_many(limiter, 1)  # the bucket sat full: the window starts again here
    for _ in range(60):
        time.now += 0.025
        limiter.on_success()
    limiter.on_throttle(1.0)
    assert abs(limiter.rate - 36.0) < 1e-9  # 40 * 0.9: the 40/s delivered since is no lower


def test_the_pause_itself_does_not_restart_the_measuring_window() -> None:
    # Waiting out the server's reset is not idleness: the episode after a pause is measured across it.
    time = FakeTime()
    limiter = make(time, initial_rate=30.0, jitter=0.0, probe=0.0)
    limiter.slow_start = False
    limiter.on_throttle(1.0)  # rate 27, pause 1 s
    acquire_many(limiter, 20)  # the burst after the pause, then paced
    for _ in range(20):
        limiter.on_success()
    window = time.now
    limiter.on_throttle(1.0)
    assert abs(limiter.rate - 20 / window) < 1e-9
    assert limiter.rate < 27 * 0.9
