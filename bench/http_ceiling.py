"""What one side can do alone: requests/s of the migrator's HTTP stack against the sandbox Kinde.

Not one of the issue's benchmarks: the tool for finding out what limits the unthrottled one. The
sandbox (no limits) runs in its own process; this process sends ``--requests`` authenticated
``GET /api/v1/roles`` with ``--concurrency`` tasks, either through the migrator's whole stack
(``KindeClient.call``: limiter, tenacity, error mapping; ``--mode client``) or through bare
``httpx.AsyncClient`` (``--mode httpx``). Prints requests/s, this process's CPU per request and the
sandbox's.

    .venv/bin/python bench/http_ceiling.py --mode client --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, sandbox, sandbox_settings

from migrator.connect import connect


async def drive(env: dict[str, str], mode: str, requests: int, concurrency: int) -> float:
    settings = sandbox_settings(env, kinde_max_rps=1e6, kinde_initial_rps=1e6, concurrency=concurrency)
    async with connect(settings) as (_clerk, kinde):  # the transport every command uses (connect.api_transport)
        token = await kinde.tokens.token()
        left = requests

        async def worker() -> None:
            nonlocal left
            headers = {"Authorization": f"Bearer {token}"}
            while left > 0:
                left -= 1
                if mode == "client":
                    await kinde.call("GET", "/api/v1/roles", scope="read:roles")
                else:
                    response = await kinde.http.get("/api/v1/roles", headers=headers)
                    response.json()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("client", "httpx"), default="client")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    print(f"# machine: {machine()}")
    with sandbox(users=100) as box:
        sandbox_cpu = box.cpu_seconds()
        before = resource.getrusage(resource.RUSAGE_SELF)
        wall = asyncio.run(drive(box.env, args.mode, args.requests, args.concurrency))
        after = resource.getrusage(resource.RUSAGE_SELF)
        sandbox_cpu = box.cpu_seconds() - sandbox_cpu
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    n = args.requests
    print(f"{args.mode}, concurrency {args.concurrency}: {n} requests in {wall:.2f} s = {n / wall:,.0f} req/s")
    print(f"client CPU  {cpu:.2f} s = {1e6 * cpu / n:.0f} us per request")
    print(f"sandbox CPU {sandbox_cpu:.2f} s = {1e6 * sandbox_cpu / n:.0f} us per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
