"""Adaptive request pacing: one limiter per API, shared by every request to it.

Neither vendor publishes a number we can trust for a given tenant (Kinde publishes none), and the
quota may be shared with another client of the same tenant (the live app), so the limiter finds the
rate itself, and keeps finding it:

* a token bucket releases requests evenly at ``rate`` per second, with a burst of one second's worth
  (a server that refilled during a pause can take that burst);
* **slow start**: until the first congestion the rate grows by one request/s per success (doubling
  roughly every second), capped by ``max_rate``;
* **a stray 429 is not a ceiling**: gateways throw the odd 429, and a 429 at random says nothing
  about the rate. A 429 is *congestion* only when 429s make up a real share of the recent answers
  (at least ``congestion_count`` of them and ``congestion_share`` of the answers in the last
  ``history_seconds``, at most ``history`` answers), or ``congestion_count`` of the last
  ``burst_answers`` answers were 429s: that is what a server whose bucket is empty does, since every
  request sent faster than it refills is refused (strays at 1 % come three in fifteen answers about
  once in 120 strays). A stray 429 changes neither the rate nor anyone else's pace; only the request
  that met it waits the server's reset;
* on **congestion** the rate is cut multiplicatively (``decrease``) and every request waits the
  server's ``Retry-After``/``RateLimit-Reset`` plus jitter, never more than ``max_wait`` at once;
* the **ceiling** (where congestion began) is what the server accepted: the successes per second
  since the first 429 of the recent answers (from then on its bucket was empty, so it let through
  only what it refills), or, when those 429s came too close together to time, the delivered rate
  since the previous congestion (below); at most what it accepted of the rate we were sending. A
  ceiling read from the rate we were sending alone is too high when the server's burst hid the
  crossing for a while: the rate then settles just above the server's and meets a 429 every second
  or two, each one alone;
* **delivery-rate floor on the cut**: a congestion means the server's bucket is empty now, so the
  successes counted since the window began (the previous congestion, or the last moment our own
  bucket sat full because nobody was sending) divided by the window's length are at most what the
  server refills per second, give or take its burst (a window that is mostly the pause that began
  it is too short to tell). The cut goes at least that low. This is what
  stops a slow start that overshot the server several times over (its burst hid the limit for a
  few seconds) from taking a dozen throttle episodes to come back down;
* **burst after a pause only at a measured rate**: while everyone waits for the reset our bucket
  refills, so the first requests after it go out as a burst (the server's bucket refilled too).
  That is only safe at a rate measured between two congestions; otherwise (the end of slow start,
  whose window began with the server's bucket full) requests resume at the paced rate;
* **recovery** after a cut follows CUBIC (RFC 9438) in requests/s instead of a window: the rate
  climbs back towards ``ceiling`` (the estimate of where congestion began) fast, flattens out near
  it, then, if no congestion comes, accelerates past it. So the limiter spends its time just under
  a steady ceiling, and finds a higher one (another client stopped sharing the quota) within
  seconds instead of minutes. ``growth`` is CUBIC's constant, relative to the ceiling (per s^3).
  Each probe past a ceiling costs a few 429s (``congestion_count`` at least), so below
  ``probe_reference_rate`` the probes are made rarer: the cut goes a full ``decrease`` below the
  ceiling (not just below the delivered rate, which is the server's rate itself once a probe drained
  its bucket, so the climb back would take no time), and the climb back to the ceiling runs slower,
  by (ceiling / reference) ** ``probe_pace_exponent``, more than in proportion, because the probe
  past the ceiling (at full speed, so that a quota that came back is still found in seconds) holds
  fewer requests at a low rate. Together they keep the refused share under 1 % at 20/s.

Clock and sleep are injectable so the behaviour is unit-tested without waiting.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

DEFAULT_MAX_WAIT = 120.0  # seconds: the longest single wait a server's reset header can impose


@dataclass
class LimiterStats:
    requests: int = 0
    throttled: int = 0  # 429s seen
    stray: int = 0  # 429s judged stray (no cut, no pause for the others)
    congestions: int = 0  # 429s judged a ceiling (a cut and a pause)
    waits: float = 0.0  # seconds spent waiting for the server's reset (everyone)
    capped_waits: int = 0  # server resets longer than max_wait, cut to it


class AdaptiveLimiter:
    """Token bucket with congestion-aware rate control. ``await acquire()`` before each request."""

    def __init__(
        self,
        *,
        initial_rate: float,
        max_rate: float,
        min_rate: float = 0.5,
        decrease: float = 0.9,
        growth: float = 1e-3,
        probe_reference_rate: float = 50.0,
        probe_pace_exponent: float = 1.5,
        jitter: float = 0.1,
        min_window: float = 1.0,
        congestion_share: float = 0.04,
        congestion_count: int = 3,
        burst_answers: int = 15,
        accepted_min_span: float = 0.25,
        history: int = 100,
        history_seconds: float = 5.0,
        max_wait: float = DEFAULT_MAX_WAIT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.max_rate = max_rate
        self.min_rate = min(min_rate, max_rate)
        self.rate = max(self.min_rate, min(initial_rate, max_rate))
        self.decrease = decrease
        self.growth = growth
        self.probe_reference_rate = probe_reference_rate
        self.probe_pace_exponent = probe_pace_exponent
        self.jitter = jitter
        self.min_window = min_window
        self.congestion_share = congestion_share
        self.congestion_count = congestion_count
        self.burst_answers = max(burst_answers, congestion_count)
        self.accepted_min_span = accepted_min_span
        self.history_seconds = history_seconds
        self.max_wait = max_wait
        self.slow_start = True
        self.ceiling: float | None = None  # where the last congestion began (CUBIC's W_max)
        self.stats = LimiterStats()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._tokens = 1.0
        self._last = clock()
        self._paused_until = 0.0
        self._paused_from = 0.0
        # Recent answers, (time, was it a 429), for telling a stray 429 from congestion.
        self._answers: deque[tuple[float, bool]] = deque(maxlen=history)
        # CUBIC: the rate after the last cut, and when its recovery began (the end of the pause).
        self._recovery_from = self.rate
        self._recovery_start = self._last
        # The measuring window for the delivery-rate floor: successes since _window_start.
        self._window_start = self._last
        self._window_successes = 0
        self._window_from_throttle = False  # did the window begin at a congestion (server's bucket empty)?
        self._pause_credit = False  # may tokens accrue during the current pause (a burst after it)?
        self._lock = asyncio.Lock()

    @property
    def backing_off(self) -> bool:
        """True while every request waits for the server's reset after a congestion."""
        return self._clock() < self._paused_until

    @property
    def resume_in(self) -> float:
        """Seconds until requests flow again after a congestion pause (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    def _refill(self, now: float) -> None:
        last = self._last
        if not self._pause_credit and last < self._paused_until:
            last = min(now, self._paused_until)  # no credit for the pause: pace from its end
        elapsed = max(0.0, now - last)
        capacity = max(1.0, self.rate)
        tokens = self._tokens + elapsed * self.rate
        if tokens > capacity:
            # The bucket sat full: for a while nobody wanted to send. Unless a server-imposed pause
            # explains it, the server's bucket refilled too, so successes counted from before say
            # nothing about its rate: the measuring window starts again now.
            full_for = (tokens - capacity) / self.rate
            paused = max(0.0, min(now, self._paused_until) - max(last, self._paused_from))
            if full_for - paused > 0.1:
                self._window_start = now
                self._window_successes = 0
                self._window_from_throttle = False
            tokens = capacity
        self._last = now
        self._tokens = tokens

    async def acquire(self) -> None:
        """Wait until a request may go out. Fair: callers are served in arrival order."""
        async with self._lock:
            while True:
                now = self._clock()
                if now < self._paused_until:
                    await self._sleep(self._paused_until - now)
                    continue
                self._refill(now)
                if self._tokens >= 1.0 - 1e-9:  # float dust must not stall the bucket
                    self._tokens = max(0.0, self._tokens - 1.0)
                    self.stats.requests += 1
                    return
                await self._sleep(max(1e-4, (1.0 - self._tokens) / self.rate))

    def _cubic(self, now: float) -> float:
        """CUBIC's rate during the recovery: back to the ceiling in K s, flat near it, then beyond."""
        ceiling = self.ceiling
        if ceiling is None or self.growth <= 0:
            return self.rate
        elapsed = max(0.0, now - self._recovery_start)
        k = max(0.0, (ceiling - self._recovery_from) / (self.growth * ceiling)) ** (1 / 3)
        # Below the reference rate the climb back to the ceiling is slower (see _probe_pace). Past the
        # ceiling the clock runs at full speed again, so a quota that came back is still found in seconds.
        pace = self._probe_pace(ceiling)
        t = elapsed * pace if elapsed * pace < k else k + (elapsed - k / pace)
        return ceiling * (1.0 + self.growth * (t - k) ** 3)

    def _probe_pace(self, ceiling: float) -> float:
        """How fast the climb back to ``ceiling`` runs (1 at or above the reference rate): each probe past a
        ceiling costs a few 429s, so at a low rate, where they are a larger share, probes must be rarer."""
        if self.probe_reference_rate <= 0:
            return 1.0
        return min(1.0, ceiling / self.probe_reference_rate) ** self.probe_pace_exponent

    def on_success(self) -> None:
        now = self._clock()
        self._answers.append((now, False))
        self._window_successes += 1
        if self.slow_start:
            self.rate = min(self.max_rate, self.rate + 1.0)
        elif now >= self._paused_until:
            self.rate = max(self.min_rate, min(self.max_rate, self._cubic(now)))

    def _refused_share(self, now: float) -> float | None:
        """The share of 429s in the recent answers when it says congestion (the server refuses what
        exceeds its rate), else None (a stray 429)."""
        answers = self._answers
        while answers and now - answers[0][0] > self.history_seconds:
            answers.popleft()
        throttled = sum(1 for _, was_429 in answers if was_429)
        if throttled >= self.congestion_count and throttled >= self.congestion_share * len(answers):
            return throttled / len(answers)
        recent = list(answers)[-self.burst_answers :]
        if sum(1 for _, was_429 in recent if was_429) >= self.congestion_count:
            # Close together: a burst, or a probe well past the server's rate, met an empty bucket
            # (strays at 1 % come three in fifteen answers about once in 120 strays).
            return throttled / len(answers)
        return None

    def _accepted_rate(self, now: float) -> float | None:
        """Successes per second since the first 429 of the recent answers: from then on the server's
        bucket was empty, so this is what it refills (None when that span is too short to tell)."""
        answers = list(self._answers)
        first = next((i for i, (_, was_429) in enumerate(answers) if was_429), None)
        if first is None:
            return None
        span = now - answers[first][0]
        if span < self.accepted_min_span:
            return None
        return sum(1 for _, was_429 in answers[first:] if not was_429) / span

    def _cut(self, now: float, refused: float) -> float | None:
        """Cut the rate for a congestion and say where it began (``ceiling``). Returns the delivered
        rate it measured (None: the window was too short to tell)."""
        cut = self.rate * self.decrease
        delivered = self.delivered_rate(now)
        if delivered is not None:
            cut = min(cut, delivered)
        sending = self.rate
        self.rate = max(self.min_rate, min(self.max_rate, cut))
        # Where congestion began: what the server accepted of the rate we were sending (its bucket
        # is empty, so it refused the excess), at most what it let through since its bucket ran
        # empty, or, when it let through far less than that (slow start overshot), just above what
        # it delivered.
        estimates = [sending * (1.0 - refused), cut / self.decrease]
        accepted = self._accepted_rate(now)
        if accepted:  # zero (nothing let through yet) says the episode is young, not that the rate is 0
            estimates.append(accepted)
        elif delivered is not None and self._window_from_throttle:
            # 429s too close together to time: what it let through since the last congestion (its bucket
            # empty then and now) is its rate, less what overflowed its bucket while we sent less.
            estimates.append(delivered)
        self.ceiling = max(self.rate, min(estimates))
        if self._probe_pace(self.ceiling) < 1.0:
            # Below the reference rate: a full cut below the ceiling, so that probes stay rare (see above).
            self.rate = max(self.min_rate, min(self.rate, self.ceiling * self.decrease))
        return delivered

    def on_throttle(self, retry_after: float | None) -> float:
        """A 429. Returns how long the request that met it waits before its retry, beyond ``acquire``.

        Congestion: cut the rate, remember where, and pause everyone for the server's reset (the
        request itself then waits in ``acquire`` like the others: 0 is returned). A stray 429: only
        that request waits the server's reset; the others keep their pace.
        """
        self.stats.throttled += 1
        now = self._clock()
        wait = retry_after if retry_after is not None and retry_after >= 0 else 1.0
        wait *= 1.0 + self._rng.uniform(0.0, self.jitter)
        if wait > self.max_wait:
            self.stats.capped_waits += 1
            wait = self.max_wait
        if self.backing_off:
            return 0.0  # a request that was in flight when the episode began: it says nothing new
        self._answers.append((now, True))
        refused = self._refused_share(now)
        if refused is None:
            self.stats.stray += 1
            return wait
        self.stats.congestions += 1
        self._refill(now)  # tokens earned until now, at the rate in force until now
        delivered = self._cut(now, refused)
        self.slow_start = False
        self._tokens = min(self._tokens, max(1.0, self.rate))
        self._pause_credit = delivered is not None and self._window_from_throttle
        # The server's bucket is empty now: the next measuring window starts from here.
        self._window_start = now
        self._window_successes = 0
        self._window_from_throttle = True
        # The evidence for this congestion is spent: the next one needs 429s of its own.
        self._answers.clear()
        until = now + wait
        self.stats.waits += until - now
        self._paused_from = now
        # The server's bucket refills while we wait; ours does too (up to one second's burst)
        # when the rate was measured (``_pause_credit``), else requests resume paced.
        self._paused_until = until
        self._recovery_from = self.rate
        self._recovery_start = until
        return 0.0

    def delivered_rate(self, now: float | None = None) -> float | None:
        """Successes per second over the current measuring window, once it is long enough to tell."""
        now = self._clock() if now is None else now
        span = now - self._window_start
        # The pause that began the window counts in its length (the server refilled during it, and the
        # burst after it is counted), but a window that is mostly that pause is too short to tell.
        sending = now - max(self._window_start, self._paused_until)
        if sending < self.min_window or self._window_successes < 2:
            return None
        return self._window_successes / span
