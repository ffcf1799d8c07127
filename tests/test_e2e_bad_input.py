"""End to end: bad configuration, credentials and input, through the real CLI against the sandbox.

Every case must end with the documented exit code and a message naming what is wrong and where,
never a traceback, and must write nothing to Kinde when the run cannot go on. Per-user problems
(a bad cell in the export, an invalid phone in Clerk) are recorded for that user while the run goes on.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.sandbox.faults import FaultProfile
from migrator.sandbox.generator import INVALID_PHONE, INVALID_PHONE_USER
from migrator.sandbox.kinde_app import ALL_SCOPES, KindeSandboxConfig
from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import cli_env, kinde_state, run_cli, write_requests

USERS = 60  # enough for the generator's problem users
FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200"}
NO_RETRIES = {**FAST, "MAX_ATTEMPTS": "2"}  # garbage answers are retried; keep those tests short


def failed(result: subprocess.CompletedProcess[str], exit_code: int, *names: str) -> str:
    """Assert a clean failure: the exit code, no traceback, and stderr naming each of ``names``."""
    output = result.stdout + result.stderr
    assert result.returncode == exit_code, output
    assert "Traceback" not in output
    for name in names:
        assert name in result.stderr, f"{name!r} not in {result.stderr!r}"
    return result.stderr


def nothing_written(sandbox: Sandbox) -> None:
    state = kinde_state(sandbox)
    assert write_requests(state) == 0 and state["users"] == []


@pytest.fixture(scope="module")
def clean() -> Any:
    """A sandbox no test may write to: every run against it fails before writing (each test checks)."""
    with Sandbox(SandboxOptions(users=USERS)) as sandbox:
        yield sandbox


@pytest.fixture
def workdir(tmp_path: Path, clean: Sandbox) -> Path:
    clean.write_export(tmp_path / "users.csv")
    return tmp_path


def run(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("run", *args, cwd=workdir, env=env)


# -- settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("CLERK_SECRET_KEY", None),
        ("CLERK_SECRET_KEY", ""),
        ("KINDE_DOMAIN", None),
        ("KINDE_MANAGEMENT_CLIENT_ID", "  "),
        ("KINDE_MANAGEMENT_CLIENT_SECRET", None),
        ("KINDE_MANAGEMENT_CLIENT_SECRET", ""),
    ],
)
def test_a_missing_or_empty_setting_is_named(clean: Sandbox, workdir: Path, setting: str, value: str | None) -> None:
    env = cli_env(clean, **FAST)
    if value is None:
        del env[setting]
    else:
        env[setting] = value
    message = failed(run(workdir, env, "--clerk-export", "users.csv", "--yes"), 2, setting)
    assert "missing or empty" in message
    nothing_written(clean)


def test_an_empty_export_setting_is_named(clean: Sandbox, workdir: Path) -> None:
    env = cli_env(clean, CLERK_EXPORT="", **FAST)
    failed(run(workdir, env, "--dry-run"), 2, "CLERK_EXPORT", "empty")


def test_an_export_that_does_not_exist_is_named(clean: Sandbox, workdir: Path) -> None:
    failed(run(workdir, cli_env(clean, **FAST), "--clerk-export", "missing.csv", "--yes"), 2, "missing.csv")
    nothing_written(clean)


@pytest.mark.parametrize(
    ("setting", "url"),
    [("KINDE_DOMAIN", "http://acme.kinde.com"), ("CLERK_API_URL", "http://api.clerk.com/v1")],
)
def test_plain_http_is_refused_except_on_loopback(clean: Sandbox, workdir: Path, setting: str, url: str) -> None:
    env = cli_env(clean, **{setting: url}, **FAST)
    failed(run(workdir, env, "--clerk-export", "users.csv", "--yes"), 2, setting, "http://")
    nothing_written(clean)


def test_a_config_file_that_does_not_exist_is_named(clean: Sandbox, workdir: Path) -> None:
    result = run(workdir, cli_env(clean, **FAST), "--config", "nowhere.toml", "--clerk-export", "users.csv", "--yes")
    failed(result, 2, "nowhere.toml", "does not exist")


@pytest.mark.parametrize("where", ["config/migrator.toml", "custom.toml"])
def test_a_malformed_toml_is_named(clean: Sandbox, workdir: Path, where: str) -> None:
    (workdir / where).parent.mkdir(exist_ok=True)
    (workdir / where).write_text('concurrency = 4\nkinde_domain = "https://acme.kinde.com\n')
    args = ["--config", where] if where == "custom.toml" else []
    failed(run(workdir, cli_env(clean, **FAST), *args, "--clerk-export", "users.csv", "--yes"), 2, where)
    nothing_written(clean)


def test_an_invalid_value_is_named_without_echoing_it(clean: Sandbox, workdir: Path) -> None:
    env = cli_env(clean, UNIMPORTABLE_PASSWORDS="sometimes", **FAST)
    message = failed(run(workdir, env, "--clerk-export", "users.csv", "--yes"), 2, "UNIMPORTABLE_PASSWORDS")
    assert "sometimes" not in message


def state_dir_named(result: subprocess.CompletedProcess[str]) -> str:
    """``migrator status`` in an empty directory names the state dir its settings chose."""
    message = failed(result, 2, "no journal in")
    return message.split("no journal in", 1)[1].split(":", 1)[0].strip()


def test_flags_beat_the_environment_which_beats_dotenv_which_beats_the_toml(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "migrator.toml").write_text('state_dir = "from-toml"\n')
    (tmp_path / "other.toml").write_text('state_dir = "from-other-toml"\n')

    def chosen(*args: str, **env: str) -> str:
        return state_dir_named(run_cli("status", *args, cwd=tmp_path, env=cli_env(**env)))

    assert chosen() == "from-toml"
    assert chosen("--config", "other.toml") == "from-other-toml"
    (tmp_path / ".env").write_text("STATE_DIR=from-dotenv\n")
    assert chosen() == "from-dotenv"
    assert chosen(STATE_DIR="from-env") == "from-env"
    assert chosen("--state-dir", "from-flag", STATE_DIR="from-env") == "from-flag"


def test_a_run_takes_its_settings_from_every_source(sandbox_factory: Any, tmp_path: Path) -> None:
    """Credentials split over the TOML, .env and the environment; the flag decides the policy."""
    sandbox = sandbox_factory(users=USERS)
    sandbox.write_export(tmp_path / "users.csv")
    settings = sandbox.env()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "migrator.toml").write_text(
        f'clerk_secret_key = "{settings["CLERK_SECRET_KEY"]}"\nunimportable_passwords = "reset"\n'
        'state_dir = "from-toml"\n'
    )
    (tmp_path / ".env").write_text(
        f"KINDE_MANAGEMENT_CLIENT_SECRET={settings['KINDE_MANAGEMENT_CLIENT_SECRET']}\n"
        "UNIMPORTABLE_PASSWORDS=no-password\n"
    )
    env = cli_env(
        CLERK_API_URL=settings["CLERK_API_URL"],
        KINDE_DOMAIN=settings["KINDE_DOMAIN"],
        KINDE_MANAGEMENT_CLIENT_ID=settings["KINDE_MANAGEMENT_CLIENT_ID"],
        **FAST,
    )
    args = ["--clerk-export", "users.csv", "--dry-run", "--json", "--unimportable-passwords", "skip"]
    result = run(tmp_path, env, *args)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)["plan"]
    assert plan["skipped"].get("password_not_importable", 0) > 0 and plan["password_resets"] == 0
    assert (tmp_path / "from-toml" / "journal.sqlite3").is_file()


# -- credentials and scopes -------------------------------------------------------------------------


def test_a_wrong_clerk_key_stops_the_run(clean: Sandbox, workdir: Path) -> None:
    env = cli_env(clean, CLERK_SECRET_KEY="sk_test_not_the_key", **FAST)
    message = failed(run(workdir, env, "--clerk-export", "users.csv", "--yes"), 3, "Clerk", "CLERK_SECRET_KEY")
    assert "401" in message and "sk_test_not_the_key" not in message
    nothing_written(clean)


@pytest.mark.parametrize("setting", ["KINDE_MANAGEMENT_CLIENT_ID", "KINDE_MANAGEMENT_CLIENT_SECRET"])
def test_wrong_kinde_credentials_stop_the_run(clean: Sandbox, workdir: Path, setting: str) -> None:
    env = cli_env(clean, **{setting: "not-the-right-one"}, **FAST)
    message = failed(run(workdir, env, "--clerk-export", "users.csv", "--yes"), 3, "Kinde", "token request", setting)
    assert "not-the-right-one" not in message
    nothing_written(clean)


@pytest.mark.parametrize(
    ("missing", "args"),
    [
        ("create:users", ["--yes"]),
        ("update:user_passwords", ["--yes"]),
        ("read:users", ["--dry-run"]),
    ],
)
def test_a_missing_scope_is_named(sandbox_factory: Any, tmp_path: Path, missing: str, args: list[str]) -> None:
    sandbox = sandbox_factory(users=USERS, kinde=KindeSandboxConfig(scopes=ALL_SCOPES - {missing}))
    sandbox.write_export(tmp_path / "users.csv")
    result = run(tmp_path, cli_env(sandbox, **FAST), "--clerk-export", "users.csv", *args)
    failed(result, 3, "Kinde", "scope", missing)
    nothing_written(sandbox)


def test_a_dry_run_needs_only_the_read_scope(sandbox_factory: Any, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=USERS, kinde=KindeSandboxConfig(scopes=frozenset({"read:users"})))
    sandbox.write_export(tmp_path / "users.csv")
    result = run(tmp_path, cli_env(sandbox, **FAST), "--clerk-export", "users.csv", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["plan"]["to_create"] > 0
    nothing_written(sandbox)


# -- the CSV export ---------------------------------------------------------------------------------


def test_an_export_without_the_id_column_is_refused(clean: Sandbox, workdir: Path) -> None:
    rows = (workdir / "users.csv").read_text().splitlines()
    (workdir / "no-id.csv").write_text("\n".join(["user_id" + rows[0][2:], *rows[1:]]) + "\n")
    result = run(workdir, cli_env(clean, **FAST), "--clerk-export", "no-id.csv", "--yes")
    failed(result, 2, "no-id.csv", "row 1", "'id' column")
    nothing_written(clean)


def test_an_export_with_bad_quoting_is_refused_naming_the_row(clean: Sandbox, workdir: Path) -> None:
    lines = (workdir / "users.csv").read_text().splitlines()
    user_id = lines[30].split(",", 1)[0]
    lines[30] = f'{user_id},"Ann"e,Smith' + ",," * 5  # a quote closed in the middle of a cell
    (workdir / "bad-quotes.csv").write_text("\n".join(lines) + "\n")
    result = run(workdir, cli_env(clean, **FAST), "--clerk-export", "bad-quotes.csv", "--yes")
    failed(result, 2, "bad-quotes.csv", "row 31", "quoting")
    nothing_written(clean)


def test_an_export_with_a_user_twice_is_refused_naming_both_rows(clean: Sandbox, workdir: Path) -> None:
    lines = (workdir / "users.csv").read_text().splitlines()
    lines.append(lines[12])  # row 13 again, at the end
    (workdir / "twice.csv").write_text("\n".join(lines) + "\n")
    result = run(workdir, cli_env(clean, **FAST), "--clerk-export", "twice.csv", "--yes")
    failed(result, 2, "twice.csv", f"row {len(lines)}", "row 13", lines[12].split(",", 1)[0])
    nothing_written(clean)


def migrate(sandbox: Sandbox, workdir: Path, export: str = "users.csv") -> dict[str, Any]:
    """A real run that must succeed; returns ``migrator status --json``."""
    result = run(workdir, cli_env(sandbox, **FAST), "--clerk-export", export, "--yes", "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    status = run_cli("status", "--json", cwd=workdir, env=cli_env(sandbox))
    assert status.returncode == 0, status.stderr
    return json.loads(status.stdout)


def kinde_user(sandbox: Sandbox, clerk_id: str) -> dict[str, Any]:
    (user,) = [u for u in kinde_state(sandbox)["users"] if u["provided_id"] == clerk_id]
    return user


def test_an_invalid_email_in_the_export_is_a_warning_for_that_user(sandbox_factory: Any, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=USERS)
    dataset = sandbox.dataset
    i = next(i for i in range(40, USERS) if dataset.expected(i)["hasher"] == "bcrypt" and dataset.expected(i)["email"])
    clerk_id = dataset.user_id(i)
    sandbox.write_export(tmp_path / "clean.csv")
    with (tmp_path / "clean.csv").open(newline="") as source:
        rows = list(csv.DictReader(source))
    for row in rows:
        if row["id"] == clerk_id:
            row["primary_email_address"] = "not-an-email"
    with (tmp_path / "users.csv").open("w", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    status = migrate(sandbox, tmp_path)

    warnings = [p["message"] for p in status["problems"] if p["clerk_id"] == clerk_id and p["kind"] == "warning"]
    assert any(
        "users.csv" in w and f"row {i + 2}" in w and "primary_email_address" in w and "not-an-email" in w
        for w in warnings
    ), warnings
    user = kinde_user(sandbox, clerk_id)  # the run went on: Clerk's API is the truth for identities
    emails = [identity["value"] for identity in user["identities"] if identity["type"] == "email"]
    assert emails[:1] == [dataset.expected(i)["email"]]
    assert user["password_method"] == "bcrypt"


def test_an_invalid_phone_is_dropped_and_reported_for_that_user(sandbox_factory: Any, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=USERS)
    sandbox.write_export(tmp_path / "users.csv")
    clerk_id = sandbox.dataset.user_id(INVALID_PHONE_USER)

    status = migrate(sandbox, tmp_path)

    user = kinde_user(sandbox, clerk_id)
    expected = sandbox.dataset.expected(INVALID_PHONE_USER)
    assert expected["phone"] is None and expected["email"]
    assert [i["type"] for i in user["identities"] if i["type"] == "phone"] == []
    assert next(i["value"] for i in user["identities"] if i["type"] == "email") == expected["email"]
    warnings = [p["message"] for p in status["problems"] if p["clerk_id"] == clerk_id and p["kind"] == "warning"]
    assert any(clerk_id in w and "phone_numbers" in w and INVALID_PHONE in w for w in warnings), warnings
    assert status["failures"] == []


# -- answers that are not the API's -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "hint"),
    [(FaultProfile(garbage_rate=1.0), "not JSON"), (FaultProfile(truncated_rate=1.0), "truncated")],
    ids=["garbage", "truncated"],
)
def test_a_clerk_answer_that_is_not_json_stops_the_run(
    sandbox_factory: Any, tmp_path: Path, fault: FaultProfile, hint: str
) -> None:
    sandbox = sandbox_factory(users=USERS, clerk_faults=fault)
    sandbox.write_export(tmp_path / "users.csv")
    result = run(tmp_path, cli_env(sandbox, **NO_RETRIES), "--clerk-export", "users.csv", "--yes")
    failed(result, 3, "Clerk GET /users/count", hint)
    nothing_written(sandbox)


def test_a_kinde_token_answer_that_is_not_json_stops_the_run(sandbox_factory: Any, tmp_path: Path) -> None:
    sandbox = sandbox_factory(users=USERS, kinde_faults=FaultProfile(garbage_rate=1.0))
    sandbox.write_export(tmp_path / "users.csv")
    result = run(tmp_path, cli_env(sandbox, **NO_RETRIES), "--clerk-export", "users.csv", "--yes")
    failed(result, 3, "Kinde POST /oauth2/token")
    nothing_written(sandbox)


@pytest.mark.parametrize(
    ("fault", "hint"),
    [(FaultProfile(garbage_rate=1.0), "not JSON"), (FaultProfile(truncated_rate=1.0), "truncated")],
    ids=["garbage", "truncated"],
)
def test_a_kinde_api_answer_that_is_not_json_stops_the_run(
    sandbox_factory: Any, tmp_path: Path, fault: FaultProfile, hint: str
) -> None:
    sandbox = sandbox_factory(users=USERS, kinde_faults=fault)
    sandbox.kinde_faults.exempt_prefixes = ("/_sandbox", "/oauth2")  # a good token, then bad answers
    sandbox.write_export(tmp_path / "users.csv")
    result = run(tmp_path, cli_env(sandbox, **NO_RETRIES), "--clerk-export", "users.csv", "--yes")
    failed(result, 3, "Kinde GET /api/v1/users", hint)
    nothing_written(sandbox)
    faults = httpx.get(f"{sandbox.kinde_url}/_sandbox/faults", timeout=10).json()["stats"]
    assert faults["garbage"] + faults["truncated"] >= 1
