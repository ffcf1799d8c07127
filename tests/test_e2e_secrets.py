"""No secret reaches disk or the terminal.

Password digests live only in memory and in the request to Kinde. This test drives the real CLI
through a dry run, a run, ``status``, runs that fail on a wrong Kinde secret or Clerk key, and a run
against faulty APIs (so retry messages are printed). Then it scans everything printed and every
file the migrator wrote for each digest (and the hash Kinde received), both API secrets and every
access token the Kinde sandbox issued.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from migrator import passwords
from migrator.models import PasswordImport
from migrator.sandbox.faults import FaultProfile
from migrator.sandbox.hashing import CLERK_HASHERS
from migrator.sandbox.server import Sandbox
from tests.e2e import cli_env, run_cli_process

USERS = 150
EVERY_HASHER = dict.fromkeys(CLERK_HASHERS, 1.0)
FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200", "SALTED_HASH_SALT_POSITION": "prefix"}
# The "chaos" profile's faults without its latency, and with few 429s (each one pauses a second).
FAULTY = FaultProfile(error_rate=0.05, rate_limit_rate=0.005, reset_rate=0.02, ambiguous_write_rate=0.02)
WRONG_KINDE_SECRET = "wrong-kinde-secret-Zq8uVt3kLm0pR7sW"
WRONG_CLERK_KEY = "sk_test_wrong_Hn4cXe9bTg2yJq6aPd1f"
EXIT_STOPPED = 3  # stopped by the source or the target (errors.py)


@dataclass
class Capture:
    """Everything the migrator printed, by command."""

    outputs: dict[str, bytes] = field(default_factory=dict)

    def run(self, name: str, *args: str, cwd: Path, env: dict[str, str], expect: set[int]) -> str:
        """Run the CLI; returns all it printed (progress goes to stdout without --json)."""
        result = run_cli_process(*args, cwd=cwd, env=env)
        self.outputs[f"{name} (stdout)"] = result.stdout.encode()
        self.outputs[f"{name} (stderr)"] = result.stderr.encode()
        assert result.returncode in expect, f"{name} exited {result.returncode}: {result.stderr[-2000:]}"
        return result.stdout + result.stderr


def files_under(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def leaks(blobs: dict[str, bytes], secrets: dict[str, str]) -> list[str]:
    """``"<secret> in <blob>"`` for every secret found, also when output wrapping split it."""
    found = []
    for name, blob in blobs.items():
        unwrapped = re.sub(rb"\s+", b"", blob)
        for label, secret in secrets.items():
            needle = secret.encode()
            if needle in blob or needle in unwrapped:
                found.append(f"{label} in {name}")
    return found


def digest_secrets(export: Path) -> dict[str, str]:
    """Every digest of the export, and the hash each importable one becomes in Kinde's request."""
    found = {}
    with export.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if not row["password_digest"]:
                continue
            found[f"digest of {row['id']}"] = row["password_digest"]
            translated = passwords.translate(row["password_hasher"], row["password_digest"], salt_position="prefix")
            if isinstance(translated, PasswordImport):
                found[f"Kinde hash of {row['id']}"] = translated.fields["hashed_password"]
    return found


def sandbox_secrets(name: str, sandbox: Sandbox) -> dict[str, str]:
    store = sandbox.kinde_app.state.store
    with store.lock:
        tokens = list(store.tokens)
    found = {
        f"{name} Clerk secret key": sandbox.secret_key,
        f"{name} Kinde client secret": sandbox.kinde_config.client_secret,
    }
    found.update({f"{name} access token {n}": token for n, token in enumerate(tokens, 1)})
    return found


def test_no_secret_is_printed_or_written(sandbox_factory: Callable[..., Sandbox], tmp_path: Path) -> None:
    clean = sandbox_factory(users=USERS, hasher_weights=EVERY_HASHER)
    faulty = sandbox_factory(users=USERS, hasher_weights=EVERY_HASHER, clerk_faults=FAULTY, kinde_faults=FAULTY)
    inputs, work = tmp_path / "input", tmp_path / "work"
    inputs.mkdir()
    work.mkdir()
    export = inputs / "clerk-export.csv"
    clean.write_export(export)
    capture = Capture()
    env = cli_env(clean, **FAST, CLERK_EXPORT=str(export))

    capture.run("dry run", "run", "--dry-run", "--json", cwd=work, env=env, expect={0})
    capture.run("run", "run", "--yes", cwd=work, env=env, expect={0})
    capture.run("status", "status", cwd=work, env=env, expect={0})
    capture.run("status --json", "status", "--json", cwd=work, env=env, expect={0})
    printed = capture.run(
        "wrong Kinde secret",
        "run",
        "--yes",
        cwd=work,
        env={**env, "KINDE_MANAGEMENT_CLIENT_SECRET": WRONG_KINDE_SECRET},
        expect={EXIT_STOPPED},
    )
    assert "KINDE_MANAGEMENT_CLIENT_SECRET" in printed
    printed = capture.run(
        "wrong Clerk key",
        "run",
        "--yes",
        "--json",
        cwd=work,
        env={**env, "CLERK_SECRET_KEY": WRONG_CLERK_KEY},
        expect={EXIT_STOPPED},
    )
    assert "CLERK_SECRET_KEY" in printed
    printed = capture.run(  # -v: each retry and reconciliation printed, so their messages are searched too
        "faulty run",
        "-v",
        "run",
        "--yes",
        cwd=work,
        env=cli_env(faulty, **FAST, CLERK_EXPORT=str(export), MIGRATE_ORGANIZATIONS="false"),
        expect={0, 1},
    )
    assert re.search(r"(Kinde|Clerk): retry \d+ after", printed), "the faulty run printed no retry message"

    secrets = {
        **digest_secrets(export),
        **sandbox_secrets("clean", clean),
        **sandbox_secrets("faulty", faulty),
        "wrong Kinde secret": WRONG_KINDE_SECRET,
        "wrong Clerk key": WRONG_CLERK_KEY,
    }
    assert sum(label.startswith("digest of") for label in secrets) > USERS // 2
    # dry run, run, faulty run (a wrong Clerk key stops before Kinde is asked for a token: Clerk is checked first)
    assert sum(" access token " in label for label in secrets) >= 3
    assert min(map(len, secrets.values())) >= 20  # long enough that a match is never a coincidence

    written = files_under(work)
    assert {".migrator/journal.sqlite3", ".migrator/runs/2/password-resets.csv"} <= set(written)
    assert clean.dataset.user_id(0).encode() in written[".migrator/journal.sqlite3"]  # the scan reads its content
    assert leaks({**capture.outputs, **written}, secrets) == []

    control = tmp_path / "control"  # the same scan, on a file planted with a secret, wrapped as a terminal would
    control.mkdir()
    kinde_secret = clean.kinde_config.client_secret
    (control / "planted.log").write_text(f"secret: {kinde_secret[:10]}\n        {kinde_secret[10:]}\n")
    assert leaks(files_under(control), secrets) == ["clean Kinde client secret in planted.log"]


def test_the_scan_finds_a_secret_plain_or_wrapped() -> None:
    secret = "sandbox-secret-Qm3vX8kR2tLp9wYz4nBc"
    blobs = {"plain": f"token {secret}\n".encode(), "wrapped": f"{secret[:12]}\n  {secret[12:]}".encode()}
    assert leaks({**blobs, "clean": b"nothing here"}, {"secret": secret}) == ["secret in plain", "secret in wrapped"]
