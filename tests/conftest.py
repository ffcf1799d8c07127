"""Shared fixtures. Contract fixtures skip (outside CI) when the vendors' specs are absent."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import settings

from tests.contract import CLERK_SERVER, CLERK_SPEC, KINDE_SERVER, KINDE_SPEC, Contract, specs_dir

# No timed assertions in the suite: hypothesis's per-example deadline fails a property test on a busy machine.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


def _contract(name: str, server: str) -> Contract:
    path = specs_dir() / name
    if not path.is_file():
        message = (
            f"contract test needs the vendor spec {name}: put it in {specs_dir()} "
            "or point $MIGRATOR_SPECS_DIR at the folder holding it"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Contract(name, server)


@pytest.fixture(scope="session")
def clerk_spec() -> Contract:
    return _contract(CLERK_SPEC, CLERK_SERVER)


@pytest.fixture(scope="session")
def kinde_spec() -> Contract:
    return _contract(KINDE_SPEC, KINDE_SERVER)


@pytest.fixture(scope="session")
def sandbox_stopper() -> Iterator[Callable[[Any], None]]:
    """Stops sandboxes in the background: uvicorn notices a stop at its next 0.1 s tick and lingers
    0.1 s more, per server, and no test looks at a sandbox after its teardown. Every stop is waited
    for, and a failed one raised, at the end of the session."""
    with ThreadPoolExecutor(thread_name_prefix="sandbox-stop") as pool:
        stops: list[Future[None]] = []
        yield lambda sandbox: stops.append(pool.submit(sandbox.stop))
        for stop in stops:
            stop.result()


@pytest.fixture
def sandbox_factory(sandbox_stopper):
    """Start sandboxes (``factory(users=..., kinde=KindeSandboxConfig(...), ...)``); all stopped at teardown."""
    from migrator.sandbox.server import Sandbox, SandboxOptions

    started = []

    def factory(**options):
        sandbox = Sandbox(SandboxOptions(**options))
        started.append(sandbox)
        return sandbox

    yield factory
    for sandbox in started:
        sandbox_stopper(sandbox)


# Modules whose tests are independent of each other (each starts its own sandbox) and long: under
# pytest-xdist each of their tests is a unit of work of its own, so the two workers share them.
SPREAD_MODULES = frozenset({"tests/test_e2e_resume.py"})


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``-n 2``: a test module is one unit of work, so a module-scoped fixture (a whole migration,
    say) is built once, not once per worker; the tests of SPREAD_MODULES are units of their own.

    Units go out in collection order (the long end-to-end modules come first). Another ``--dist``
    than ``load`` (the one ``-n`` implies) is left to pytest-xdist."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return nodeid if module in SPREAD_MODULES else module

    config.option.loadscopereorder = False
    return ModuleScheduling(config, log)
