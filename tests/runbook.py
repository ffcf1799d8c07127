"""Run a runbook's commands against the sandbox: every ``$ migrator ...`` line of its ``console`` blocks.

``python -m tests.runbook runbooks/cutover.md`` refreshes the output shown under each command with a
real run (against a fresh sandbox of 1,000 users); the test (``test_runbooks.py``) runs the same
commands and checks each exits as documented (0, unless the line ends with ``# exits N``). A line may set
settings first, as a shell would (``$ KINDE_MANAGEMENT_CLIENT_SECRET=wrong migrator run ...``). What a
runbook's story needs done outside the tool (in Kinde's dashboard, say) is its hook in ``HOOKS``.

The sandbox's Kinde token is granted exactly the scopes the runbook tells the operator to enable
(``granted_scopes``): the main runbook's step 2, plus what another runbook's **Scopes** paragraph adds.

The steps a person does by hand are simulated where they fall: Clerk changes before the first
``migrator sync`` (``change_clerk``), and the files of a ``migrator export --out DIR`` are uploaded to
the sandbox's dashboard import before the next command (``upload_import_files``), in the manifest's order.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from itertools import takewhile
from pathlib import Path

import httpx

from migrator.sandbox.kinde_app import ALL_SCOPES, KindeSandboxConfig
from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import cli_env, kinde_call, run_cli

FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200", "COLUMNS": "100"}
EXITS = re.compile(r"\s+# exits (\d+)$")
ASSIGNMENT = re.compile(r"^[A-Z][A-Z0-9_]*=\S*$")
COMMAND = re.compile(r"^\$ (?:[A-Z][A-Z0-9_]*=\S* )*migrator ")


@dataclass
class Command:
    line: str  # as written, without "$ "

    @property
    def args(self) -> list[str]:
        words = self._words()[1:]
        return words[: words.index(">")] if ">" in words else words

    @property
    def env(self) -> dict[str, str]:
        """``NAME=value`` words before ``migrator``: settings for this command only."""
        words = EXITS.sub("", self.line).split()
        return dict(w.split("=", 1) for w in words[: words.index("migrator")] if ASSIGNMENT.match(w))

    def _words(self) -> list[str]:
        words = EXITS.sub("", self.line).split()
        return words[words.index("migrator") :]

    @property
    def redirect(self) -> str | None:
        """``> FILE`` at the end of the line: the test writes the command's stdout there, as a shell would."""
        words = EXITS.sub("", self.line).split()
        return words[words.index(">") + 1] if ">" in words else None

    @property
    def exit_code(self) -> int:
        found = EXITS.search(self.line)
        return int(found.group(1)) if found else 0


SCOPE = re.compile(r"`([a-z_]+:[a-z_]+)`")
MAIN = "migrate-clerk-to-kinde.md"
STEP_2 = f"{MAIN}#2-create-the-kinde-m2m-application"
STATEMENT = re.compile(r"^\*\*Scopes\*\*: the main runbook's \[step 2\]\(" + re.escape(STEP_2) + r"\)(?P<rest>.*)$")
ADDS = ", plus:"
NOTHING_MORE = ", nothing more"
ADDED = re.compile(r"^- `([a-z_]+:[a-z_]+)`: (\S.*)$")
FORM = (
    f"one paragraph `**Scopes**: the main runbook's [step 2]({STEP_2}){ADDS}` followed by one line "
    f"`- `verb:object`: why` per scope its commands add, or `**Scopes**: the main runbook's [step 2]({STEP_2})"
    f"{NOTHING_MORE}...`"
)


class RunbookError(ValueError):
    """A runbook does not state its scopes in the one form its test reads."""


def main_scopes(path: Path) -> frozenset[str]:
    """The scopes the main runbook tells the operator to enable: every `verb:object` of its list item that
    says **Manage scopes** (up to the next numbered item or heading)."""
    found: set[str] = set()
    inside = False
    for line in path.read_text().splitlines():
        if "**Manage scopes**" in line:
            inside = True
        elif inside and (re.match(r"^\d+\. ", line) or line.startswith("#")):
            inside = False
        if inside:
            found |= set(SCOPE.findall(line))
    if not found:
        raise RunbookError(f"{path.name}: no `verb:object` scope in the list item that says **Manage scopes**")
    return frozenset(found)


def added_scopes(path: Path) -> dict[str, str]:
    """The scopes another runbook adds to the main runbook's step 2, each with its one-line reason, from its
    **Scopes** paragraph. A runbook without that paragraph, with two, or with a line the form does not
    allow is refused: its test must not fall back to granting every scope."""
    lines = path.read_text().splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith("**Scopes**")]
    if len(at) != 1:
        raise RunbookError(f"{path.name}: {len(at)} **Scopes** paragraphs; it must state its scopes in {FORM}")
    stated = STATEMENT.match(lines[at[0]])
    if not stated:
        raise RunbookError(f"{path.name}:{at[0] + 1}: not {FORM}: {lines[at[0]]!r}")
    paragraph = list(takewhile(lambda item: item[1].strip(), enumerate(lines[at[0] + 1 :], start=at[0] + 2)))
    added: dict[str, str] = {}
    if stated["rest"] == ADDS:
        for number, line in paragraph:
            item = ADDED.match(line)
            if not item:
                raise RunbookError(f"{path.name}:{number}: not '- `verb:object`: why' (one line a scope): {line!r}")
            if item[1] in added:
                raise RunbookError(f"{path.name}:{number}: {item[1]} is listed twice")
            added[item[1]] = item[2]
        if not added:
            raise RunbookError(f"{path.name}:{at[0] + 1}: says '{ADDS}' and no list follows it directly")
    elif stated["rest"].startswith(NOTHING_MORE):
        listed = [number for number, line in paragraph if line.startswith("- ")]
        if listed:
            raise RunbookError(f"{path.name}:{listed[0]}: a list under '{NOTHING_MORE}'")
    else:
        raise RunbookError(f"{path.name}:{at[0] + 1}: not {FORM}: {lines[at[0]]!r}")
    again = sorted(set(added) & main_scopes(path.parent / MAIN))
    if again:
        raise RunbookError(f"{path.name}: {', '.join(again)} already in the main runbook's step 2")
    unknown = sorted(set(added) - ALL_SCOPES)
    if unknown:
        raise RunbookError(f"{path.name}: {', '.join(unknown)}: not a Kinde Management API scope")
    return added


def granted_scopes(path: Path) -> frozenset[str]:
    """The Kinde scopes a runbook tells the operator to enable: the main runbook's step 2, and for another
    runbook those plus what its **Scopes** paragraph adds. Its test runs with a token granted exactly these,
    so a runbook and the preflight cannot disagree."""
    if path.name == MAIN:
        return main_scopes(path)
    return main_scopes(path.parent / MAIN) | set(added_scopes(path))


def sandbox_options(path: Path, users: int) -> SandboxOptions:
    """The sandbox a runbook's commands run against: its Kinde token granted exactly the runbook's scopes."""
    return SandboxOptions(users=users, kinde=KindeSandboxConfig(scopes=granted_scopes(path)))


def commands(path: Path) -> list[Command]:
    found, inside = [], False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```console"
        elif inside and COMMAND.match(line):
            found.append(Command(line[2:]))
    return found


def shown_outputs(path: Path) -> list[list[str]]:
    """The output a runbook shows under each of its commands (same order as ``commands``)."""
    shown: list[list[str]] = []
    inside = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```console"
        elif inside and COMMAND.match(line):
            shown.append([])
        elif inside and shown and not line.startswith("$ "):
            shown[-1].append(line)
    return shown


def stale_report_lines(path: Path, results: list[tuple[Command, subprocess.CompletedProcess[str]]]) -> list[str]:
    """``Report (...): PATH`` lines a runbook shows that its command no longer prints: where an operator is
    told to look must be where the tool writes."""
    stale = []
    for shown, (command, result) in zip(shown_outputs(path), results, strict=True):
        printed = {line.strip() for line in (result.stdout + result.stderr).splitlines()}
        stale += [
            f"{command.line}: {line}" for line in shown if line.startswith("Report (") and line.strip() not in printed
        ]
    return stale


def change_clerk(sandbox: Sandbox) -> None:
    """What happens in Clerk between the bulk run and a catch-up: 2 sign-ups, a rename, a ban, a deletion."""
    ids = [sandbox.dataset.user_id(i) for i in (100, 200, 250)]
    body = {"add": 2, "change": {ids[0]: {"first_name": "Ada"}, ids[1]: {"banned": True}}, "delete": [ids[2]]}
    httpx.post(f"{sandbox.clerk_url.removesuffix('/v1')}/_sandbox/users", json=body, timeout=30).raise_for_status()


class TakenPhones:
    """The main runbook's failure: Kinde users another application created hold the phone numbers of three
    Clerk users (the run fails those three, USER_ALREADY_EXISTS); before ``retry-failed`` the operator deletes
    them in Kinde's dashboard (here: the sandbox's ``DELETE /_sandbox/users/{id}``)."""

    def __init__(self, sandbox: Sandbox, workdir: Path | None = None) -> None:
        self.sandbox = sandbox
        self.clerk_ids: list[str] = []  # the Clerk users whose phone was taken
        self.kinde_ids: list[str] = []

    def __call__(self, command: Command) -> None:
        if not self.clerk_ids:
            self._take(3)
        elif command.args[0] == "retry-failed" and self.kinde_ids:
            for kinde_id in self.kinde_ids:
                httpx.delete(f"{self.sandbox.kinde_url}/_sandbox/users/{kinde_id}", timeout=30).raise_for_status()
            self.kinde_ids = []

    def _take(self, count: int) -> None:
        dataset = self.sandbox.dataset
        for i in range(dataset.n):
            expected = dataset.expected(i)
            if len(self.clerk_ids) == count:
                return
            if expected["eligible"] and expected["email"] and expected["phone"]:
                identity = {"type": "phone", "details": {"phone": expected["phone"]}}
                body = {"profile": {"given_name": "Other app"}, "identities": [identity]}
                answer = kinde_call(self.sandbox, "POST", "/api/v1/user", json=body)
                answer.raise_for_status()
                self.clerk_ids.append(dataset.user_id(i))
                self.kinde_ids.append(answer.json()["id"])


class LazySignIns:
    """The lazy-migration runbook's window: the folder `lazy init` wrote is pushed and synced to Kinde
    (``Sandbox.sync_workflow``), then, before ``lazy status``, some users of the cohort (the run's
    ``lazy.csv``) sign in with their old Clerk password, and one types a wrong one."""

    SIGN_INS = 5

    def __init__(self, sandbox: Sandbox, workdir: Path) -> None:
        self.sandbox, self.workdir = sandbox, workdir
        self.moved: list[str] = []  # the Clerk ids that signed in (and so moved to Kinde)
        self.done = False

    def __call__(self, command: Command) -> None:
        if self.done or command.args[:2] != ["lazy", "status"]:
            return
        from tests.workflow_node import ensure_workflow_modules

        self.done = True
        ensure_workflow_modules()
        self.sandbox.sync_workflow(self.workdir / "kinde-workflows")
        cohort = sorted((self.workdir / ".migrator" / "runs").glob("*/lazy.csv"))
        assert cohort, "the run with --unimportable-passwords lazy wrote no lazy.csv"
        with cohort[-1].open(newline="") as file:
            rows = list(csv.DictReader(file))
        for row in rows[: self.SIGN_INS + 1]:
            password = self.sandbox.dataset.clerk_password(row["clerk_id"])
            assert password is not None, row["clerk_id"]
            wrong = len(self.moved) == self.SIGN_INS
            answer = httpx.post(
                f"{self.sandbox.kinde_url}/_sandbox/sign-in",
                json={"email": row["email"], "password": "not-my-password-1" if wrong else password},
                timeout=60,
            )
            assert answer.status_code == (401 if wrong else 200), answer.text
            if not wrong:
                self.moved.append(row["clerk_id"])


HOOKS: dict[str, Callable[[Sandbox, Path], Callable[[Command], None]]] = {
    "migrate-clerk-to-kinde.md": TakenPhones,
    "lazy-migration.md": LazySignIns,
}


IMPORT_FORMATS = {"kinde-users": None, "fusionauth-users": "fusionauth", "kinde-memberships": "kinde-csv"}


def upload_import_files(sandbox: Sandbox, folder: Path) -> None:
    """Kinde > Organizations > Import, then Users > Import users, file by file as the manifest lists them."""
    manifest = json.loads((folder / "manifest.json").read_text())
    uploads = [("organizations.csv", "organizations")]
    for item in manifest["files"]:
        stem = item["name"].rsplit("-", 1)[0]
        if stem in IMPORT_FORMATS:
            uploads.append((item["name"], IMPORT_FORMATS[stem] or manifest["format"]))
    for name, fmt in uploads:
        response = httpx.post(
            f"{sandbox.kinde_url}/_sandbox/import", params={"format": fmt}, content=(folder / name).read_bytes()
        )
        response.raise_for_status()
        errors = response.json()["errors"]
        assert errors == [], (name, errors[:3])


def export_folder(command: Command) -> str | None:
    """The ``--out`` of a ``migrator export`` that writes files (not ``--dry-run``)."""
    args = command.args
    if args[0] != "export" or "--dry-run" in args or "--out" not in args:
        return None
    return args[args.index("--out") + 1]


def run_all(
    path: Path, sandbox: Sandbox, workdir: Path, before: Callable[[Command], None] = lambda c: None
) -> list[tuple[Command, subprocess.CompletedProcess[str]]]:
    sandbox.write_export(workdir / "users.csv")
    results = []
    changed, to_upload = False, None
    for command in commands(path):
        if to_upload is not None and command.args[0] != "export":
            upload_import_files(sandbox, workdir / to_upload)  # the dashboard import, done by hand in real life
            to_upload = None
        if command.args[0] == "sync" and not changed:
            change_clerk(sandbox)
            sandbox.write_export(workdir / "users-final.csv")
            changed = True
        before(command)
        result = run_cli(*command.args, cwd=workdir, env=cli_env(sandbox, **FAST, **command.env))
        if command.redirect:
            (workdir / command.redirect).write_text(result.stdout)
        to_upload = export_folder(command) or to_upload
        results.append((command, result))
    return results


def refresh(path: Path, results: list[tuple[Command, subprocess.CompletedProcess[str]]]) -> None:
    """Put each command's real output (stdout, then stderr) under it in the file."""
    outputs = {id(c): (r.stdout + r.stderr).rstrip() for c, r in results}
    lines, out, inside, skipping = path.read_text().splitlines(), [], False, False
    queue = [c for c, _ in results]
    for line in lines:
        if line.startswith("```"):
            inside, skipping = line.strip() == "```console", False
            out.append(line)
        elif inside and COMMAND.match(line):
            command = queue.pop(0)
            out.extend([line, *outputs[id(command)].splitlines()])
            skipping = True
        elif not skipping:
            out.append(line)
    path.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    import tempfile

    for name in sys.argv[1:]:
        with Sandbox(sandbox_options(Path(name), 1000)) as box, tempfile.TemporaryDirectory() as tmp:
            hook = HOOKS.get(Path(name).name, lambda *_: lambda c: None)(box, Path(tmp))
            refresh(Path(name), run_all(Path(name), box, Path(tmp), hook))
