"""Kinde's workflow runtime, as far as the sandbox plays it: bundle a workflow folder as Kinde does
(esbuild, es2019 ESM) and run it for one event under Node, with bindings that call the sandbox's own
APIs (``workflow_harness.mjs``).

Kinde runs workflows in goja, not Node; what matters here is the same code, the same event shape and
the same bindings. A workflow folder is what ``migrator lazy init`` writes: ``kinde.json`` and
``kindeSrc/environment/workflows/<name>/<name>Workflow.ts``. Its imports (``@kinde/infrastructure``)
resolve from the folder's own ``node_modules`` or, failing that, from the copy installed beside the
project's workflow (``migrator/lazy/workflow``: ``npm ci`` there).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

EXISTING_PASSWORD_TRIGGER = "user:existing_password_provided"
# K-RT (Kinde's workflows runtime) bounds a run at 30 s; Kinde documents no limit.
RUN_SECONDS = 30.0
_PROJECT_WORKFLOW = Path(str(resources.files("migrator.lazy") / "workflow"))


class WorkflowSetupError(RuntimeError):
    """The folder cannot be bundled or run here (no Node, no esbuild, no workflow); says what to do."""


@dataclass(frozen=True)
class WorkflowOutcome:
    """What the workflow decided: ``completed`` (no refusal), ``refused`` (invalidateFormField),
    ``denied`` (denyAccess) or ``failed`` (an exception: failurePolicy ``stop`` ends the sign-in)."""

    outcome: Literal["completed", "refused", "denied", "failed"]
    message: str | None = None
    error: str | None = None
    log: str = ""


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise WorkflowSetupError("running a Kinde workflow in the sandbox needs Node.js (`node`) on PATH")
    return node


def install_modules(folder: Path = _PROJECT_WORKFLOW) -> Path:
    """The workflow folder with its npm packages (esbuild, @kinde/infrastructure) installed from its lockfile
    (`npm ci`), once: under a file lock, so parallel test workers or demos do not race."""
    if (folder / "node_modules" / ".bin" / "esbuild").exists():
        return folder
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise WorkflowSetupError("running the Kinde workflow needs Node.js 20+: put `node` and `npm` on PATH")
    with open(folder / "package-lock.json", "rb") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if not (folder / "node_modules" / ".bin" / "esbuild").exists():
            command = [npm, "ci", "--no-audit", "--no-fund"]
            done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False, timeout=600)
            if done.returncode != 0:
                raise WorkflowSetupError(
                    f"`npm ci` in {folder} failed (run it there by hand to see why): {done.stderr[-2000:].strip()}"
                )
    return folder


def _entry(folder: Path) -> Path:
    """The workflow for Kinde's existing-password trigger (Kinde allows one workflow per trigger)."""
    root = folder / "kindeSrc" / "environment" / "workflows"
    candidates = sorted([*root.glob("**/*Workflow.ts"), *root.glob("**/*Workflow.js")])
    chosen = [path for path in candidates if "ExistingPasswordProvided" in path.read_text(encoding="utf-8")
              or EXISTING_PASSWORD_TRIGGER in path.read_text(encoding="utf-8")]
    if len(chosen) != 1:
        found = "none" if not chosen else ", ".join(str(p.relative_to(folder)) for p in chosen)
        raise WorkflowSetupError(
            f"{folder}: expected one workflow on {EXISTING_PASSWORD_TRIGGER} under kindeSrc/environment/workflows "
            f"(found {found})"
        )
    return chosen[0]


def _esbuild(folder: Path) -> tuple[Path, list[Path]]:
    """esbuild and the node_modules folders imports resolve from: the folder's own, then the project's."""
    modules = [m for m in (folder / "node_modules", _PROJECT_WORKFLOW / "node_modules") if m.is_dir()]
    for found in modules:
        binary = found / ".bin" / "esbuild"
        if binary.exists():
            return binary, modules
    raise WorkflowSetupError(
        f"bundling {folder} needs esbuild and @kinde/infrastructure: run `npm ci` in {folder} "
        f"(or in {_PROJECT_WORKFLOW})"
    )


def bundle_workflow(folder: Path, out_dir: Path) -> Path:
    """Bundle the folder's existing-password workflow as Kinde does; returns the bundle's path."""
    folder = folder.resolve()
    if not (folder / "kinde.json").is_file():
        raise WorkflowSetupError(f"{folder} is not a Kinde workflow folder (no kinde.json)")
    entry = _entry(folder)
    esbuild, modules = _esbuild(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle = out_dir / f"{entry.stem}.mjs"
    command = [
        str(esbuild), str(entry), "--bundle", "--format=esm", "--target=es2019", "--platform=neutral",
        "--main-fields=module,main", f"--outfile={bundle}", "--log-level=error",
    ]  # fmt: skip
    env = {**os.environ, "NODE_PATH": os.pathsep.join(str(m) for m in modules)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=120)
    if done.returncode != 0:
        raise WorkflowSetupError(f"esbuild could not bundle {entry}: {done.stderr.strip()}")
    return bundle


async def run_workflow(
    bundle: Path, event: dict[str, Any], env: dict[str, tuple[str, bool]], *, seconds: float = RUN_SECONDS
) -> WorkflowOutcome:
    """One run of the bundle for ``event``; ``env`` is Kinde's environment variables (value, is secret).
    Asynchronous: the workflow calls back into the sandbox that is waiting for it."""
    harness = Path(str(resources.files("migrator.sandbox") / "workflow_harness.mjs"))
    payload = {
        "bundle": str(bundle),
        "event": event,
        "env": {key: {"value": value, "isSecret": secret} for key, (value, secret) in env.items()},
        "timeoutMs": int(seconds * 1000),
    }
    process = await asyncio.create_subprocess_exec(
        _node(),
        str(harness),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(json.dumps(payload).encode()), seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        return WorkflowOutcome("failed", error=f"the workflow ran longer than {seconds:g} s")
    log = err.decode("utf-8", "replace")
    lines = out.decode("utf-8", "replace").strip().splitlines()
    try:
        decided = json.loads(lines[-1])
    except (IndexError, ValueError):
        return WorkflowOutcome("failed", error=f"the harness exited {process.returncode} without a result", log=log)
    return WorkflowOutcome(decided["outcome"], decided.get("message"), decided.get("error"), log)
