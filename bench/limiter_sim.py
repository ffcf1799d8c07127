"""The limiter alone, in simulated time: seconds of benchmark per second of CPU, for tuning its settings.

Runs ``AdaptiveLimiter`` against the unit tests' simulated server (``tests/test_limiter.py``
``BucketServer``: a token bucket of one second's capacity answering 429 + a whole-second reset, like
the sandbox's) with unlimited demand, one request at a time, for three seeds of the limiter's jitter.
No sockets, no concurrency, no latency: it reproduced benchmark 1's 429 share at R = 20 within
0.1 point before and after the change of section 7d, which is what it is for. Figures (mean / worst):

* paced R = 20 and R = 100 for 180 s: 429 share and successes / R (benchmark 1's);
* stray, 1 % of requests refused at random, R = 100 for 90 s and R = 20 for 120 s: successes / R;
* step, another client takes half of R from 20 s to 80 s: used / available, and the seconds after
  the step up until a 5-second window reaches 0.9 R, at R = 100 (5b's) and at R = 20.

    .venv/bin/python bench/limiter_sim.py
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from migrator.limiter import AdaptiveLimiter
from tests.test_limiter import BucketServer, FakeTime, between


def run(
    rate: float, seconds: float, seed: int, *, stray: float = 0.0, available: Callable[[float], float] | None = None
) -> tuple[list[float], int]:
    """Successes' times and the number of 429s, for a limiter starting at 10/s with a ceiling of 5 R."""
    time = FakeTime()
    limiter = AdaptiveLimiter(
        initial_rate=10.0, max_rate=5 * rate, clock=time.clock, sleep=time.sleep, rng=random.Random(seed)
    )
    server = BucketServer(rate, stray=stray, available=available)
    server.random = random.Random(seed + 7)
    successes: list[float] = []
    refused = 0

    async def go() -> None:
        nonlocal refused
        while time.now < seconds:
            await limiter.acquire()
            reset = server.answer(time.now)
            if reset is None:
                successes.append(time.now)
                limiter.on_success()
            else:
                refused += 1
                limiter.on_throttle(reset)

    asyncio.run(go())
    return successes, refused


def step(rate: float, seed: int) -> tuple[float, int]:
    """(used / available, seconds from the step up to a 5 s window at >= 0.9 R) with R/2 taken for 60 s."""
    successes, _ = run(rate, 140.0, seed, available=lambda t: rate / 2 if 20.0 <= t < 80.0 else rate)
    available = 20 * rate + 60 * rate / 2 + 60 * rate
    first = next((t for t in range(80, 141) if between(successes, t, t + 5) / 5 >= 0.9 * rate), 140)
    return len(successes) / available, first - 80


def show(name: str, values: list[float]) -> str:
    return f"{name} {statistics.mean(values):.3f} / {min(values):.3f}"


def main() -> int:
    seeds = (1, 2, 3)
    for rate in (20.0, 100.0):
        share, ratio = [], []
        for seed in seeds:
            successes, refused = run(rate, 180.0, seed)
            share.append(100 * refused / (refused + len(successes)))
            ratio.append(len(successes) / 180.0 / rate)
        print(f"paced R={rate:g}: 429 % {statistics.mean(share):.2f} (worst {max(share):.2f}); {show('of R', ratio)}")
    for rate, seconds in ((100.0, 90.0), (20.0, 120.0)):
        ratio = [len(run(rate, seconds, seed, stray=0.01)[0]) / seconds / rate for seed in seeds]
        print(f"stray 1 % R={rate:g}: {show('of R', ratio)}")
    for rate in (100.0, 20.0):
        results = [step(rate, seed) for seed in seeds]
        used = [u for u, _ in results]
        print(f"step R={rate:g}: {show('used', used)}; seconds to 0.9 R after the step up {[s for _, s in results]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
