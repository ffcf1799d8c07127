"""Shared fixtures. Contract fixtures skip (outside CI) when the vendors' specs are absent."""

from __future__ import annotations

import os

import pytest

from tests.contract import CLERK_SERVER, CLERK_SPEC, KINDE_SERVER, KINDE_SPEC, Contract, specs_dir


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


@pytest.fixture
def sandbox_factory():
    """Start sandboxes (``factory(users=..., kinde=KindeSandboxConfig(...), ...)``); all stopped at teardown."""
    from migrator.sandbox.server import Sandbox, SandboxOptions

    started = []

    def factory(**options):
        sandbox = Sandbox(SandboxOptions(**options))
        started.append(sandbox)
        return sandbox

    yield factory
    for sandbox in started:
        sandbox.stop()
