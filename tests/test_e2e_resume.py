"""Kill, resume, retry: the CLI against the sandbox (a real process where it is killed), proving no user
is created twice.

Kill points are chosen by watching progress (the journal, the sandbox's store), never by sleeping.
The random kill points come from a seed printed at the start of each test (shown by pytest when the
test fails); set ``RESUME_TEST_SEED`` to replay one.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from migrator.models import PasswordImport
from migrator.passwords import translate
from migrator.sandbox.faults import FaultProfile
from migrator.sandbox.server import Sandbox
from tests.e2e import cli_env, kinde_state, run_cli, start_cli, write_requests

FAST_KINDE = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200"}
JOURNAL = Path(".migrator") / "journal.sqlite3"
SAFETY_DEADLINE = 150.0  # seconds a kill point may take to come; only guards against a hang


@pytest.fixture
def rng() -> random.Random:
    """The random source of kill points; its seed is printed, so pytest shows it on failure."""
    seed = int(os.environ.get("RESUME_TEST_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"kill points: RESUME_TEST_SEED={seed}")
    return random.Random(seed)


# -- the world: a sandbox, its export, a directory for the CLI --------------------------------------------


@dataclass
class Expectations:
    """What a correct migration of the sandbox's dataset leaves in Kinde (``Dataset.expected``)."""

    eligible: dict[str, dict[str, Any]]  # clerk id -> expected(i)
    importable: set[str]  # a password Kinde can verify
    resets: set[str]  # a password Kinde cannot verify: reset requested

    @classmethod
    def of(cls, sandbox: Sandbox) -> Expectations:
        dataset = sandbox.dataset
        eligible, importable, resets = {}, set(), set()
        for i in range(dataset.n):
            expected = dataset.expected(i)
            if not expected["eligible"]:
                continue
            clerk_id = dataset.user_id(i)
            eligible[clerk_id] = expected
            secret = dataset.password(i)
            if secret and isinstance(translate(*secret), PasswordImport):
                importable.add(clerk_id)
            elif dataset.user(i).get("password_enabled"):
                resets.add(clerk_id)
        return cls(eligible, importable, resets)


@dataclass
class World:
    """A running sandbox, its CSV export, and the directory the CLI runs in (``./.migrator`` is there)."""

    sandbox: Sandbox
    cwd: Path
    env: dict[str, str]
    export: Path
    expect: Expectations = field(init=False)

    def __post_init__(self) -> None:
        self.expect = Expectations.of(self.sandbox)

    @property
    def journal(self) -> Path:
        return self.cwd / JOURNAL

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=self.cwd, env={**self.env, **env})

    def background(self, *args: str, **env: str) -> Background:
        return Background(start_cli(*args, cwd=self.cwd, env={**self.env, **env}))


@pytest.fixture
def make_world(sandbox_factory, tmp_path: Path) -> Callable[..., World]:
    def make(users: int, **options: Any) -> World:
        sandbox = sandbox_factory(users=users, **options)
        export = tmp_path / "clerk-export.csv"
        sandbox.write_export(export)
        env = cli_env(sandbox, CLERK_EXPORT=str(export), **FAST_KINDE)
        return World(sandbox, tmp_path, env, export)

    return make


class Background:
    """The CLI in the background; its output is drained so it never blocks on a full pipe."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=_drain, args=(stream, sink), daemon=True)
            for stream, sink in ((proc.stdout, self._out), (proc.stderr, self._err))
        ]
        for reader in self._readers:
            reader.start()

    def output(self) -> str:
        return "".join(self._out) + "\n--- stderr ---\n" + "".join(self._err)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        for reader in self._readers:
            reader.join()

    def kill_when(self, ready: Callable[[], bool], what: str) -> None:
        """SIGKILL as soon as ``ready()`` holds; fail if the CLI ends first."""
        deadline = time.monotonic() + SAFETY_DEADLINE
        try:
            while not ready():
                if self.proc.poll() is not None:
                    pytest.fail(
                        f"the CLI ended ({self.proc.returncode}) before the kill point: {what}\n{self.output()}"
                    )
                if time.monotonic() > deadline:
                    pytest.fail(f"no kill point within {SAFETY_DEADLINE}s: {what}\n{self.output()}")
                time.sleep(0.005)
        finally:
            self.kill()


def _drain(stream: IO[str] | None, sink: list[str]) -> None:
    if stream is not None:
        for line in stream:
            sink.append(line)


# -- observing progress --------------------------------------------------------------------------------


@contextlib.contextmanager
def read_journal(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection: it can never checkpoint the WAL away or change the journal."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        yield db
    finally:
        db.close()


def fetch_progress(world: World) -> tuple[int, bool]:
    """(users staged by the latest run, whether its fetch is done)."""
    if not world.journal.exists():
        return 0, False
    try:
        with read_journal(world.journal) as db:
            run = db.execute("SELECT id, fetch_done FROM runs ORDER BY id DESC LIMIT 1").fetchone()
            if run is None:
                return 0, False
            staged = db.execute("SELECT COUNT(*) FROM users WHERE run_id = ?", (run[0],)).fetchone()[0]
            return staged, bool(run[1])
    except sqlite3.OperationalError:  # the CLI is still creating the schema
        return 0, False


def journal_rows(world: World) -> dict[str, sqlite3.Row]:
    """The users of run 1, by Clerk id."""
    with read_journal(world.journal) as db:
        db.row_factory = sqlite3.Row
        return {row["clerk_id"]: row for row in db.execute("SELECT * FROM users WHERE run_id = 1")}


def kinde_users(world: World) -> int:
    """Users in the running sandbox's Kinde: read from its store, cheap enough to poll often."""
    store = world.sandbox.kinde_app.state.store
    with store.lock:
        return len(store.users)


def kinde_requests(world: World, route: str) -> int:
    """Requests the running sandbox's Kinde has answered on ``route`` (e.g. ``GET /api/v1/users``)."""
    store = world.sandbox.kinde_app.state.store
    with store.lock:
        return sum(store.requests.by_route.get(route, {}).values())


def awaiting_password(world: World) -> int:
    """Users created in Kinde whose password (one Kinde can verify) is not set yet."""
    store = world.sandbox.kinde_app.state.store
    importable = world.expect.importable
    with store.lock:
        return sum(1 for user in store.users.values() if user.provided_id in importable and user.password is None)


# -- the invariants ------------------------------------------------------------------------------------


def assert_migrated_exactly_once(world: World, state: dict[str, Any]) -> None:
    """Every eligible user exists once, with its identity, password, reset and suspension as expected."""
    expect = world.expect
    by_provided: dict[str, list[dict[str, Any]]] = {}
    for user in state["users"]:
        by_provided.setdefault(user["provided_id"], []).append(user)
    assert state["duplicate_creations"] == []
    assert state["creations_by_provided_id"] == dict.fromkeys(expect.eligible, 1)
    assert {pid: len(users) for pid, users in by_provided.items()} == dict.fromkeys(expect.eligible, 1)
    # One successful create per user, and not one "already exists": no create was ever re-sent blindly.
    # (A 500 is a request cut in half by a kill: the sandbox could not read its body; nothing was created.)
    creates = state["requests"]["by_route"]["POST /api/v1/user"]["by_status"]
    assert creates["200"] == len(expect.eligible)
    assert {status for status in creates if status != "200" and not status.startswith("5")} == set(), creates

    wrong = []
    for clerk_id, expected in expect.eligible.items():
        user = by_provided[clerk_id][0]
        emails = [i["value"] for i in user["identities"] if i["type"] == "email"]
        if expected["email"] and emails[:1] != [expected["email"]]:
            wrong.append((clerk_id, "email", emails))
        if (user["password_method"] is not None) != (clerk_id in expect.importable):
            wrong.append((clerk_id, "password_method", user["password_method"]))
        if user["is_password_reset_requested"] != (clerk_id in expect.resets):
            wrong.append((clerk_id, "is_password_reset_requested", user["is_password_reset_requested"]))
        if user["is_suspended"] != expected["banned"]:
            wrong.append((clerk_id, "is_suspended", user["is_suspended"]))
    assert wrong == []


def assert_bcrypt_users_sign_in(world: World) -> None:
    """Every bcrypt user signs in with the Clerk plaintext, and a wrong password is refused."""
    dataset = world.sandbox.dataset
    url = f"{world.sandbox.kinde_url}/_sandbox/sign-in"
    users = [
        (expected["email"], dataset.plaintext(clerk_id))
        for clerk_id, expected in world.expect.eligible.items()
        if expected["hasher"] == "bcrypt" and expected["email"]
    ]
    assert len(users) > len(world.expect.eligible) // 3
    failures = []
    with httpx.Client(timeout=30) as http:
        for email, plaintext in users:
            good = http.post(url, json={"email": email, "password": plaintext}).status_code
            bad = http.post(url, json={"email": email, "password": plaintext + "!"}).status_code
            if (good, bad) != (200, 401):
                failures.append((email, good, bad))
    assert failures == []


# -- the tests -----------------------------------------------------------------------------------------


def test_killed_at_random_points_then_resumed_creates_every_user_exactly_once(make_world, rng) -> None:
    world = make_world(5000)
    total, eligible = world.sandbox.dataset.n, len(world.expect.eligible)
    slow_fetch = {"CLERK_MAX_RPS": "4"}  # ten pages at 4 requests/s: a kill can land inside the fetch
    unjournaled_creates: list[int] = []  # per kill: users in Kinde the journal did not know were created
    left_awaiting: list[int] = []  # per kill: users created whose password was not set yet

    def after_load_kill() -> None:
        assert 0 < kinde_users(world) < eligible
        rows = journal_rows(world)
        in_kinde = {user["provided_id"] for user in kinde_state(world.sandbox)["users"]}
        unjournaled_creates.append(sum(1 for cid in in_kinde if rows[cid]["created"] == "pending"))
        left_awaiting.append(awaiting_password(world))

    # 1. The run, killed during the fetch.
    staged_at = rng.randrange(1000, 4000)
    world.background("run", "--yes", **slow_fetch).kill_when(
        lambda: fetch_progress(world)[0] >= staged_at, f"during the fetch, at {staged_at} users staged"
    )
    staged, fetch_done = fetch_progress(world)
    assert 0 < staged < total and not fetch_done
    assert kinde_users(world) == 0

    # 2. A resume (finishing the fetch), killed during the creates.
    created_at = rng.randrange(eligible // 10, eligible * 3 // 10)
    world.background("resume", "--yes", **slow_fetch).kill_when(
        lambda: kinde_users(world) >= created_at, f"during the creates, at {created_at} users"
    )
    assert fetch_progress(world) == (total, True)
    after_load_kill()

    # 3. A resume killed while it reconciles by lookup (slowed so the kill lands inside it).
    writes = write_requests(kinde_state(world.sandbox))
    lookups = kinde_requests(world, "GET /api/v1/users")
    world.background("resume", "--yes", KINDE_MAX_RPS="20", KINDE_INITIAL_RPS="20").kill_when(
        lambda: kinde_requests(world, "GET /api/v1/users") > lookups, "during the reconciling lookup"
    )
    rows = journal_rows(world).values()
    assert any(row["lookup"] == "recheck" for row in rows)
    assert write_requests(kinde_state(world.sandbox)) == writes  # it looks before it writes

    # 4 and 5. Resumes killed between a create and its password, further on each time.
    for _ in range(2):
        threshold = kinde_users(world) + rng.randrange(eligible // 10, eligible // 5)
        world.background("resume", "--yes").kill_when(
            lambda at=threshold: kinde_users(world) >= at and awaiting_password(world) >= 3,
            f"between a create and its password, past {threshold} users",
        )
        after_load_kill()

    print(f"kills left users awaiting their password {left_awaiting}, unjournaled creates {unjournaled_creates}")
    assert any(left_awaiting), left_awaiting
    assert any(unjournaled_creates), unjournaled_creates

    # The last resume runs to the end.
    done = world.cli("resume", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    state = kinde_state(world.sandbox)
    assert_migrated_exactly_once(world, state)
    status = json.loads(world.cli("status", "--json").stdout)
    assert status["steps"]["state"] == {"done": eligible, "skipped": total - eligible}
    assert status["steps"]["created"] == {"created": eligible, "n/a": total - eligible}
    assert status["failures"] == []
    assert_bcrypt_users_sign_in(world)


def test_ambiguous_writes_and_server_errors_never_duplicate_a_user(make_world, rng) -> None:
    world = make_world(2000, kinde_faults=FaultProfile(ambiguous_write_rate=0.02, error_rate=0.05))
    eligible = len(world.expect.eligible)
    created_at = rng.randrange(eligible // 4, eligible * 3 // 4)
    world.background("run", "--yes").kill_when(
        lambda: kinde_users(world) >= created_at, f"during the creates, at {created_at} users"
    )
    done = world.cli("resume", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr

    faults = httpx.get(f"{world.sandbox.kinde_url}/_sandbox/faults", timeout=30).json()["stats"]
    assert faults["ambiguous_write"] > 0 and faults["error_500"] + faults["error_502"] + faults["error_503"] > 0
    state = kinde_state(world.sandbox)
    assert_migrated_exactly_once(world, state)
    assert_bcrypt_users_sign_in(world)

    again = world.cli("resume", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert write_requests(kinde_state(world.sandbox)) == write_requests(state)


def test_resume_after_a_completed_run_sends_no_request_to_the_api(make_world) -> None:
    world = make_world(300)
    first = world.cli("run", "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "run 1 started" in first.stdout
    before = kinde_state(world.sandbox)

    for command in (("resume", "--yes"), ("retry-failed", "1", "--yes")):
        result = world.cli(*command)
        assert result.returncode == 0, (command, result.stdout + result.stderr)

    after = kinde_state(world.sandbox)
    assert write_requests(after) == write_requests(before)
    assert route_deltas(before, after) == {}  # answered from the journal: nothing connects


def test_status_groups_failures_and_retry_failed_redoes_only_those_users(make_world) -> None:
    world = make_world(300)
    expect = world.expect
    # Three users whose username another Kinde user already holds: their creates fail.
    blocked = [
        clerk_id
        for clerk_id, expected in expect.eligible.items()
        if expected["email"] and expected["username"] and clerk_id in expect.importable and not expected["banned"]
    ][:3]
    assert len(blocked) == 3
    with kinde_admin(world.sandbox) as admin:
        holders = [
            admin.post(
                "/api/v1/user",
                json={
                    "provided_id": f"other-system-{n}",
                    "identities": [{"type": "username", "details": {"username": expect.eligible[cid]["username"]}}],
                },
            ).json()["id"]
            for n, cid in enumerate(blocked)
        ]
        first = world.cli("run", "--yes")
        assert first.returncode == 1, first.stdout + first.stderr
        assert "migrator retry-failed 1" in first.stdout

        status = json.loads(world.cli("status", "--json").stdout)
        eligible, skipped = len(expect.eligible), world.sandbox.dataset.n - len(expect.eligible)
        assert status["run"]["status"] == "completed-with-failures"
        assert status["steps"]["state"] == {"done": eligible - 3, "failed": 3, "skipped": skipped}
        assert status["steps"]["created"] == {"created": eligible - 3, "pending": 3, "n/a": skipped}
        assert [(f["code"], f["users"]) for f in status["failures"]] == [("USER_ALREADY_EXISTS", 3)]
        assert "failed: 3 users [USER_ALREADY_EXISTS], 3 different messages" in world.cli("status").stdout
        rows = journal_rows(world)
        assert {cid for cid, row in rows.items() if row["state"] == "failed"} == set(blocked)
        assert all(rows[cid]["error_retryable"] == 0 for cid in blocked)

        # A fourth user whose create went through although the journal never heard of it.
        lost = next(
            cid
            for cid in expect.importable
            if rows[cid]["state"] == "done" and rows[cid]["flags"] == "n/a" and cid not in blocked
        )
        with contextlib.closing(sqlite3.connect(world.journal)) as db, db:
            db.execute(
                "UPDATE users SET state = 'failed', lookup = 'absent', created = 'pending', password = 'pending',"
                " kinde_id = NULL, error_code = 'TransientError', error_message = 'timed out', error_retryable = 1"
                " WHERE clerk_id = ?",
                (lost,),
            )
        for holder in holders:
            assert admin.delete("/api/v1/user", params={"id": holder}).status_code == 200

    before = kinde_state(world.sandbox)
    retried = world.cli("retry-failed", "--yes")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    after = kinde_state(world.sandbox)

    sent = route_deltas(before, after)
    their_orgs = {
        m["organization"]["id"]
        for m in world.sandbox.dataset.memberships()
        if m["public_user_data"]["user_id"] in blocked
    }
    assert sent["GET /api/v1/users"] > 0  # the lost user is looked up, and found
    assert {route: n for route, n in sent.items() if not route.startswith("GET ")} == {
        "POST /api/v1/user": 3,  # the blocked users, and them only
        "PUT /api/v1/users/{user_id}/password": 4,  # theirs and the lost user's
        "POST /api/v1/organizations/{org_code}/users": len(their_orgs),  # the blocked users' memberships
        "POST /oauth2/token": 1,
    }
    assert after["creations_by_provided_id"][lost] == 1
    assert {cid: after["creations_by_provided_id"][cid] for cid in blocked} == dict.fromkeys(blocked, 1)
    status = json.loads(world.cli("status", "--json").stdout)
    assert status["steps"]["state"] == {"done": eligible, "skipped": skipped}
    assert status["failures"] == []


def test_resume_refuses_a_changed_export_or_mapping_unless_allowed(make_world) -> None:
    world = make_world(300)
    world.background("run", "--yes").kill_when(lambda: kinde_users(world) >= 60, "during the creates")
    original = world.export.read_bytes()
    writes = write_requests(kinde_state(world.sandbox))

    world.export.write_bytes(original + b"user_2appendedAfterTheRunBegan0,Late,Comer,,late@example.com,,,,,,,,\n")
    changed_export = world.cli("resume", "--yes")
    assert changed_export.returncode == 2
    assert "changed since the run began" in changed_export.stderr and "--allow-changed" in changed_export.stderr

    world.export.write_bytes(original)
    changed_mapping = world.cli("resume", "--yes", UNIMPORTABLE_PASSWORDS="no-password")
    assert changed_mapping.returncode == 2
    assert "settings changed: unimportable_passwords" in changed_mapping.stderr
    assert "export" not in changed_mapping.stderr
    assert write_requests(kinde_state(world.sandbox)) == writes

    world.export.write_bytes(original + b"user_2appendedAfterTheRunBegan0,Late,Comer,,late@example.com,,,,,,,,\n")
    allowed = world.cli("resume", "--yes", "--allow-changed", UNIMPORTABLE_PASSWORDS="no-password")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "continuing although settings changed: unimportable_passwords" in allowed.stdout
    assert "continuing although the export" in allowed.stdout
    assert_migrated_exactly_once(world, kinde_state(world.sandbox))


def test_journal_is_private_in_wal_mode_and_holds_no_password_digest(make_world) -> None:
    world = make_world(300)
    needles = digest_needles(world.export)
    assert len(needles) > 50
    some_email = next(e["email"] for e in world.expect.eligible.values() if e["email"])

    world.background("run", "--yes").kill_when(lambda: kinde_users(world) >= 100, "during the creates")
    files = journal_files(world)
    assert Path(f"{world.journal}-wal") in files  # the kill left the write-ahead log behind
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: "0o600" for f in files}
    with read_journal(world.journal) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    blob = b"".join(f.read_bytes() for f in files).lower()
    assert some_email.lower().encode() in blob  # the scan reads the journal's text: it does hold emails
    assert [n for n in needles if n in blob] == []

    done = world.cli("resume", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    files = journal_files(world)
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: "0o600" for f in files}
    report = world.cwd / ".migrator" / "runs" / "1" / "password-resets.csv"
    assert oct(report.stat().st_mode & 0o777) == "0o600"
    blob = b"".join(f.read_bytes() for f in files).lower()
    assert [n for n in needles if n in blob] == []


# -- helpers of the tests above ------------------------------------------------------------------------


def kinde_admin(sandbox: Sandbox) -> httpx.Client:
    """A Management API client with the sandbox's M2M credentials (to arrange Kinde's state)."""
    config = sandbox.kinde_config
    response = httpx.post(
        f"{sandbox.kinde_url}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": config.client_id,
            "client_secret": config.client_secret,
            "audience": f"{sandbox.kinde_url}/api",
        },
        timeout=30,
    )
    response.raise_for_status()
    token = response.json()["access_token"]
    return httpx.Client(base_url=sandbox.kinde_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def route_deltas(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """Requests per API route between two sandbox states; routes that saw none are left out."""
    old = {route: counts["total"] for route, counts in before["requests"]["by_route"].items()}
    new = {route: counts["total"] for route, counts in after["requests"]["by_route"].items()}
    return {
        route: n - old.get(route, 0) for route, n in new.items() if n != old.get(route, 0) and "/_sandbox/" not in route
    }


def journal_files(world: World) -> list[Path]:
    return [p for p in (Path(f"{world.journal}{suffix}") for suffix in ("", "-wal", "-shm")) if p.exists()]


def digest_needles(export: Path) -> set[bytes]:
    """Every digest in the export, and its longest ``$`` part (what a re-encoding would keep), lower-cased."""
    needles = set()
    with export.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            digest = row["password_digest"].lstrip("\t")
            if not digest:
                continue
            needles.add(digest.lower().encode())
            longest = max(digest.split("$"), key=len).rstrip("=")
            if len(longest) >= 16:
                needles.add(longest.lower().encode())
    return needles


def test_a_new_run_after_a_crash_finishes_what_the_dead_run_left_in_flight(make_world, rng) -> None:
    """An operator who types `run` instead of `resume` must not strand half-migrated users."""
    world = make_world(1500)
    eligible = len(world.expect.eligible)
    threshold = rng.randrange(eligible // 4, eligible // 2)
    world.background("run", "--yes").kill_when(
        lambda: kinde_users(world) >= threshold and awaiting_password(world) >= 3,
        f"between a create and its password, past {threshold} users",
    )
    again = world.cli("run", "--yes", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert_migrated_exactly_once(world, kinde_state(world.sandbox))
    summary = json.loads(again.stdout)
    # Users the dead run had created are continued, not counted as someone else's.
    assert summary["already_present"] + summary["created"] == eligible
    status = json.loads(world.cli("status", "--json").stdout)
    assert "existed" not in status["steps"]["created"]
    assert_bcrypt_users_sign_in(world)
