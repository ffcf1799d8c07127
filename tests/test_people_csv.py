"""The spreadsheet guard of the CSVs meant for people: what it guards, and that reading is its exact inverse."""

from __future__ import annotations

import csv
import io
import re
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from migrator.only_file import read_only_ids
from migrator.people_csv import FORMULA_STARTS, GUARD, guard, read_csv, unguard, write_csv

# The rule README gives a script that reads our reports back (one leading apostrophe, only before these).
DOCUMENTED_STRIP = re.compile(r"^'(?=[=+\-@\t\r\n'＝＋－＠])")

# Text rich in the characters that matter: formula starts, the guard itself, CSV's own specials.
_CHARS = st.sampled_from([*FORMULA_STARTS, GUARD, '"', ",", " ", "a", "1", "é", "\x00"])
tricky = st.one_of(st.text(), st.text(_CHARS, max_size=6))


@given(tricky)
@example("'")
@example("''")
@example("'=1+1")
@example("\t=1+1")
def test_unguard_inverts_guard(value: str) -> None:
    assert unguard(guard(value)) == value


@given(tricky)
def test_a_guarded_cell_never_begins_with_a_formula_character(value: str) -> None:
    cell = guard(value)
    assert cell[:1] not in FORMULA_STARTS
    assert (cell != value) == (
        value[:1] in FORMULA_STARTS or (value[:1] == GUARD and value[1:2] in {*FORMULA_STARTS, GUARD})
    )


@given(tricky)
def test_the_documented_regular_expression_is_the_reader(cell: str) -> None:
    assert DOCUMENTED_STRIP.sub("", cell, count=1) == unguard(cell)


def test_what_is_guarded_and_what_is_not() -> None:
    assert guard('=HYPERLINK("https://evil.example","click")') == '\'=HYPERLINK("https://evil.example","click")'
    assert guard("=hyperlink17@example.com") == "'=hyperlink17@example.com"
    assert guard("+14155550100") == "'+14155550100"  # every E.164 phone
    assert guard("-rf") == "'-rf" and guard("@SUM(A1)") == "'@SUM(A1)"
    assert guard("\tx") == "'\tx" and guard("\rx") == "'\rx" and guard("＝1") == "'＝1"
    assert guard("'=x") == "''=x" and guard("''") == "'''"  # a value that truly begins with the guard
    assert guard("'Ohana") == "'Ohana" and guard("'") == "'"  # an apostrophe before anything else is plain text
    for plain in ("", "user_2abc", "sam@example.com", "<script>alert(1)</script>", "a=b", " =x"):
        assert guard(plain) == plain


rows = st.lists(st.lists(tricky, min_size=1, max_size=4), max_size=5)


@given(rows, st.sampled_from(["\r\n", "\n"]))
def test_write_then_read_returns_every_string(table: list[list[str]], terminator: str) -> None:
    buffer = io.StringIO(newline="")
    write_csv(buffer, table, ["first", "second"], lineterminator=terminator)
    buffer.seek(0)
    assert list(read_csv(buffer)) == [["first", "second"], *table]


@given(rows)
def test_no_raw_cell_of_a_written_file_begins_with_a_formula_character(table: list[list[str]]) -> None:
    buffer = io.StringIO(newline="")
    write_csv(buffer, table, lineterminator="\n")
    buffer.seek(0)
    for row in csv.reader(buffer):
        assert all(cell[:1] not in FORMULA_STARTS for cell in row)


def test_none_is_an_empty_cell_and_numbers_are_text() -> None:
    buffer = io.StringIO(newline="")
    write_csv(buffer, [[None, 3, -1]], lineterminator="\n")
    assert buffer.getvalue() == ",3,'-1\n"


@given(st.lists(st.tuples(st.from_regex(r"user_[A-Za-z0-9]{4,12}", fullmatch=True), tricky), min_size=1, max_size=5))
def test_only_file_reads_the_ids_of_a_list_written_by_the_people_writer(listed: list[tuple[str, str]]) -> None:
    """api-users.csv is a list for people (guarded) and the input of `run --only-file` (unguarded on read)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "api-users.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            write_csv(handle, listed, ["clerk_id", "reason"], lineterminator="\n")
        assert read_only_ids(path) == {clerk_id for clerk_id, _ in listed}
        with path.open(newline="", encoding="utf-8") as handle:
            assert [tuple(row) for row in read_csv(handle)][1:] == listed
