"""The dashboard CSV reader: parsing quirks, offsets for random access, and refusing bad files."""

from __future__ import annotations

import csv
import io
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrator.clerk import export as export_module
from migrator.clerk.export import (
    EXPORT_COLUMNS,
    ExportFile,
    ExportIndexEntry,
    row_problems,
)
from migrator.errors import InputError
from migrator.models import ExportRow

BCRYPT = "$2b$10$U4C0ZY8OG8y41F9LusfKyu3HRMBL0rCZcKBVsXhgr.n8Ou6FPhzO2"
MD5 = "5f4dcc3b5aa765d61d8327deb882cf99"
# A digest that begins with "+" is guarded like any other cell (base64 may start with it).
FIREBASE = "+lsbsQ6rFZVdMXi6pqBycQ==$c2FsdA==$a2V5$Bw==$8$14"


def user_row(user_id: str = "user_1", **cells: str) -> dict[str, str]:
    """A row as Clerk writes it: every column present, empty cells as empty strings."""
    row = dict.fromkeys(EXPORT_COLUMNS, "")
    row["id"] = user_id
    row.update(cells)
    return row


def write_export(
    path: Path,
    rows: Iterable[Mapping[str, str]],
    *,
    columns: Sequence[str] = EXPORT_COLUMNS,
    bom: bool = False,
    lineterminator: str = "\r\n",
    quoting: int = csv.QUOTE_MINIMAL,
) -> Path:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=lineterminator, quoting=quoting)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(column, "") for column in columns])
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8"))
    return path


def write_raw(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def scan_export(path: Path) -> Iterator[ExportIndexEntry]:
    """Index a whole export in one streamed pass (``ExportFile.scan``)."""
    with ExportFile(path) as export:
        yield from export.scan()


def read_row(path: Path, offset: int, row_number: int) -> ExportRow:
    """One row by offset (``ExportFile.row_at``)."""
    with ExportFile(path) as export:
        return export.row_at(offset, row_number)


def iter_rows(path: Path) -> Iterator[ExportRow]:
    """Every row of an export, streamed (``ExportFile.rows``)."""
    with ExportFile(path) as export:
        yield from export.rows()


HEADER = ",".join(EXPORT_COLUMNS)


# -- parsing ------------------------------------------------------------------------------------


def test_reads_a_dashboard_export_like_clerks_sample(tmp_path: Path) -> None:
    path = write_export(
        tmp_path / "clerk.csv",
        [
            user_row(
                "user_2YDryYFVMM1W1plDDKz7Gzf4we6",
                first_name="Jane",
                last_name="Doe",
                primary_email_address="janedoe@test.com",
                verified_email_addresses="janedoe@test.com",
                password_digest=BCRYPT,
                password_hasher="bcrypt",
            ),
            user_row(
                "user_2ZZCgLE7kJG2CRBxTZ6YUIvzS10",
                username="johnny",
                primary_phone_number="\t+61412345678",
                verified_phone_numbers="\t+61412345678",
                totp_secret="JBSWY3DPEHPK3PXP",
            ),
        ],
    )

    rows = list(iter_rows(path))

    assert rows == [
        ExportRow(
            user_id="user_2YDryYFVMM1W1plDDKz7Gzf4we6",
            row_number=2,
            first_name="Jane",
            last_name="Doe",
            primary_email="janedoe@test.com",
            verified_emails=("janedoe@test.com",),
            password_hasher="bcrypt",
            password_digest=BCRYPT,
        ),
        ExportRow(
            user_id="user_2ZZCgLE7kJG2CRBxTZ6YUIvzS10",
            row_number=3,
            username="johnny",
            primary_phone="+61412345678",
            verified_phones=("+61412345678",),
            has_totp=True,  # the secret itself is not kept
        ),
    ]
    assert "JBSWY3DPEHPK3PXP" not in repr(rows)
    assert rows[1].password_digest is None and rows[1].first_name is None


def test_export_columns_are_clerks_thirteen_in_order() -> None:
    assert EXPORT_COLUMNS[0] == "id"
    assert len(EXPORT_COLUMNS) == 13
    assert EXPORT_COLUMNS[-2:] == ("password_digest", "password_hasher")


@pytest.mark.parametrize(
    "columns",
    [
        tuple(reversed(EXPORT_COLUMNS)),
        tuple(random.Random(7).sample(EXPORT_COLUMNS, len(EXPORT_COLUMNS))),
        ("created_at", *EXPORT_COLUMNS, "banned", "public_metadata"),
        ("password_hasher", "id", "password_digest", "primary_email_address"),
        (" ID ", "First_Name"),  # header names are matched trimmed and case-insensitively
    ],
    ids=["reversed", "shuffled", "extra-columns", "subset", "case-and-blanks"],
)
def test_parses_by_header_name_whatever_the_order(tmp_path: Path, columns: tuple[str, ...]) -> None:
    row = user_row(
        "user_1",
        first_name="Ann",
        primary_email_address="ann@example.com",
        password_digest=BCRYPT,
        password_hasher="bcrypt",
        created_at="2024-01-01",
        banned="true",
        public_metadata='{"a": 1}',
    )
    row[" ID "] = "user_1"
    row["First_Name"] = "Ann"
    path = write_export(tmp_path / "e.csv", [row], columns=columns)

    (parsed,) = iter_rows(path)

    present = {column.strip().lower() for column in columns}
    assert parsed.user_id == "user_1"
    assert parsed.first_name == ("Ann" if "first_name" in present else None)
    assert parsed.primary_email == ("ann@example.com" if "primary_email_address" in present else None)
    assert parsed.password_digest == (BCRYPT if "password_digest" in present else None)
    assert parsed.password_hasher == ("bcrypt" if "password_hasher" in present else None)


def test_a_utf8_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    path = write_export(tmp_path / "bom.csv", [user_row("user_1", first_name="Zoë")], bom=True)

    (entry,) = scan_export(path)
    (row,) = iter_rows(path)

    assert row.user_id == "user_1" and row.first_name == "Zoë"
    assert entry.offset == 3 + len((HEADER + "\r\n").encode())
    assert read_row(path, entry.offset, entry.row_number) == row


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("\t+61412345678", "+61412345678"),
        ("\t=SUM(A1:A2)", "=SUM(A1:A2)"),
        ("\t-dash", "-dash"),
        ("\t@handle", "@handle"),
        ("\t＝full", "＝full"),
        ("\t＋full", "＋full"),
        ("\t－full", "－full"),
        ("\t＠full", "＠full"),
        ("\t\tdouble", "\tdouble"),  # a TAB guarded by a TAB: only the guard goes
        ("\t\t+1", "\t+1"),
        ("\tJane", "\tJane"),  # not a formula character: the TAB is data
        ("Jane\t+1", "Jane\t+1"),  # a TAB elsewhere is data
        (" \t+1", " \t+1"),  # the guard is only ever the first character
        ("+plain", "+plain"),
        ("\t", "\t"),
    ],
)
def test_strips_exactly_the_formula_guard_tab(tmp_path: Path, cell: str, expected: str) -> None:
    path = write_export(tmp_path / "e.csv", [user_row("user_1", first_name=cell)])

    (row,) = iter_rows(path)

    assert row.first_name == expected


def test_the_guard_is_stripped_in_every_kind_of_cell(tmp_path: Path) -> None:
    path = write_export(
        tmp_path / "e.csv",
        [
            user_row(
                "user_1",
                last_name="\t-Smith",
                username="\t@jo",
                primary_email_address="\t@odd@example.com",
                primary_phone_number="\t+447400123456",
                verified_phone_numbers="\t+447400123456|\t+61412345678",
                unverified_phone_numbers="\t+12015550123",
                password_digest="\t" + FIREBASE,
                password_hasher="scrypt_firebase",
            )
        ],
    )

    (row,) = iter_rows(path)

    assert row.last_name == "-Smith"
    assert row.username == "@jo"
    assert row.primary_email == "@odd@example.com"
    assert row.primary_phone == "+447400123456"
    assert row.verified_phones == ("+447400123456", "+61412345678")
    assert row.unverified_phones == ("+12015550123",)
    assert row.password_digest == FIREBASE


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("a@x.dev|b@x.dev", ("a@x.dev", "b@x.dev")),
        ("a@x.dev,b@x.dev", ("a@x.dev", "b@x.dev")),
        ("a@x.dev; b@x.dev", ("a@x.dev", "b@x.dev")),
        (" a@x.dev | b@x.dev ,c@x.dev;d@x.dev ", ("a@x.dev", "b@x.dev", "c@x.dev", "d@x.dev")),
        ("a@x.dev||b@x.dev|", ("a@x.dev", "b@x.dev")),
        ("a@x.dev|a@x.dev", ("a@x.dev",)),
        ('["a@x.dev", "b@x.dev"]', ("a@x.dev", "b@x.dev")),  # Clerk's CLI also accepts JSON arrays
        ("[not json", ("[not json",)),
        ("a@x.dev", ("a@x.dev",)),
        ("", ()),
        ("   ", ()),
        ("|,;", ()),
    ],
)
def test_splits_multi_value_cells(tmp_path: Path, cell: str, expected: tuple[str, ...]) -> None:
    path = write_export(
        tmp_path / "e.csv",
        [user_row("user_1", verified_email_addresses=cell, unverified_email_addresses=cell)],
    )

    (row,) = iter_rows(path)

    assert row.verified_emails == expected
    assert row.unverified_emails == expected


def test_empty_cells_are_none_or_empty_tuples(tmp_path: Path) -> None:
    path = write_export(tmp_path / "e.csv", [user_row("user_1")])

    (row,) = iter_rows(path)

    assert row == ExportRow(user_id="user_1", row_number=2)


def test_identifier_cells_lose_surrounding_blanks_but_names_do_not(tmp_path: Path) -> None:
    path = write_export(
        tmp_path / "e.csv",
        [
            user_row(
                " user_1 ",
                first_name=" Ann ",
                username=" ann ",
                primary_email_address=" ann@example.com ",
                password_hasher=" bcrypt ",
            )
        ],
    )

    (row,) = iter_rows(path)

    assert (row.user_id, row.username, row.primary_email, row.password_hasher) == (
        "user_1",
        "ann",
        "ann@example.com",
        "bcrypt",
    )
    assert row.first_name == " Ann "


def test_quoted_newlines_and_commas_keep_records_whole_and_rows_numbered_by_line(tmp_path: Path) -> None:
    path = write_export(
        tmp_path / "e.csv",
        [
            user_row("user_1", first_name="Line one\nline two\r\nline three", last_name='O"Brien, Jr.'),
            user_row("user_2", first_name="Bob"),
        ],
    )

    rows = list(iter_rows(path))
    entries = list(scan_export(path))

    assert rows[0].first_name == "Line one\nline two\r\nline three"
    assert rows[0].last_name == 'O"Brien, Jr.'
    assert [row.row_number for row in rows] == [2, 5]
    assert [entry.row_number for entry in entries] == [2, 5]
    assert [read_row(path, e.offset, e.row_number) for e in entries] == rows


@pytest.mark.parametrize("lineterminator", ["\r\n", "\n"])
def test_blank_lines_and_spreadsheet_empty_rows_are_not_users(tmp_path: Path, lineterminator: str) -> None:
    eol = lineterminator
    text = f"{HEADER}{eol}{eol}user_1,Ann{',' * 11}{eol}{',' * 12}{eol}{eol}user_2{',' * 12}{eol}{eol}"
    path = write_raw(tmp_path / "e.csv", text)

    assert [(e.user_id, e.row_number) for e in scan_export(path)] == [("user_1", 3), ("user_2", 6)]
    assert [row.user_id for row in iter_rows(path)] == ["user_1", "user_2"]


def test_a_file_without_a_final_newline_reads_its_last_row(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "e.csv", f"{HEADER}\nuser_1,Ann")

    (row,) = iter_rows(path)

    assert (row.user_id, row.first_name) == ("user_1", "Ann")


def test_rows_shorter_than_the_header_read_missing_cells_as_empty(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "e.csv", f"{HEADER}\nuser_1,Ann\n")

    (row,) = iter_rows(path)

    assert row == ExportRow(user_id="user_1", row_number=2, first_name="Ann")


def test_a_header_only_export_has_no_rows(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "e.csv", HEADER + "\r\n")

    assert list(scan_export(path)) == []
    assert list(iter_rows(path)) == []


def test_scan_reports_hasher_and_whether_a_digest_exists_but_never_the_digest(tmp_path: Path) -> None:
    path = write_export(
        tmp_path / "e.csv",
        [
            user_row("user_1", password_digest=BCRYPT, password_hasher="bcrypt"),
            user_row("user_2"),
            user_row("user_3", password_hasher="md5"),
            user_row("user_4", password_digest=MD5),
        ],
    )

    entries = list(scan_export(path))

    assert [(e.user_id, e.hasher, e.has_digest) for e in entries] == [
        ("user_1", "bcrypt", True),
        ("user_2", None, False),
        ("user_3", "md5", False),
        ("user_4", None, True),
    ]
    assert all(BCRYPT not in repr(e) and MD5 not in repr(e) for e in entries)
    assert not hasattr(ExportIndexEntry, "digest")


def test_export_row_repr_never_shows_the_digest(tmp_path: Path) -> None:
    path = write_export(tmp_path / "e.csv", [user_row("user_1", password_digest=BCRYPT, password_hasher="bcrypt")])

    (row,) = iter_rows(path)

    assert row.password_digest == BCRYPT
    assert BCRYPT not in repr(row) and BCRYPT not in str(row)


# -- random access ------------------------------------------------------------------------------


def test_row_at_works_in_any_order_and_interleaved_with_a_scan(tmp_path: Path) -> None:
    rows = [user_row(f"user_{i}", first_name=f"N{i}\n{i}" if i % 3 == 0 else f"N{i}") for i in range(30)]
    path = write_export(tmp_path / "e.csv", rows)
    expected = {row.user_id: row for row in iter_rows(path)}

    with ExportFile(path) as export:
        scan = export.scan()
        first_ten = [next(scan) for _ in range(10)]
        # Random access while the scan is half way: the scan must not lose its place.
        for entry in reversed(first_ten):
            assert export.row_at(entry.offset, entry.row_number) == expected[entry.user_id]
        entries = first_ten + list(scan)
        random.Random(3).shuffle(entries)
        for entry in entries:
            assert export.row_at(entry.offset, entry.row_number, expected_id=entry.user_id) == (expected[entry.user_id])

    assert len(entries) == 30


def test_row_at_refuses_an_offset_that_does_not_start_the_expected_record(tmp_path: Path) -> None:
    path = write_export(tmp_path / "e.csv", [user_row("user_1"), user_row("user_2")])
    first, second = scan_export(path)

    with ExportFile(path) as export:
        with pytest.raises(InputError, match=r"expected user 'user_1' but found 'user_2'") as wrong:
            export.row_at(second.offset, second.row_number, expected_id="user_1")
        with pytest.raises(InputError, match="no record at byte offset") as past_end:
            export.row_at(path.stat().st_size, 9)
        with pytest.raises(InputError, match="inside the header") as in_header:
            export.row_at(0, 1)

    for error in (wrong, past_end, in_header):
        assert str(path) in str(error.value)
    assert first.offset < second.offset


# Cell contents for the property test: unicode, quotes, separators, CR/LF, guard characters.
cell_text = st.text(
    alphabet=st.sampled_from(list("ab zé漢😀\"',;|\t\r\n=+-@＝＋－＠\\")) | st.characters(codec="utf-8"),
    max_size=20,
)
emails = st.lists(st.from_regex(r"[a-z0-9]{1,8}@[a-z]{1,8}\.(com|dev|io)", fullmatch=True), max_size=3)


@st.composite
def export_rows(draw: st.DrawFn) -> list[dict[str, str]]:
    count = draw(st.integers(min_value=1, max_value=12))
    rows = []
    for index in range(count):
        rows.append(
            user_row(
                f"user_{index}",
                first_name=draw(cell_text),
                last_name=draw(cell_text),
                username=draw(cell_text),
                verified_email_addresses="|".join(draw(emails)),
                unverified_email_addresses=",".join(draw(emails)),
                password_digest=draw(st.sampled_from(["", BCRYPT, MD5, FIREBASE])),
                password_hasher=draw(st.sampled_from(["", "bcrypt", "md5", "scrypt_firebase"])),
            )
        )
    return rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=export_rows(),
    columns=st.permutations(EXPORT_COLUMNS),
    bom=st.booleans(),
    # Python 3.11's writer leaves a lone CR unquoted when the terminator is LF: quote all then.
    style=st.sampled_from([("\r\n", csv.QUOTE_MINIMAL), ("\r\n", csv.QUOTE_ALL), ("\n", csv.QUOTE_ALL)]),
    seed=st.integers(0, 2**16),
)
def test_every_scanned_offset_reads_back_the_same_row_as_streaming(
    tmp_path: Path,
    rows: list[dict[str, str]],
    columns: list[str],
    bom: bool,
    style: tuple[str, int],
    seed: int,
) -> None:
    lineterminator, quoting = style
    path = write_export(
        tmp_path / "prop.csv", rows, columns=columns, bom=bom, lineterminator=lineterminator, quoting=quoting
    )

    streamed = list(iter_rows(path))
    entries = list(scan_export(path))

    assert [row.user_id for row in streamed] == [row["id"] for row in rows]
    assert [(e.user_id, e.row_number) for e in entries] == [(r.user_id, r.row_number) for r in streamed]
    assert [e.has_digest for e in entries] == [bool(r["password_digest"]) for r in rows]
    order = list(range(len(entries)))
    random.Random(seed).shuffle(order)
    with ExportFile(path) as export:
        for index in order:
            entry = entries[index]
            assert export.row_at(entry.offset, entry.row_number, expected_id=entry.user_id) == streamed[index]
    for row, source in zip(streamed, rows, strict=True):
        assert row.password_digest == (source["password_digest"] or None)
        assert row.verified_emails == tuple(
            dict.fromkeys(e for e in source["verified_email_addresses"].split("|") if e)
        )


# -- refusing bad files -------------------------------------------------------------------------


def _error(path: Path) -> InputError:
    with pytest.raises(InputError) as caught:
        list(scan_export(path))
    return caught.value


SECRET_ROW = f"user_9,Eve,,,,,,,,,,{BCRYPT},bcrypt"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("user_id,email\r\nuser_1,a@x.dev\r\n", r"no 'id' column.*'user_id', 'email'", id="no-id-column"),
        pytest.param(
            f'{HEADER}\r\nuser_1,"Ja"ne,,,,,,,,,,,\r\n{SECRET_ROW}\r\n', r"row 2: malformed CSV", id="bad-quote"
        ),
        pytest.param(
            f'{HEADER}\r\n{SECRET_ROW}\r\nuser_2,"never closed,,,,,,,,,,,\r\n', r"row 3: malformed CSV", id="unclosed"
        ),
        pytest.param(
            f"{HEADER}\r\n{SECRET_ROW}\r\n{SECRET_ROW.replace('user_9', 'user_2')},extra\r\n",
            r"row 3: 14 cells but the header has 13 columns",
            id="too-many-cells",
        ),
        pytest.param(
            f"{HEADER}\r\n{SECRET_ROW}\r\n,Nobody,,,,,,,,,,{BCRYPT},bcrypt\r\n",
            r"row 3: the id cell is empty",
            id="empty-id",
        ),
        pytest.param(
            f"{HEADER}\r\n{SECRET_ROW}\r\nuser_2,,,,,,,,,,,,\r\n\t{SECRET_ROW}\r\n",
            r"row 4: user id 'user_9' already appears at row 2",
            id="duplicate-id",
        ),
        pytest.param(
            f"{HEADER}\r\n{SECRET_ROW}\r\n".encode() + b"user_2,Ren\xe9,,,,,,,,,,,\r\n",
            r"line 3: not valid UTF-8",
            id="latin-1",
        ),
        pytest.param(f"{HEADER}\n{SECRET_ROW}\nuser_2,Ann\rMarie,,,,,,,,,,,\n", r"row 3: malformed CSV", id="bare-cr"),
        pytest.param("", r"the file is empty", id="empty-file"),
    ],
)
def test_refuses_corrupt_exports_naming_file_and_row(tmp_path: Path, content: str | bytes, expected: str) -> None:
    path = write_raw(tmp_path / "corrupt.csv", content)

    error = _error(path)

    assert str(path) in str(error)
    assert re.search(expected, str(error)), str(error)
    assert BCRYPT not in str(error)
    assert error.exit_code == 2


def test_bad_utf8_in_the_header_is_refused_when_the_file_is_opened(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "e.csv", b"id,first_n\xffme\r\nuser_1,Ann\r\n")

    with pytest.raises(InputError, match=r"line 1: not valid UTF-8"):
        ExportFile(path)


@pytest.mark.parametrize("digest", [BCRYPT, MD5, "a" * 64], ids=["bcrypt", "md5-hex", "sha256-hex"])
def test_a_file_without_its_header_never_echoes_the_digest(tmp_path: Path, digest: str) -> None:
    hasher = {BCRYPT: "bcrypt", MD5: "md5"}.get(digest, "sha256")
    path = write_raw(tmp_path / "headless.csv", f"user_1,Jane,,,j@x.dev,,,,,,,{digest},{hasher}\r\n")

    error = _error(path)

    assert "no 'id' column" in str(error) and str(path) in str(error)
    assert digest not in str(error)
    assert "'Jane'" in str(error)  # plain names are still shown, to help recognise the file


def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open"):
        ExportFile(tmp_path / "nope.csv")


def test_a_hash_collision_is_not_mistaken_for_a_duplicate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_module, "_id_key", lambda user_id: 0)  # every id collides
    path = write_export(tmp_path / "e.csv", [user_row(f"user_{i}") for i in range(5)])

    assert [e.user_id for e in scan_export(path)] == [f"user_{i}" for i in range(5)]

    write_export(path, [user_row("user_0"), user_row("user_1"), user_row("user_0")])
    with pytest.raises(InputError, match=r"row 4: user id 'user_0' already appears at row 2"):
        list(scan_export(path))


def test_errors_from_later_rows_surface_during_iteration_not_before(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "e.csv", f"{HEADER}\r\nuser_1{',' * 12}\r\nuser_2{',' * 13}\r\n")

    scan = scan_export(path)
    assert next(scan).user_id == "user_1"
    with pytest.raises(InputError, match="row 3"):
        next(scan)


# -- cell problems ------------------------------------------------------------------------------


def test_row_problems_names_row_user_column_and_value() -> None:
    row = ExportRow(
        user_id="user_abc",
        row_number=12,
        primary_email="ok@example.com",
        verified_emails=("ok@example.com", "not-an-email"),
        unverified_emails=("also bad@",),
        primary_phone="+61412345678",
        verified_phones=("12345",),
        unverified_phones=("+15555550100",),
    )

    assert row_problems(row) == [
        "row 12 (user_abc): verified_email_addresses: 'not-an-email' is not a valid email address",
        "row 12 (user_abc): unverified_email_addresses: 'also bad@' is not a valid email address",
        "row 12 (user_abc): verified_phone_numbers: '12345' is not a valid phone number",
        "row 12 (user_abc): unverified_phone_numbers: '+15555550100' is not a valid phone number",
    ]


def test_row_problems_is_empty_for_a_clean_row() -> None:
    row = ExportRow(
        user_id="user_1",
        row_number=2,
        primary_email="a@example.com",
        verified_emails=("a@example.com", "b@example.dev"),
        primary_phone="+447400123456",
        verified_phones=("+447400123456",),
        password_hasher="bcrypt",
        password_digest=BCRYPT,
    )

    assert row_problems(row) == []


def test_row_problems_flags_half_a_password_without_showing_the_digest() -> None:
    digest_only = ExportRow(user_id="user_1", row_number=2, password_digest=BCRYPT)
    hasher_only = ExportRow(user_id="user_2", row_number=3, password_hasher="bcrypt")
    bad_primary = ExportRow(user_id="user_3", row_number=4, primary_email="x" * 200)

    (digest_problem,) = row_problems(digest_only)
    (hasher_problem,) = row_problems(hasher_only)
    (long_problem,) = row_problems(bad_primary)

    assert digest_problem == "row 2 (user_1): password_hasher: empty, but the row has a password digest"
    assert BCRYPT not in digest_problem
    assert hasher_problem == "row 3 (user_2): password_digest: empty, but password_hasher is 'bcrypt'"
    assert long_problem.startswith("row 4 (user_3): primary_email_address: 'xxx")
    assert len(long_problem) < 160  # long values are shortened
