"""The workflow folder ``migrator lazy init`` writes: the project's Kinde workflow (package data in
``workflow/``), with this deployment's settings in its ``settings.json`` and never a secret (the Clerk
key is a Kinde environment variable marked sensitive, read by the workflow at run time)."""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from migrator.errors import ConfigError

WORKFLOW_NAME = "clerkLazyMigration"
SETTINGS_FILE = Path("kindeSrc/environment/workflows") / WORKFLOW_NAME / "settings.json"
# Made by npm and esbuild where the workflow is developed; never part of what Kinde syncs from.
_NOT_SHIPPED = frozenset({"node_modules", "dist"})
# The Kinde environment variables the workflow reads (name, secret?, what it holds).
ENVIRONMENT_VARIABLES: tuple[tuple[str, bool, str], ...] = (
    ("CLERK_SECRET_KEY", True, "the Clerk Backend API secret key (revoke it when the window closes)"),
    ("KINDE_WF_M2M_CLIENT_ID", False, "an M2M application with create:users, update:user_passwords, read:users"),
    ("KINDE_WF_M2M_CLIENT_SECRET", True, "that M2M application's secret"),
)


def source() -> Traversable:
    return resources.files("migrator.lazy") / "workflow"


def _copy(node: Traversable, target: Path, written: list[Path]) -> None:
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name in _NOT_SHIPPED or child.name == "__pycache__":
            continue
        if child.is_dir():
            (target / child.name).mkdir()
            _copy(child, target / child.name, written)
        else:
            (target / child.name).write_bytes(child.read_bytes())
            written.append(target / child.name)


def write_workflow(out: Path, *, clerk_api_url: str, users_in_kinde: bool = False) -> list[Path]:
    """Write the folder to ``out`` (absent or empty); returns the files written."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists and is not an empty directory: choose a new folder for the workflow")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    _copy(source(), out, written)
    settings_path = out / SETTINGS_FILE
    settings = json.loads(settings_path.read_text(encoding="utf-8"))
    settings["clerk_api_url"] = clerk_api_url
    settings["users_in_kinde"] = users_in_kinde
    settings_path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return written
