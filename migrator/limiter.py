"""Adaptive request pacing: one limiter per API, shared by every request to it.

Neither vendor publishes a number we can trust for a given tenant (Kinde publishes none), so the
limiter finds the rate itself:

* a token bucket releases requests evenly at ``rate`` per second, with a burst of one second's worth
  (a server that refilled during a pause can take that burst);
* **slow start**: until the first 429 the rate grows by one request/s per success (doubling roughly
  every second), capped by ``max_rate``;
* on a 429 the rate is cut multiplicatively (``decrease``), the ceiling where it happened is
  remembered, and every request waits the server's ``Retry-After``/``RateLimit-Reset`` plus jitter;
* **delivery-rate floor on the cut**: a 429 means the server's bucket is empty now, so the
  successes counted since the window began (the previous 429, or the last moment our own bucket
  sat full because nobody was sending) divided by the window's length are at most what the server
  refills per second, give or take its burst. The cut goes at least that low. This is what stops a
  slow start that overshot the server several times over (its burst hid the limit for a few
  seconds) from taking a dozen throttle episodes, each with its own 429s, to come back down;
* **burst after a pause only at a measured rate**: while everyone waits for the reset our bucket
  refills, so the first requests after it go out as a burst (the server's bucket refilled too).
  That is only safe at a rate measured between two 429s; after a cut that could not be measured
  so (the end of slow start, whose window began with the server's bucket full; or a 429 right
  after the previous one) requests resume at the paced rate instead, so an overestimate costs one
  429 a couple of seconds later rather than a burst of them;
* **congestion avoidance** afterwards: the rate creeps up slowly (``probe`` of the rate per second),
  so the next 429 comes rarely and close to the real ceiling.

Clock and sleep are injectable so the behaviour is unit-tested without waiting.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass
class LimiterStats:
    requests: int = 0
    throttled: int = 0  # 429s seen
    waits: float = 0.0  # seconds spent waiting for the server's reset


class AdaptiveLimiter:
    """Token bucket with AIMD rate control. ``await acquire()`` before each request."""

    def __init__(
        self,
        *,
        initial_rate: float,
        max_rate: float,
        min_rate: float = 0.5,
        decrease: float = 0.9,
        probe: float = 0.002,
        jitter: float = 0.1,
        min_window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.max_rate = max_rate
        self.min_rate = min(min_rate, max_rate)
        self.rate = max(self.min_rate, min(initial_rate, max_rate))
        self.decrease = decrease
        self.probe = probe
        self.jitter = jitter
        self.min_window = min_window
        self.slow_start = True
        self.ceiling: float | None = None
        self.stats = LimiterStats()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._tokens = 1.0
        self._last = clock()
        self._paused_until = 0.0
        self._paused_from = 0.0
        # The measuring window for the delivery-rate floor: successes since _window_start.
        self._window_start = self._last
        self._window_successes = 0
        self._window_from_throttle = False  # did the window begin at a 429 (server's bucket empty)?
        self._pause_credit = False  # may tokens accrue during the current pause (a burst after it)?
        self._lock = asyncio.Lock()

    @property
    def backing_off(self) -> bool:
        """True while every request waits for the server's reset after a 429."""
        return self._clock() < self._paused_until

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

    def on_success(self) -> None:
        self._window_successes += 1
        if self.slow_start:
            self.rate = min(self.max_rate, self.rate + 1.0)
        else:
            # +probe of the rate per second: each of the `rate` successes a second adds probe.
            self.rate = min(self.max_rate, self.rate + self.probe)
            if self.ceiling is not None and self.rate > self.ceiling:
                # Past the last 429 the server has answered well for a while: trust it again.
                self.ceiling = self.rate

    def on_throttle(self, retry_after: float | None) -> None:
        """A 429: slow down, remember where, and pause everyone for the server's reset."""
        self.stats.throttled += 1
        now = self._clock()
        self._refill(now)  # tokens earned until now, at the rate in force until now
        if not self.backing_off:
            # One cut per throttle episode: the 429s of requests already in flight say nothing new.
            self.ceiling = self.rate
            cut = self.rate * self.decrease
            delivered = self.delivered_rate(now)
            if delivered is not None:
                cut = min(cut, delivered)
            self.rate = max(self.min_rate, min(self.max_rate, cut))
            self.slow_start = False
            self._tokens = min(self._tokens, max(1.0, self.rate))
            self._pause_credit = delivered is not None and self._window_from_throttle
            # The server's bucket is empty now: the next measuring window starts from here.
            self._window_start = now
            self._window_successes = 0
            self._window_from_throttle = True
        wait = retry_after if retry_after is not None and retry_after >= 0 else 1.0
        wait *= 1.0 + self._rng.uniform(0.0, self.jitter)
        until = now + wait
        if until > self._paused_until:
            self.stats.waits += until - max(now, self._paused_until)
            if now >= self._paused_until:
                self._paused_from = now
            # The server's bucket refills while we wait; ours does too (up to one second's burst)
            # when the rate was measured (``_pause_credit``), else requests resume paced.
            self._paused_until = until

    def delivered_rate(self, now: float | None = None) -> float | None:
        """Successes per second over the current measuring window, once it is long enough to tell."""
        now = self._clock() if now is None else now
        span = now - self._window_start
        if span < self.min_window or self._window_successes < 2:
            return None
        return self._window_successes / span
