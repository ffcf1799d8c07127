"""The Node side of the lazy-migration tests: the workflow's npm dependencies (esbuild,
@kinde/infrastructure), installed from its lockfile once per machine.

`.ci/run` installs them (`npm ci`) before pytest; on a fresh checkout the first test that needs them
runs the same `npm ci`, under a file lock so pytest-xdist's workers do not race. Without Node or npm
the tests fail with a message saying so: nothing is skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.lazy.workflow_files import source
from migrator.sandbox.generator import Dataset
from migrator.sandbox.workflow import WorkflowSetupError, install_modules

WORKFLOW = Path(str(source()))


def ensure_workflow_modules() -> Path:
    """The project's workflow folder, with node_modules installed from package-lock.json."""
    try:
        return install_modules(WORKFLOW)
    except WorkflowSetupError as error:
        pytest.fail(f"the lazy-migration tests run the Kinde workflow under Node: {error}")


def lazy_candidate(dataset: Dataset, i: int) -> bool:
    """A user the lazy path is for: an argon2 digest (Kinde cannot import it), a verified primary email
    (the workflow accepts no other), and nothing that refuses them (banned, locked, two-factor)."""
    user, password = dataset.user(i), dataset.password(i)
    if password is None or not password[0].startswith("argon2"):
        return False
    if user["banned"] or user["locked"] or user["two_factor_enabled"]:
        return False
    primary = user["primary_email_address_id"]
    return any(
        e["id"] == primary and (e.get("verification") or {}).get("status") == "verified"
        for e in user["email_addresses"]
    )
