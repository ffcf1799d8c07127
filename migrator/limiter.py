"""Adaptive request pacing: one limiter per API, shared by every request to it.

Neither vendor publishes a number we can trust for a given tenant (Kinde publishes none), so the
limiter finds the rate itself:

* a token bucket releases requests evenly at ``rate`` per second, with a burst of one second's worth
  (a server that refilled during a pause can take that burst);
* **slow start**: until the first 429 the rate grows by one request/s per success (doubling roughly
  every second), capped by ``max_rate``;
* on a 429 the rate is cut multiplicatively (``decrease``), the ceiling where it happened is
  remembered, and every request waits the server's ``Retry-After``/``RateLimit-Reset`` plus jitter;
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
        self.slow_start = True
        self.ceiling: float | None = None
        self.stats = LimiterStats()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._tokens = 1.0
        self._last = clock()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    @property
    def backing_off(self) -> bool:
        """True while every request waits for the server's reset after a 429."""
        return self._clock() < self._paused_until

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(max(1.0, self.rate), self._tokens + elapsed * self.rate)

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
        if not self.backing_off:
            # One cut per throttle episode: the 429s of requests already in flight say nothing new.
            self.ceiling = self.rate
            self.rate = max(self.min_rate, self.rate * self.decrease)
            self.slow_start = False
        wait = retry_after if retry_after is not None and retry_after >= 0 else 1.0
        wait *= 1.0 + self._rng.uniform(0.0, self.jitter)
        until = now + wait
        if until > self._paused_until:
            self.stats.waits += until - max(now, self._paused_until)
            self._paused_until = until
            # The server's bucket refills while we wait; ours does too (up to one second's burst).
            self._refill(now)
