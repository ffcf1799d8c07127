"""Pacing under a quota the migrator does not own: stray 429s, and another client taking a share.

The sandbox (its own process) limits Kinde to R requests/s; this process drives the migrator's own
Kinde client (``KindeClient.call``: limiter, retries, error mapping; ``GET /api/v1/roles``) from
``--concurrency`` tasks with unlimited demand for ``--seconds``. Two scenarios:

* ``stray``: besides the limit, ``--stray`` of requests (default 1 %) are answered 429 at random by the
  fault middleware (a gateway's, with ``Retry-After`` and ``RateLimit-Reset``). Figure: successes
  per second over the run / R (target >= 0.8).
* ``step``: another client takes half of R from 20 s to 80 s after the first request, then stops.
  Figures: successes / requests available to us over the run (target >= 0.9); seconds from the step
  up until a 5-second window averages >= 0.9 R (target <= 20).

Successes are counted per second by the sandbox (``--trace``), from its first request.

    .venv/bin/python bench/pacing.py --scenario stray
    .venv/bin/python bench/pacing.py --scenario step
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, sandbox, sandbox_settings

from migrator.connect import connect
from migrator.errors import ApiError

STEP_SHARE, STEP_START, STEP_DURATION = 0.5, 20.0, 60.0


async def drive(env: dict[str, str], seconds: float, concurrency: int, max_rps: float) -> dict[str, float]:
    # The limiter's defaults, but a ceiling far above R (as in paced.py): it must find R itself.
    settings = sandbox_settings(env, concurrency=concurrency, kinde_max_rps=max_rps)
    failures = 0
    async with connect(settings) as (_clerk, kinde):
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal failures
            while time.monotonic() < deadline:
                try:
                    await kinde.call("GET", "/api/v1/roles", scope="read:roles")
                except ApiError:
                    failures += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        stats = kinde.limiter.stats
        return {
            "client_requests": kinde.stats.requests,
            "client_429": kinde.stats.throttled,
            "stray": getattr(stats, "stray", None),  # None: a limiter without the distinction
            "congestions": getattr(stats, "congestions", None),
            "failed_calls": failures,
            "final_rate": round(kinde.limiter.rate, 1),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("stray", "step"), required=True)
    parser.add_argument("--rps", type=float, default=100.0, help="R: the sandbox Kinde's limit (default 100)")
    parser.add_argument("--seconds", type=float, default=None, help="run length (default: stray 90, step 140)")
    parser.add_argument("--stray", type=float, default=0.01, help="stray 429 share (stray scenario; default 0.01)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rps = args.rps
    seconds = args.seconds or (90.0 if args.scenario == "stray" else 140.0)
    extra = (
        ["--kinde-stray-429", str(args.stray)]
        if args.scenario == "stray"
        else ["--kinde-shared", str(STEP_SHARE), str(STEP_START), str(STEP_DURATION)]
    )
    print(f"# machine: {machine()}")
    with sandbox(users=10, kinde_rps=rps, trace=True, extra=extra) as box:
        print(
            f"$ (in process) KINDE_MAX_RPS={5 * rps:g} KindeClient.call GET /api/v1/roles x {args.concurrency} tasks, {seconds:g} s"
        )
        client = asyncio.run(drive(box.env, seconds, args.concurrency, 5 * rps))
        trace = box.trace()
    last = max(trace)
    ok = [sum(n for status, n in trace.get(s, {}).items() if 200 <= status < 300) for s in range(last + 1)]
    span = len(ok) - 1  # the last second is partial
    used = sum(ok[:span])
    figures: dict[str, object] = {"benchmark": f"pacing-{args.scenario}", "R": rps, "seconds": span, **client}
    if args.scenario == "stray":
        ratio = used / span / rps
        settled = sum(ok[10:span]) / (span - 10) / rps
        figures.update(delivered_ratio=round(ratio, 4), delivered_ratio_after_10s=round(settled, 4))
        print(f"delivered            {used} successes in {span} s = {ratio:.3f} of R   (target >= 0.8)")
        print(f"  after the first 10 s: {settled:.3f} of R")
    else:
        shared = STEP_SHARE * rps * min(STEP_DURATION, max(0.0, span - STEP_START))
        available = rps * span - shared
        up = STEP_START + STEP_DURATION
        recovered = next((s - up for s in range(int(up), span - 4) if sum(ok[s : s + 5]) / 5 >= 0.9 * rps), None)
        figures.update(
            used_of_available=round(used / available, 4),
            seconds_to_0_9R_after_step_up=recovered,
        )
        print(f"used                 {used} of {available:.0f} available = {used / available:.3f}   (target >= 0.9)")
        print(f"back to >= 0.9 R     {recovered} s after the step up (5 s windows; target <= 20)")
    print(f"client               {client}")
    print("seconds   successes/s")
    for start in range(0, span, 5):
        window = ok[start : min(start + 5, span)]
        print(f"{start:4d}-{start + len(window):<4d} {sum(window) / len(window):9.1f}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
