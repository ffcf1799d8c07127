"""Clerk's JSON export: told from the content, streamed, indexed by byte offset, and read as the CSV is.

Shapes (../shared/reference/clerk-backend-api.md, section 4): a list of users with list fields (clerk/
migration-tool's sample), the same with emails and phones joined by ``|`` (WorkOS's example), and one user
per line. The sandbox writes all three from the same users as its CSV.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrator.clerk.export import ExportFile
from migrator.clerk.export_json import JsonExportFile, open_clerk_export, user_row
from migrator.errors import InputError
from migrator.mapping import MappingOptions, plan_user
from migrator.models import UserPlan
from migrator.sandbox.generator import Dataset

SHAPES = ("list", "joined", "ndjson")


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(400, seed=3, hasher_weights={"bcrypt": 0.5, "scrypt_firebase": 0.2, "pbkdf2_sha256": 0.3})


@pytest.fixture(scope="module")
def csv_export(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("csv") / "export.txt"  # no telling extension: the content decides
    dataset.write_export_csv(path)
    return path


def json_export(dataset: Dataset, tmp_path: Path, shape: str) -> Path:
    path = tmp_path / "export.txt"
    dataset.write_export_json(path, shape)  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize("shape", SHAPES)
def test_a_json_export_plans_the_same_password_imports_as_the_csv(
    dataset: Dataset, csv_export: Path, tmp_path: Path, shape: str
) -> None:
    with open_clerk_export(csv_export) as csv_file, open_clerk_export(json_export(dataset, tmp_path, shape)) as js:
        assert isinstance(csv_file, ExportFile) and isinstance(js, JsonExportFile)
        csv_entries, json_entries = list(csv_file.scan()), list(js.scan())
        assert [(e.user_id, e.hasher, e.has_digest) for e in csv_entries] == [
            (e.user_id, e.hasher, e.has_digest) for e in json_entries
        ]
        assert [e.row_number for e in json_entries] == list(range(1, dataset.n + 1))
        options = MappingOptions()
        imports = 0
        # read back by offset in another order than the file's, as the load does
        for csv_entry, json_entry in reversed(list(zip(csv_entries, json_entries, strict=True))):
            user = dataset.user(dataset.index_of(csv_entry.user_id))
            from_csv = csv_file.row_at(csv_entry.offset, csv_entry.row_number, expected_id=csv_entry.user_id)
            from_json = js.row_at(json_entry.offset, json_entry.row_number, expected_id=json_entry.user_id)
            assert (from_json.password_digest, from_json.has_totp) == (from_csv.password_digest, from_csv.has_totp)
            csv_plan, json_plan = plan_user(user, from_csv, options), plan_user(user, from_json, options)
            assert isinstance(csv_plan, UserPlan) == isinstance(json_plan, UserPlan)
            if isinstance(csv_plan, UserPlan) and isinstance(json_plan, UserPlan):
                assert (
                    json_plan.password == csv_plan.password and json_plan.password_problem == csv_plan.password_problem
                )
                imports += csv_plan.password is not None
        assert imports > dataset.n // 3  # the loop compared real imports


@pytest.mark.parametrize("shape", SHAPES)
def test_json_rows_carry_the_exports_identifiers(dataset: Dataset, tmp_path: Path, shape: str) -> None:
    with open_clerk_export(json_export(dataset, tmp_path, shape)) as js:
        for row, i in zip(js.rows(), range(dataset.n), strict=True):
            profile_emails = {e["email_address"] for e in dataset.user(i)["email_addresses"]}
            assert set(row.unverified_emails) == profile_emails and row.source == "json"
            if shape != "joined":
                # the dashboard CSV cell carries Clerk's TAB guard before a formula-leading value; JSON carries none
                csv_cell = dataset.export_row(i)["primary_email_address"].removeprefix("\t")
                assert row.primary_email == (csv_cell or None)


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "export.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"id": "u1"}, {"id": 5}]', "user 2: field 'id': expected text or null, found int"),
        ('[{"id": "u1"}, {"first_name": "x"}]', "user 2: no 'id'"),
        ('[{"id": "u1"}, ', "malformed JSON after user 1 (u1): the file ends inside a value"),
        ('[{"id": "u1"} {"id": "u2"}]', "malformed JSON after user 1 (u1)"),
        ('[{"id": "u1"}, 3]', "user 2: not a JSON object"),
        ('{"users": [{"id": "u1"}]}', "user 1: no 'id' (is the list of users inside 'users'? give the list itself)"),
        ('[{"id": "u1"}, {"id": "u1"}]', "user 2: user id 'u1' already appears at user 1"),
        ('[{"id": "u1", "password_digest": 7}]', "user 1 (u1): field 'password_digest': expected text or null"),
        ('[{"id": "u1", "email_addresses": [1]}]', "user 1 (u1): field 'email_addresses': expected a list of text"),
        ("[3]", "user 1: not a JSON object"),
        ("[[1]]", "user 1: not a JSON object"),
        (b'[{"id": "u1", "first_name": "\xff"}]', "malformed JSON"),
    ],
)
def test_a_broken_json_export_names_the_user_and_field(tmp_path: Path, text: str | bytes, message: str) -> None:
    with pytest.raises(InputError) as caught, open_clerk_export(write(tmp_path, text)) as export:
        list(export.scan())
    assert message in str(caught.value)
    assert str(tmp_path / "export.json") in str(caught.value)


def test_no_message_quotes_a_digest(tmp_path: Path) -> None:
    digest = "$2b$10$U4C0ZY8OG8y41F9LusfKyu3HRMBL0rCZcKBVsXhgr.n8Ou6FPhzO2"
    for text in (
        f'[{{"id": "u1", "password_digest": "{digest}" x}}]',
        f'[{{"id": "u1", "password_hasher": ["{digest}"]}}]',
    ):
        with pytest.raises(InputError) as caught, open_clerk_export(write(tmp_path, text)) as export:
            list(export.scan())
        assert digest not in str(caught.value) and "U4C0ZY8" not in str(caught.value)


def test_an_export_changed_since_it_was_indexed_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[{"id": "u1"}, {"id": "u2"}]')
    with open_clerk_export(path) as export:
        second = list(export.scan())[1]
    path.write_text('[{"id": "u1"}, {"id": "u3"}]')
    with open_clerk_export(path) as export, pytest.raises(InputError, match="expected user 'u2' but found 'u3'"):
        export.row_at(second.offset, second.row_number, expected_id="u2")
    with open_clerk_export(path) as export, pytest.raises(InputError, match="no user at byte offset 3"):
        export.row_at(3, 2, expected_id="u2")


texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
users = st.lists(
    st.fixed_dictionaries(
        {"first_name": st.one_of(st.none(), texts), "password_digest": st.one_of(st.none(), texts)},
        optional={
            "public_metadata": st.recursive(
                st.none() | texts,
                lambda c: st.lists(c, max_size=3) | st.dictionaries(texts, c, max_size=3),
                max_leaves=6,
            )
        },
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    users=users,
    layout=st.sampled_from(["compact", "indented", "ndjson"]),
    bom=st.booleans(),
    ascii_only=st.booleans(),
)
def test_every_user_is_found_at_its_offset_whatever_the_layout(
    tmp_path: Path, users: list[dict], layout: str, bom: bool, ascii_only: bool
) -> None:
    """Braces, commas and brackets inside strings and metadata never move a user's offset."""
    records = [{"id": f"user_{n}", **user} for n, user in enumerate(users)]
    if layout == "ndjson":
        text = "".join(json.dumps(r, ensure_ascii=ascii_only) + "\n" for r in records)
    else:
        text = json.dumps(records, ensure_ascii=ascii_only, indent=2 if layout == "indented" else None)
    if layout == "ndjson" and not records:
        return  # an empty file is not an export
    path = write(tmp_path, (b"\xef\xbb\xbf" if bom else b"") + text.encode())
    with open_clerk_export(path) as export:
        entries = list(export.scan())
        assert [e.user_id for e in entries] == [r["id"] for r in records]
        for entry, record in zip(entries, records, strict=True):
            row = export.row_at(entry.offset, entry.row_number, expected_id=entry.user_id)
            assert row == user_row(path, entry.row_number, record)


def test_the_csv_is_still_read_when_it_starts_with_blanks(tmp_path: Path) -> None:
    path = write(tmp_path, "id,password_hasher\nuser_1,bcrypt\n")
    with open_clerk_export(path) as export:
        assert isinstance(export, ExportFile) and [e.user_id for e in export.scan()] == ["user_1"]
