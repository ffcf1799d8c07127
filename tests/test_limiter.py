"""The adaptive limiter, driven by a fake clock: pacing, slow start, stray 429s, congestion, recovery.

The scenario tests run the limiter against a simulated server (a token bucket with a one-second
burst, like the sandbox's) in simulated time, with unlimited demand: what is measured is requests
in simulated seconds, never wall time.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

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


# These tests are about episodes, pauses and windows, at rates where the slow-down below the probe
# reference rate (its own tests below) would change the numbers: they run without it.
AT_FULL_PACE = {"probe_reference_rate": 0.0}


def make(time: FakeTime, **kwargs) -> AdaptiveLimiter:
    defaults = {"initial_rate": 10.0, "max_rate": 100.0, "clock": time.clock, "sleep": time.sleep}
    return AdaptiveLimiter(**{**defaults, **kwargs})


def acquire_many(limiter: AdaptiveLimiter, n: int) -> None:
    async def go() -> None:
        for _ in range(n):
            await limiter.acquire()

    asyncio.run(go())


def congest(limiter: AdaptiveLimiter, retry_after: float | None = 1.0) -> None:
    """429s back to back, as from a server whose bucket is empty, until they read as congestion."""
    before = limiter.stats.congestions
    while limiter.stats.congestions == before:
        limiter.on_throttle(retry_after)


class BucketServer:
    """A token bucket refilled at ``available(t)`` requests/s (capacity: one second of ``rate``),
    answering 429 + ``RateLimit-Reset`` (whole seconds, at least 1) when empty, and a 429 at random
    with probability ``stray`` before the bucket is even asked (a gateway's)."""

    def __init__(self, rate: float, *, available: Callable[[float], float] | None = None, stray: float = 0.0) -> None:
        self.rate = rate
        self.available = available or (lambda _t: rate)
        self.stray = stray
        self.tokens = rate
        self.updated = 0.0
        self.random = random.Random(7)

    def answer(self, now: float) -> float | None:
        """None for a success, else the reset in seconds."""
        if self.stray and self.random.random() < self.stray:
            return 1.0
        refill = self.available(now)
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * refill)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return float(max(1, -(-(1.0 - self.tokens) // refill)))


def simulate(limiter: AdaptiveLimiter, time: FakeTime, server: BucketServer, seconds: float) -> list[float]:
    """Send as fast as the limiter allows for ``seconds``; the times of the successes."""
    successes: list[float] = []

    async def go() -> None:
        while time.now < seconds:
            await limiter.acquire()
            reset = server.answer(time.now)
            if reset is None:
                successes.append(time.now)
                limiter.on_success()
            else:
                limiter.on_throttle(reset)  # a stray's own hold delays only its retry: demand is unlimited

    asyncio.run(go())
    return successes


def between(successes: list[float], start: float, end: float) -> int:
    return sum(1 for t in successes if start <= t < end)


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


def test_a_lone_429_among_successes_is_stray_and_holds_only_its_own_request() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=40.0, jitter=0.0)
    for _ in range(50):
        limiter.on_success()
    rate = limiter.rate
    hold = limiter.on_throttle(2.0)
    assert hold == 2.0  # the request that met it waits the server's reset before its retry
    assert limiter.rate == rate  # no cut
    assert limiter.slow_start  # and not the end of slow start either
    assert not limiter.backing_off  # nobody else waits
    assert limiter.stats.stray == 1 and limiter.stats.congestions == 0


def test_429s_that_are_a_real_share_of_the_answers_are_congestion() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=40.0, jitter=0.0)
    for _ in range(20):
        limiter.on_success()
    rate = limiter.rate
    assert limiter.on_throttle(2.0) > 0  # the first could be stray
    assert limiter.on_throttle(2.0) > 0
    assert limiter.on_throttle(2.0) == 0.0  # the third in 23 answers is not: everyone waits
    assert limiter.rate == pytest.approx(rate * 0.9)
    assert limiter.backing_off
    assert limiter.stats.congestions == 1


def test_429s_back_to_back_are_congestion_even_after_many_successes() -> None:
    # A burst (the event loop stalled, our bucket refilled) met an empty server bucket.
    time = FakeTime()
    limiter = make(time, initial_rate=40.0, jitter=0.0)
    for _ in range(97):
        limiter.on_success()
    limiter.on_throttle(1.0)
    limiter.on_throttle(1.0)
    assert limiter.stats.congestions == 0
    limiter.on_throttle(1.0)  # 3 % of the answers, but three in a row
    assert limiter.stats.congestions == 1 and limiter.backing_off


def test_old_429s_do_not_add_up_to_congestion() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=40.0, jitter=0.0, history_seconds=5.0)
    for _ in range(5):
        limiter.on_throttle(1.0)
        time.now += 6.0  # each one alone in its own five seconds
    assert limiter.stats.congestions == 0
    assert not limiter.backing_off


def test_congestion_cuts_rate_once_per_episode_and_pauses_for_the_server_reset() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=40.0, jitter=0.0, **AT_FULL_PACE)
    limiter.slow_start = False
    for _ in range(57):
        limiter.on_success()
    congest(limiter, 2.0)  # 3 of the last 60 answers: 5 %
    limiter.on_throttle(2.0)  # a 429 of a request in flight when the episode began changes nothing more
    assert limiter.rate == 36.0
    assert limiter.ceiling == pytest.approx(38.0)  # what the server accepted of the 40/s: 95 %
    assert limiter.backing_off
    assert limiter.resume_in == 2.0
    acquire_many(limiter, 1)
    assert time.now >= 2.0
    assert not limiter.backing_off and limiter.resume_in == 0.0
    assert limiter.stats.throttled == 4 and limiter.stats.congestions == 1


def test_congestion_ends_slow_start() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=40.0, jitter=0.0, **AT_FULL_PACE)
    congest(limiter, 1.0)
    assert limiter.slow_start is False
    assert limiter.rate == 36.0


def test_congestion_without_a_hint_waits_a_second() -> None:
    time = FakeTime()
    limiter = make(time, jitter=0.0)
    congest(limiter, None)
    acquire_many(limiter, 1)
    assert time.now == 1.0


def test_jitter_stays_within_bounds() -> None:
    time = FakeTime()
    limiter = make(time, jitter=0.1)
    congest(limiter, 10.0)
    acquire_many(limiter, 1)
    assert 10.0 <= time.now <= 11.0


def test_a_single_wait_is_capped() -> None:
    time = FakeTime()
    limiter = make(time, jitter=0.1, max_wait=120.0)
    assert limiter.on_throttle(86_400.0) == 120.0  # a stray's own hold: capped
    congest(limiter, 86_400.0)  # a server asking for a day
    assert limiter.resume_in == 120.0
    acquire_many(limiter, 1)
    assert time.now == 120.0
    assert limiter.stats.capped_waits == limiter.stats.throttled


def test_after_a_cut_the_rate_climbs_back_to_the_ceiling_flattens_then_passes_it() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=100.0, max_rate=1000.0, jitter=0.0, growth=1e-3, probe_reference_rate=50.0)
    limiter.slow_start = False
    for _ in range(57):
        limiter.on_success()
    congest(limiter, 1.0)  # rate 90, ceiling 95, recovery from the end of the pause (t = 1)
    assert limiter.rate == 90.0 and limiter.ceiling == pytest.approx(95.0)

    def rate_at(t: float) -> float:
        time.now = t
        limiter.on_success()
        return limiter.rate

    assert rate_at(0.5) == 90.0  # no growth during the pause
    k = ((95.0 - 90.0) / (1e-3 * 95.0)) ** (1 / 3)  # CUBIC's K: 3.7 s back to the ceiling
    assert 92.5 < rate_at(1 + k / 2) < 95.0  # concave: more than half way in half the time
    assert rate_at(1 + k) == pytest.approx(95.0)
    assert rate_at(1 + k + 2) < 96.0  # flat near the ceiling: it was one
    assert rate_at(1 + k + 10) == pytest.approx(190.0)  # nothing there any more: accelerate


def episode(limiter: AdaptiveLimiter, time: FakeTime, rate: float) -> None:
    """Answers at ``rate``: four seconds of successes, then every tenth one a 429 (a server ~10 %
    below ``rate`` whose bucket ran empty) until they read as congestion."""
    for _ in range(int(4 * rate)):
        time.now += 1 / rate
        limiter.on_success()
    answered = 0
    while limiter.stats.congestions == 0:
        time.now += 1 / rate
        answered += 1
        if answered % 10:
            limiter.on_success()
        else:
            limiter.on_throttle(1.0)


def seconds_back_to_the_ceiling(rate: float, reference: float) -> float:
    time = FakeTime()
    limiter = make(time, initial_rate=rate, max_rate=10 * rate, jitter=0.0, probe_reference_rate=reference)
    limiter.slow_start = False
    episode(limiter, time, rate)
    start, ceiling = time.now + limiter.resume_in, limiter.ceiling
    while limiter.rate < ceiling - 1e-6:
        time.now += 0.01
        limiter.on_success()
    return time.now - start


def test_below_the_reference_rate_the_climb_back_is_slower_than_in_proportion() -> None:
    # Each probe past a ceiling costs a few 429s; the probe itself runs at full speed, so the climb
    # before it must hold more requests at a low rate: (reference / ceiling) ** 1.5 times slower.
    slower = seconds_back_to_the_ceiling(20.0, 100.0)
    assert slower == pytest.approx(2**1.5 * seconds_back_to_the_ceiling(40.0, 100.0), rel=0.02)
    # Above the reference rate the climb takes the same time at any rate.
    assert seconds_back_to_the_ceiling(800.0, 100.0) == pytest.approx(
        seconds_back_to_the_ceiling(200.0, 100.0), rel=0.02
    )


def test_below_the_reference_rate_the_cut_goes_a_full_decrease_below_the_ceiling() -> None:
    # Between two probes the delivered rate is the server's own, so a cut to it alone is no cut at all
    # and the climb back (however slow its clock) takes no time: probes would follow each other.
    def after_congestion(rate: float) -> AdaptiveLimiter:
        time = FakeTime()
        limiter = make(time, initial_rate=rate, max_rate=10 * rate, jitter=0.0, probe_reference_rate=50.0)
        limiter.slow_start = False
        episode(limiter, time, rate)
        return limiter

    low = after_congestion(22.0)
    assert low.ceiling == pytest.approx(19.8, abs=0.5)  # what the server let through
    assert low.rate == pytest.approx(0.9 * low.ceiling)
    high = after_congestion(220.0)  # at full pace: the cut as before, from the rate it was sending
    assert high.rate == pytest.approx(0.9 * 220.0)


def test_the_ceiling_is_what_the_server_let_through_once_its_bucket_ran_empty() -> None:
    # Sending 44/s to a server refilling 40/s: its one-second burst hides the excess for ten seconds,
    # then it refuses 4 in 44. The share refused over the recent answers is diluted by the successes
    # from before its bucket ran empty (44 * (1 - 4 %) = 42.2, above the server's 40/s: the rate
    # would then settle above the server's and meet a 429 every second or two); what it let through
    # since the first of those 429s is its rate.
    time = FakeTime()
    limiter = make(time, initial_rate=44.0, max_rate=44.0, jitter=0.0, growth=0.0, **AT_FULL_PACE)
    limiter.slow_start = False
    server = BucketServer(40.0)
    simulate(limiter, time, server, 15.0)
    assert limiter.stats.congestions >= 1
    assert 39.0 <= limiter.ceiling <= 41.0


def test_429s_too_close_together_to_time_take_the_delivered_rate_as_the_ceiling() -> None:
    # A probe overshot: three 429s in a few milliseconds, no span to time what the server let through.
    # Since the previous congestion (its bucket empty then and now) it delivered 20/s: that is the
    # ceiling, not just above it (20 / 0.9 = 22.2, where the rate would meet a 429 every second or so).
    time = FakeTime()
    limiter = make(time, initial_rate=24.0, max_rate=100.0, jitter=0.0, growth=0.0, **AT_FULL_PACE)
    limiter.slow_start = False
    congest(limiter, 1.0)  # the previous congestion: the measuring window starts
    time.now += 1.0  # its pause
    for _ in range(200):  # ten seconds at 20/s, all answered
        time.now += 0.05
        acquire_many(limiter, 1)  # the limiter paces at 21.6/s: its bucket never fills (we kept sending)
        limiter.on_success()
    limiter.rate = 25.0  # the probe
    congest(limiter, 1.0)
    assert limiter.ceiling == pytest.approx(200 / 11.0)
    assert limiter.rate == pytest.approx(200 / 11.0)  # the cut: at most the delivered rate


def test_three_429s_close_together_are_congestion_even_among_many_successes() -> None:
    # A probe well past the server's rate: its bucket ran empty and it refuses one request in three.
    time = FakeTime()
    limiter = make(time, initial_rate=40.0, jitter=0.0)
    for _ in range(95):
        limiter.on_success()
    for answer in (True, False, False, True, False, True):
        limiter.on_throttle(1.0) if answer else limiter.on_success()
    assert limiter.stats.congestions == 1  # 3 % of the last 100 answers, but 3 of the last 6


def test_three_429s_spread_over_many_answers_stay_stray() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=40.0, jitter=0.0)
    for _ in range(3):
        for _ in range(30):
            limiter.on_success()
        limiter.on_throttle(1.0)
    assert limiter.stats.congestions == 0 and limiter.stats.stray == 3


def test_a_window_that_is_mostly_the_pause_does_not_set_the_cut() -> None:
    # Right after a pause a burst met 429s: the few successes since the pause began say nothing about
    # the server's rate (a second of waiting is not a second of sending), so the cut stays multiplicative.
    time = FakeTime()
    limiter = make(time, initial_rate=50.0, jitter=0.0, growth=0.0, **AT_FULL_PACE)
    limiter.slow_start = False
    congest(limiter, 1.0)  # rate 45, everyone waits 1 s
    time.now += 1.05
    for _ in range(5):
        limiter.on_success()
    congest(limiter, 1.0)
    assert limiter.rate == pytest.approx(45 * 0.9)  # not 5 successes / 1.05 s


def test_rate_never_falls_below_the_minimum() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=1.0, min_rate=0.5, jitter=0.0)
    for _ in range(20):
        congest(limiter, 0.0)
        acquire_many(limiter, 1)
    assert limiter.rate == 0.5


def test_credit_accrues_during_a_pause_for_a_burst_afterwards() -> None:
    # Once the rate was measured between two congestions, the pause earns a burst (the server refilled too).
    time = FakeTime()
    limiter = make(time, initial_rate=10.0, jitter=0.0, growth=0.0, **AT_FULL_PACE)
    limiter.slow_start = False
    congest(limiter, 0.0)  # the first congestion: rate 9, the measuring window starts
    for _ in range(20):  # two seconds at 9/s, all answered
        acquire_many(limiter, 1)
        limiter.on_success()
    congest(limiter, 1.0)  # a measured episode: rate min(8.1, ~9.5) = 8.1
    assert abs(limiter.rate - 8.1) < 1e-9
    acquire_many(limiter, 1)
    start = time.now
    acquire_many(limiter, 7)
    assert time.now - start < 0.01  # the server refilled during the pause; so did we


def test_no_burst_after_the_pause_that_ends_slow_start() -> None:
    # Slow start's window began with the server's bucket full: its rate is an overestimate, so the
    # first requests after the pause are paced, not sent as a burst that would meet more 429s.
    time = FakeTime()
    limiter = make(time, initial_rate=10.0, jitter=0.0, growth=0.0, **AT_FULL_PACE)
    acquire_many(limiter, 10)
    congest(limiter, 1.0)  # rate 9, no credit for the pause
    acquire_many(limiter, 1)
    start = time.now
    acquire_many(limiter, 9)
    assert abs(time.now - start - 9 / 9.0) < 0.01  # one every 1/9 s


def test_a_congestion_after_overshooting_cuts_to_the_delivered_rate() -> None:
    # Slow start overshot: the limiter runs at 80/s but the server let only 20/s through for 2 s.
    time = FakeTime()
    limiter = make(time, initial_rate=80.0, jitter=0.0, growth=0.0)
    limiter.slow_start = False
    for _ in range(40):
        time.now += 0.05
        acquire_many(limiter, 4)  # sends at its 80/s: its bucket never fills
        limiter.on_success()  # but only one in four succeeds
    congest(limiter, 1.0)
    assert abs(limiter.rate - 40 / time.now) < 1e-9  # ~20/s, not 72 (= 80 * 0.9): one episode instead of a dozen
    assert limiter.ceiling == pytest.approx(limiter.rate / 0.9)  # and the ceiling is where the server is


def test_a_short_window_is_not_trusted_and_the_cut_stays_multiplicative() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=50.0, jitter=0.0, growth=0.0, **AT_FULL_PACE)
    limiter.slow_start = False
    time.now += 0.2
    for _ in range(3):
        limiter.on_success()
    congest(limiter, 1.0)
    assert limiter.rate == 45.0


def test_an_idle_spell_restarts_the_measuring_window() -> None:
    # A quiet minute (nobody sending) must not be read as a server that allows one request a minute.
    time = FakeTime()
    limiter = make(time, initial_rate=40.0, jitter=0.0, growth=0.0, **AT_FULL_PACE)
    limiter.slow_start = False
    acquire_many(limiter, 1)
    limiter.on_success()
    time.now += 60.0
    acquire_many(limiter, 1)  # the bucket sat full: the window starts again here
    for _ in range(60):
        time.now += 0.025
        limiter.on_success()
    congest(limiter, 1.0)
    assert abs(limiter.rate - 36.0) < 1e-9  # 40 * 0.9: the 40/s delivered since is no lower


def test_the_pause_itself_does_not_restart_the_measuring_window() -> None:
    # Waiting out the server's reset is not idleness: the episode after a pause is measured across it.
    time = FakeTime()
    limiter = make(time, initial_rate=30.0, jitter=0.0, growth=0.0, **AT_FULL_PACE)
    limiter.slow_start = False
    congest(limiter, 1.0)  # rate 27, pause 1 s
    acquire_many(limiter, 40)  # paced from the end of the pause: 1.5 s of sending
    for _ in range(40):
        limiter.on_success()
    window = time.now
    congest(limiter, 1.0)
    assert abs(limiter.rate - 40 / window) < 1e-9  # 40 successes over the pause and the sending after it
    assert limiter.rate < 27 * 0.9


# -- scenarios against a simulated server ---------------------------------------------------------


def test_stray_429s_at_random_do_not_collapse_the_rate() -> None:
    # The case: 1 % of requests answered 429 at random by a server whose real limit is 100/s.
    time = FakeTime()
    limiter = make(time, initial_rate=10.0, max_rate=500.0, rng=random.Random(1))
    server = BucketServer(100.0, stray=0.01)
    successes = simulate(limiter, time, server, 120.0)
    assert limiter.stats.stray > 50  # they happened, about one a second
    assert between(successes, 10.0, 120.0) / 110.0 >= 0.9 * 100.0


def test_stray_429s_alone_never_end_slow_start_below_the_ceiling() -> None:
    time = FakeTime()
    limiter = make(time, initial_rate=10.0, max_rate=80.0, rng=random.Random(1))
    server = BucketServer(1000.0, stray=0.01)  # the real limit is far above max_rate
    successes = simulate(limiter, time, server, 60.0)
    assert limiter.stats.stray > 20
    assert limiter.rate == 80.0
    assert between(successes, 5.0, 60.0) / 55.0 >= 0.95 * 80.0


def test_a_steady_limit_is_probed_with_under_1_percent_refused_at_20_and_100_per_s() -> None:
    # Benchmark 1's target at both rates: the probes past a steady limit cost a few 429s each.
    for rate in (20.0, 100.0):
        time = FakeTime()
        limiter = make(time, initial_rate=10.0, max_rate=5 * rate, rng=random.Random(1))
        successes = simulate(limiter, time, BucketServer(rate), 180.0)
        assert limiter.stats.throttled / (limiter.stats.throttled + len(successes)) < 0.01
        assert len(successes) / 180.0 >= 0.95 * rate


def test_stray_429s_at_20_per_s_do_not_collapse_the_rate() -> None:
    # The slow-down below the reference rate makes each cut cost more there: strays must still not cut.
    time = FakeTime()
    limiter = make(time, initial_rate=10.0, max_rate=100.0, rng=random.Random(1))
    successes = simulate(limiter, time, BucketServer(20.0, stray=0.01), 180.0)
    assert limiter.stats.stray > 10
    assert between(successes, 10.0, 180.0) / 170.0 >= 0.9 * 20.0


def test_a_shared_quota_step_down_is_followed_and_the_step_back_up_recovered_within_20_s() -> None:
    # Another client of the same tenant takes half of R = 100/s from t = 20 s to t = 80 s.
    time = FakeTime()
    limiter = make(time, initial_rate=10.0, max_rate=500.0, rng=random.Random(1))
    server = BucketServer(100.0, available=lambda t: 50.0 if 20.0 <= t < 80.0 else 100.0)
    successes = simulate(limiter, time, server, 140.0)
    # During the step: our share is used, and the rate follows it down (no 429 storm).
    assert between(successes, 30.0, 80.0) / 50.0 >= 0.9 * 50.0
    # Back up: at least 0.9 R over a 5 s window that starts no later than 20 s after the step.
    first = next(t for t in range(80, 101) if between(successes, t, t + 5) / 5.0 >= 90.0)
    assert first + 5 <= 100
    available = 20 * 100 + 60 * 50 + 60 * 100
    assert len(successes) / available >= 0.9
    assert limiter.stats.throttled / (limiter.stats.throttled + len(successes)) < 0.02
