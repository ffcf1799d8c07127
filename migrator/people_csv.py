"""CSV files meant for people: one writer that makes every cell safe to open in a spreadsheet, and its
exact inverse for the files the migrator reads back (``run --only-file``).

A spreadsheet (Excel, LibreOffice, Google Sheets) runs a cell that begins with ``=``, ``+``, ``-`` or
``@`` as a formula, and OWASP counts a leading TAB, CR or LF among the risky starts; the values in our
reports are chosen by Clerk users (an email ``=hyperlink...@example.com`` is a valid address, every
E.164 phone begins with ``+``). Such a cell is written with a leading apostrophe, OWASP's
recommendation (ASVS 1.2.10): a spreadsheet shows it as text, and unlike a TAB (Clerk's dashboard
export uses one), the guard is not itself whitespace an import may trim away.

The rule, precisely (the reader strips exactly what the writer adds, so every string round-trips):

* ``FORMULA_STARTS``: ``= + - @``, TAB, CR, LF and the full-width ``＝ ＋ － ＠`` (the set Clerk's own
  export guards);
* the writer prefixes ``'`` to a cell that begins with one of them, or with ``'`` followed by one of
  them or by another ``'`` (so a value that really begins ``'=`` stays distinguishable);
* the reader removes one leading ``'`` that is followed by one of them or by ``'``; as a regular
  expression: ``^'(?=[=+\\-@\\t\\r\\n'＝＋－＠])``.

Files meant for machines (Kinde's import files, ``organizations.csv`` for Kinde's import, the id-map
SQL) never pass through here: Kinde parses them, and a guard would become part of the value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import Any, TextIO

GUARD = "'"
FORMULA_STARTS = frozenset("=+-@\t\r\n＝＋－＠")
_AFTER_GUARD = FORMULA_STARTS | {GUARD}
_CRLF = "\r\n"


def guard(value: str) -> str:
    """The cell as written: an apostrophe before text a spreadsheet could run (see the module doc)."""
    first = value[:1]
    if first in FORMULA_STARTS or (first == GUARD and value[1:2] in _AFTER_GUARD):
        return GUARD + value
    return value


def unguard(cell: str) -> str:
    """The value a guarded cell holds: ``guard``'s exact inverse."""
    if cell[:1] == GUARD and cell[1:2] in _AFTER_GUARD:
        return cell[1:]
    return cell


def _cell(value: Any) -> str:
    return "" if value is None else guard(str(value))


def write_csv(
    handle: TextIO,
    rows: Iterable[Sequence[Any]],
    header: Sequence[str] | None = None,
    *,
    lineterminator: str = _CRLF,
) -> None:
    """Write ``header`` (when given) and ``rows``, every cell guarded; None is an empty cell.

    Rows are formatted with CSV's own CRLF terminator, so a cell holding a CR or LF is always quoted
    (``csv`` quotes only the characters of its terminator), then end with ``lineterminator``."""
    rows = rows if header is None else chain([header], rows)
    if lineterminator == _CRLF:  # the reports: csv's own terminator, one writer for the stream
        csv.writer(handle).writerows([_cell(value) for value in row] for row in rows)
        return
    line = io.StringIO()
    writer = csv.writer(line)
    for row in rows:
        line.seek(0)
        line.truncate()
        writer.writerow([_cell(value) for value in row])
        handle.write(line.getvalue()[:-2] + lineterminator)


def read_csv(handle: Iterable[str]) -> Iterator[list[str]]:
    """The rows of a file ``write_csv`` wrote (or one a person edited), each cell unguarded."""
    for row in csv.reader(handle):
        yield [unguard(cell) for cell in row]
