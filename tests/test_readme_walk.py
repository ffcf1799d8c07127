"""The README, run from top to bottom as a new user would, in an 80-column terminal, against the sandbox.

Every command README shows (in its code blocks, in order) runs; the install lines are CI's (they need a
network), and the ``export`` lines get the sandbox's values. The commands run in-process with rich seeing an
80-column terminal (``TTY_COMPATIBLE=1``, ``COLUMNS=80``); the one that asks for confirmation runs as a real
process on a pseudo-terminal 80 columns wide, and is answered ``y``. Three users fail (another application's
Kinde users hold their phones, as in the main runbook): what README tells the user to run must name each one
and why, and every line the tool lays out must fit the 80 columns.
"""

from __future__ import annotations

import csv
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass
from pathlib import Path

from tests.e2e import cli_env, kinde_state, run_cli
from tests.runbook import FAST, Command, TakenPhones

README = Path(__file__).resolve().parent.parent / "README.md"
WIDTH = 80
CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


@dataclass
class Step:
    line: str  # as README shows it, without its comment

    @property
    def words(self) -> list[str]:
        return self.line.split()

    @property
    def args(self) -> list[str]:
        words = self.words[1:]
        return words[: words.index(">")] if ">" in words else words

    @property
    def redirect(self) -> str | None:
        return self.words[self.words.index(">") + 1] if ">" in self.words else None


def readme_steps(text: str) -> list[Step]:
    """The shell lines of README's fenced and indented code blocks, in order, comments taken off."""
    steps, fenced = [], False
    for raw in text.splitlines():
        if raw.strip().startswith("```"):
            fenced = not fenced
            continue
        if not (fenced or raw.startswith("    ")):
            continue
        line = re.sub(r"\s+#.*$", "", raw.strip())
        if line.startswith(("migrator ", "export ", "python3 -m venv ")):
            steps.append(Step(line))
    return steps


def screen_lines(output: str) -> list[str]:
    """What a terminal shows, line by line: control sequences out, split at carriage returns and newlines."""
    return [line for line in re.split(r"[\r\n]", CONTROL.sub("", output)) if line.strip()]


def run_in_terminal(args: list[str], cwd: Path, env: dict[str, str], answer: str) -> tuple[int, str]:
    """``python -m migrator ARGS`` on a pseudo-terminal WIDTH columns wide; ``answer`` typed at its prompt."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, WIDTH, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "migrator", *args], stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env
    )
    os.close(slave)
    output, answered = b"", False
    try:
        while chunk := os.read(master, 65536):
            output += chunk
            if not answered and b"Proceed?" in output:
                os.write(master, answer.encode())
                answered = True
    except OSError:  # EIO: the process ended and closed the terminal
        pass
    finally:
        os.close(master)
    assert answered, output.decode(errors="replace")
    return process.wait(timeout=300), output.decode(errors="replace")


def test_readme_from_top_to_bottom_in_an_80_column_terminal(sandbox_factory, tmp_path: Path) -> None:
    steps = readme_steps(README.read_text())
    installs = [s for s in steps if s.line.startswith("python3 -m venv ")]
    assert len(installs) == 3  # the two Quickstart lines (CI runs them) and the one in "Real use"
    assert "source .venv/bin/activate" in installs[-1].line  # so the bare `migrator` below is on PATH

    sandbox = sandbox_factory(users=300)
    sandbox.write_export(tmp_path / "users.csv")
    taken = TakenPhones(sandbox)
    taken(Command("migrator run"))  # another application's Kinde users hold three Clerk users' phones
    env = {**cli_env(sandbox, **FAST), "COLUMNS": str(WIDTH), "TTY_COMPATIBLE": "1"}
    exported = {s.words[1].split("=")[0] for s in steps if s.words[0] == "export"}
    assert exported and exported <= set(env)  # every setting README exports, the sandbox sets

    seen: dict[str, str] = {}
    for step in (s for s in steps if s.words[0] == "migrator"):
        if "--yes" not in step.args and step.args[0] == "run" and "--dry-run" not in step.args:
            code, output = run_in_terminal(step.args, tmp_path, {**env, "HOME": str(tmp_path)}, answer="y\n")
            assert "About to write to Kinde" in output
        else:
            result = run_cli(*step.args, cwd=tmp_path, env=env)
            code, output = result.returncode, result.stdout + result.stderr
            if step.redirect:
                (tmp_path / step.redirect).write_text(result.stdout)
        assert "Traceback" not in output, step.line
        runs_with_failures = step.args[0] == "run" and "--dry-run" not in step.args
        assert code == 0 or (runs_with_failures and code == 1), f"{step.line}: exit {code}\n{output}"
        if code == 1:
            assert "Who and why: migrator status" in " ".join(screen_lines(output))
        if not step.redirect:  # a CSV for a file is data, not laid out by the tool
            too_wide = [line for line in screen_lines(output) if len(line) > WIDTH]
            assert not too_wide, f"{step.line}: {too_wide}"
        seen.setdefault(step.line, output)

    status = " ".join(" ".join(screen_lines(seen["migrator status"])).split())  # as read, wrapped or not
    for clerk_id in taken.clerk_ids:  # `migrator status`: who failed, and why
        entry = status[status.index(f"user {clerk_id}") :].split(" user user_")[0]
        assert "already holds an identity of this user" in entry and "USER_ALREADY_EXISTS" in entry
    with (tmp_path / "failed.csv").open() as file:
        rows = {row["clerk_id"]: row for row in csv.DictReader(file)}
    assert set(taken.clerk_ids) <= set(rows)
    assert all(rows[c]["code"] == "USER_ALREADY_EXISTS" and rows[c]["message"] for c in taken.clerk_ids)

    eligible = {sandbox.dataset.user_id(i) for i in range(300) if sandbox.dataset.expected(i)["eligible"]}
    in_kinde = {u["provided_id"] for u in kinde_state(sandbox)["users"]}
    assert eligible - in_kinde == set(taken.clerk_ids)  # everyone else is in Kinde
