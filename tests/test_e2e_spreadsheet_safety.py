"""End to end: the CSVs meant for people are safe to open in a spreadsheet, and Kinde's import files are not
touched by that guard.

The generator's HOSTILE_TEXT users (a ``=``-leading email, ``<script>`` and ``+``/``-``/``@``/``=``-leading
names, a ``-``-leading username) go through a dry run, a run, a verify, ``status --failed --csv`` and an
export: no raw cell of a people-facing file begins with a formula character, our reader gives back the
exact values, and the import files carry them byte for byte, as Kinde's import ingests them.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.people_csv import FORMULA_STARTS, read_csv
from migrator.sandbox.generator import FORMULA_EMAIL, FORMULA_NAME_USER, HOSTILE_TEXT, Dataset
from migrator.sandbox.hashing import CLERK_HASHERS
from migrator.sandbox.kinde_app import KindeSandboxConfig
from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import cli_env, kinde_state, run_cli

USERS = 120
FAST = {"KINDE_MAX_RPS": "2000", "KINDE_INITIAL_RPS": "200"}
OFFLINE = {"KINDE_DOMAIN": "http://127.0.0.1:1", "CLERK_API_URL": "http://127.0.0.1:1/v1"}
MIGRATOR = Path(__file__).resolve().parents[1] / "migrator"


def cli(sandbox: Sandbox, cwd: Path, *args: str, **env: str) -> Any:
    return run_cli(*args, cwd=cwd, env=cli_env(sandbox, **FAST, **env))


def raw_cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


def assert_safe(name: str, text: str) -> list[str]:
    """No raw cell begins with a formula character; the guarded cells (those beginning with the guard)."""
    cells = raw_cells(text)
    assert cells, name
    unsafe = [cell for cell in cells if cell[:1] in FORMULA_STARTS]
    assert unsafe == [], (name, unsafe[:3])
    return [cell for cell in cells if cell[:1] == "'"]


def people_files(*folders: Path) -> dict[str, str]:
    return {str(path): path.read_text(encoding="utf-8") for folder in folders for path in sorted(folder.glob("*.csv"))}


def test_every_people_facing_csv_of_a_run_is_guarded_and_reads_back_exactly(sandbox_factory, tmp_path: Path) -> None:
    # +44 phones refused: some users fail, so failures.csv and `status --failed --csv` have rows.
    sandbox = sandbox_factory(users=USERS, kinde=KindeSandboxConfig(refused_phone_prefixes=("+44",)))
    sandbox.write_export(tmp_path / "users.csv")
    dataset = sandbox.dataset
    seventeen = dataset.user_id(FORMULA_NAME_USER)

    dry = cli(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    run = cli(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--yes")
    assert run.returncode in (0, 1), run.stdout + run.stderr
    verify = cli(sandbox, tmp_path, "verify")
    assert verify.returncode in (0, 1), verify.stdout + verify.stderr
    failed = cli(sandbox, tmp_path, "status", "2", "--failed", "--csv", **OFFLINE)
    assert failed.returncode == 0, failed.stderr

    runs = tmp_path / ".migrator" / "runs"
    files = people_files(runs / "1", runs / "2") | {"status --failed --csv": failed.stdout}
    assert {Path(name).name for name in files} >= {"id-map.csv", "skipped.csv", "failures.csv", "verify.csv"}
    guarded = [cell for name, text in files.items() for cell in assert_safe(name, text)]
    assert "'" + FORMULA_EMAIL in guarded  # the id map (and the dry run's lists) name user 17 by its email
    assert len(raw_cells(failed.stdout)) > 6  # a header and failed users: the check above saw real rows

    with (runs / "2" / "id-map.csv").open(newline="", encoding="utf-8") as handle:
        id_map = {row[0]: row[2] for row in read_csv(handle)}
    assert id_map[seventeen] == FORMULA_EMAIL  # our reader gives the exact value back
    kinde = {u["provided_id"]: u for u in kinde_state(sandbox)["users"]}
    held = {(i["type"], i["value"]) for i in kinde[seventeen]["identities"]}
    assert ("email", FORMULA_EMAIL) in held and ("username", "-u17") in held
    for i in HOSTILE_TEXT:  # names reach Kinde as Clerk holds them
        user = kinde[dataset.user_id(i)]
        assert (user["given_name"], user["family_name"]) == (
            dataset.user(i)["first_name"],
            dataset.user(i)["last_name"],
        )


def _upload(sandbox: Sandbox, path: Path, fmt: str) -> None:
    response = httpx.post(f"{sandbox.kinde_url}/_sandbox/import", params={"format": fmt}, content=path.read_bytes())
    assert response.status_code == 200 and response.json()["errors"] == [], response.text


@pytest.mark.parametrize("fmt", ["kinde-csv", "kinde-ndjson"])
def test_import_files_carry_formula_values_unguarded_and_kinde_imports_them(tmp_path: Path, fmt: str) -> None:
    options = SandboxOptions(users=USERS, hasher_weights=dict.fromkeys(CLERK_HASHERS, 1.0))
    with Sandbox(options) as sandbox:
        sandbox.write_export(tmp_path / "users.csv")
        dataset = sandbox.dataset
        seventeen = dataset.user(FORMULA_NAME_USER)
        result = cli(sandbox, tmp_path, "export", "--format", fmt, "--out", "out", "--clerk-export", "users.csv")
        assert result.returncode == 0, result.stderr[-3000:]
        out = tmp_path / "out"
        assert_safe("api-users.csv", (out / "api-users.csv").read_text(encoding="utf-8"))

        users_files = sorted(out.glob("kinde-users-*"))
        text = "".join(path.read_text(encoding="utf-8") for path in users_files)
        if fmt == "kinde-csv":  # the formula-leading cells are there raw: what Kinde documents, not our guard
            rows = [r for p in users_files for r in csv.DictReader(p.open(newline="", encoding="utf-8"))]
            row = next(r for r in rows if r["id"] == seventeen["id"])
            assert (row["email"], row["username"]) == (FORMULA_EMAIL, "-u17")
            assert (row["first_name"], row["last_name"]) == (seventeen["first_name"], seventeen["last_name"])
        else:
            record = next(json.loads(line) for line in text.splitlines() if json.loads(line)["id"] == seventeen["id"])
            emails = {i.get("identity") for i in record["identities"] if i.get("type") == "email"}
            assert FORMULA_EMAIL in emails
            assert (record["first_name"], record["last_name"]) == (seventeen["first_name"], seventeen["last_name"])
        assert not re.search(r"(^|[,\"])'[=+\-@]", text, re.MULTILINE)  # no guard anywhere in them

        _upload(sandbox, out / "organizations.csv", "organizations")
        for path in users_files:
            _upload(sandbox, path, fmt)
        kinde = {u["provided_id"]: u for u in kinde_state(sandbox)["users"]}
        imported = kinde[seventeen["id"]]
        assert ("email", FORMULA_EMAIL) in {(i["type"], i["value"]) for i in imported["identities"]}
        assert (imported["given_name"], imported["family_name"]) == (seventeen["first_name"], seventeen["last_name"])


def test_every_csv_writer_of_the_core_is_the_people_writer_or_an_import_file() -> None:
    """One writer for the files meant for people: any other ``csv`` writer in the core is Kinde's import
    files' (``stages/export_files.py``), which Kinde parses and which must stay unguarded."""
    writers = {
        str(path.relative_to(MIGRATOR))
        for path in MIGRATOR.rglob("*.py")
        if "sandbox" not in path.parts and re.search(r"csv\.(writer|DictWriter)\(", path.read_text(encoding="utf-8"))
    }
    assert writers == {"people_csv.py", "stages/export_files.py"}


def test_the_generator_makes_its_hostile_text_users_eligible_and_only_with_the_problem_users() -> None:
    dataset = Dataset(60, seed=5)
    seventeen = dataset.expected(FORMULA_NAME_USER)
    assert seventeen["eligible"] and (seventeen["email"], seventeen["username"]) == (FORMULA_EMAIL, "-u17")
    for i, values in HOSTILE_TEXT.items():
        user = dataset.user(i)
        assert dataset.expected(i)["eligible"]
        assert all(user[field] == value for field, value in values.items() if field != "email")
    assert dataset.export_row(FORMULA_NAME_USER)["primary_email_address"] == "\t" + FORMULA_EMAIL  # Clerk's guard
    small = Dataset(49, seed=5)
    assert FORMULA_EMAIL not in {e["email_address"] for i in range(small.n) for e in small.user(i)["email_addresses"]}
