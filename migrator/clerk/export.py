"""Read Clerk's dashboard CSV export (the only place password digests come from).

The API is the source of truth for users; this file only adds what the API never returns
(the password digest and its hasher). A run joins the two by user id, and an export can hold a
million rows, so the reader never keeps rows in memory: ``ExportFile.scan`` makes one streamed
pass that records where each record starts (byte offset, line number), and ``row_at`` later
re-reads exactly one record from that offset. Digests are therefore never stored anywhere but
the export itself.

Every problem that makes the file untrustworthy (no ``id`` column, broken quoting, a row wider
than the header, bytes that are not UTF-8, an empty or duplicate id) is an ``InputError`` naming
the file and the line. Problems with single cells (an address that is not an email) do not stop
a run; ``row_problems`` lists them for the operator. No message ever contains a digest.
"""

from __future__ import annotations

import csv
import json
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from migrator.errors import InputError
from migrator.mapping import email_problem, parse_phone
from migrator.models import ExportRow

EXPORT_COLUMNS: tuple[str, ...] = (
    "id",
    "first_name",
    "last_name",
    "username",
    "primary_email_address",
    "primary_phone_number",
    "verified_email_addresses",
    "unverified_email_addresses",
    "verified_phone_numbers",
    "unverified_phone_numbers",
    "totp_secret",
    "password_digest",
    "password_hasher",
)

_UTF8_BOM = b"\xef\xbb\xbf"
# Clerk prefixes a TAB to any value starting with = + - @ (or their full-width forms) so that a
# spreadsheet does not run it as a formula. Same pattern as Clerk's own importer: only that TAB.
_FORMULA_GUARD = re.compile(r"^\t(?=[=+\-@\t\r\n＝＋－＠])")
_LIST_SEPARATORS = re.compile(r"[|,;]")
# What may be echoed from a header that lacks ``id``: plain column-like names only, so that a
# file without a header (whose first line is a user, digest included) never leaks a digest.
_SHOWABLE_COLUMN = re.compile(r"^[A-Za-z_][\w .\-]{0,39}$")
_HEX_RUN = re.compile(r"^[0-9a-fA-F]{16,}$")


@dataclass(frozen=True, slots=True)
class ExportIndexEntry:
    """Where one user's record starts, plus what the index needs without the digest itself."""

    user_id: str
    offset: int  # byte offset of the record's first line, from the start of the file
    row_number: int  # 1-based line number of that first line (the header is line 1)
    hasher: str | None
    has_digest: bool


class _LineSource:
    """Feeds ``csv.reader`` one decoded line at a time and knows where the next line starts.

    ``csv.reader`` pulls lines lazily and never reads ahead, so the position noted before asking
    it for a record is exactly where that record begins, even when quoted cells span lines.
    """

    def __init__(self, handle: BinaryIO, path: Path, offset: int, line_number: int) -> None:
        self._handle = handle
        self._path = path
        self.offset = offset
        self.line_number = line_number

    def __iter__(self) -> _LineSource:
        return self

    def __next__(self) -> str:
        raw = self._handle.readline()
        if not raw:
            raise StopIteration
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Own message: the decoder's would quote bytes of the line, which may be a digest.
            raise InputError(
                f"{self._path}: line {self.line_number}: not valid UTF-8 (byte {exc.start + 1} of the "
                "line); save the export as UTF-8"
            ) from None
        self.offset += len(raw)
        self.line_number += 1
        return text


@dataclass(frozen=True, slots=True)
class _Record:
    offset: int
    row_number: int
    cells: list[str]


def _id_key(user_id: str) -> int:
    """A small stand-in for an id in the duplicate check (collisions are confirmed, not trusted)."""
    return hash(user_id)


def _unguard(value: str) -> str:
    return _FORMULA_GUARD.sub("", value, count=1)


def _single(value: str, *, strip: bool) -> str | None:
    """A one-value cell: guard TAB removed; identifiers also lose surrounding blanks."""
    value = _unguard(value)
    if strip:
        value = value.strip()
    return value or None


def _multi(value: str) -> tuple[str, ...]:
    """A list cell: split on ``|``, ``,`` or ``;`` (or a JSON array, as Clerk's CLI accepts)."""
    value = _unguard(value).strip()
    if not value:
        return ()
    parts: list[str] | None = None
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            parts = parsed
    if parts is None:
        parts = _LIST_SEPARATORS.split(value)
    cleaned = (_unguard(part.strip()).strip() for part in parts)
    return tuple(dict.fromkeys(part for part in cleaned if part))


def _showable_columns(cells: Sequence[str]) -> str:
    shown = [
        repr(cell.strip()) if _SHOWABLE_COLUMN.match(cell.strip()) and not _HEX_RUN.match(cell.strip()) else "…"
        for cell in cells[:20]
    ]
    if len(cells) > 20:
        shown.append(f"… {len(cells) - 20} more")
    return ", ".join(shown) if shown else "none"


class OpenedExport:
    """An export file held open for ``row_at``, which seeks its one handle under a lock (CSV and JSON)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._handle: BinaryIO = self.path.open("rb")
        except OSError as exc:
            raise InputError(f"{self.path}: cannot open the Clerk export ({exc.strerror})") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ExportFile(OpenedExport):
    """One Clerk dashboard export, opened once, header parsed once.

    ``scan()`` and ``rows()`` each stream the file through their own handle, so they may be
    interleaved with ``row_at`` (which seeks the shared handle under a lock) in any order.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            self._read_header()
        except BaseException:
            self._handle.close()
            raise

    # -- header ------------------------------------------------------------------------------

    def _read_header(self) -> None:
        start = len(_UTF8_BOM) if self._handle.read(len(_UTF8_BOM)) == _UTF8_BOM else 0
        self._handle.seek(start)
        source = _LineSource(self._handle, self.path, start, 1)
        header = self._next_record(csv.reader(source, strict=True), source, check_width=False)
        if header is None:
            raise InputError(f"{self.path}: the file is empty; expected Clerk's export header row")
        self.columns: tuple[str, ...] = tuple(cell.strip() for cell in header.cells)
        names = [column.lower() for column in self.columns]
        # First occurrence wins if a column name repeats.
        self._positions: dict[str, int] = {}
        for position, name in enumerate(names):
            if name in EXPORT_COLUMNS:
                self._positions.setdefault(name, position)
        if "id" not in self._positions:
            raise InputError(
                f"{self.path}: row {header.row_number}: no 'id' column in the header; "
                f"columns found: {_showable_columns(header.cells)} "
                "(is this Clerk's dashboard export, with its header row?)"
            )
        self._data_offset = source.offset
        self._data_line = source.line_number

    # -- record reading ----------------------------------------------------------------------

    def _next_record(
        self, reader: Iterator[list[str]], source: _LineSource, *, check_width: bool = True
    ) -> _Record | None:
        """The next non-blank record with where it starts, or None at the end of the file."""
        while True:
            offset, line = source.offset, source.line_number
            try:
                cells = next(reader)
            except StopIteration:
                return None
            except csv.Error as exc:
                # The csv module's wording for a bare CR talks about how Python opened the file;
                # say what is wrong with the file instead. Its messages never quote cell contents.
                problem = "a line break inside an unquoted cell" if "new-line" in str(exc) else str(exc)
                raise InputError(
                    f"{self.path}: row {line}: malformed CSV record ({problem}); check the quoting"
                ) from None
            # Blank lines, and the all-empty rows spreadsheets leave behind, are not users.
            if not any(cell.strip() for cell in cells):
                continue
            if check_width and len(cells) > len(self.columns):
                raise InputError(
                    f"{self.path}: row {line}: {len(cells)} cells but the header has "
                    f"{len(self.columns)} columns (a stray comma or broken quoting?)"
                )
            return _Record(offset, line, cells)

    def _records(self) -> Iterator[_Record]:
        """Every data record, streamed through a handle of its own."""
        with self.path.open("rb") as handle:
            handle.seek(self._data_offset)
            source = _LineSource(handle, self.path, self._data_offset, self._data_line)
            reader = csv.reader(source, strict=True)
            while (record := self._next_record(reader, source)) is not None:
                yield record

    def _cell(self, record: _Record, column: str) -> str:
        position = self._positions.get(column)
        if position is None or position >= len(record.cells):
            return ""
        return record.cells[position]

    def _user_id(self, record: _Record) -> str:
        user_id = _single(self._cell(record, "id"), strip=True)
        if user_id is None:
            raise InputError(f"{self.path}: row {record.row_number}: the id cell is empty")
        return user_id

    def _to_row(self, record: _Record) -> ExportRow:
        def single(column: str, *, strip: bool = True) -> str | None:
            return _single(self._cell(record, column), strip=strip)

        def multi(column: str) -> tuple[str, ...]:
            return _multi(self._cell(record, column))

        return ExportRow(
            user_id=self._user_id(record),
            row_number=record.row_number,
            # Names are kept as typed (a TAB that is not the formula guard stays).
            first_name=single("first_name", strip=False),
            last_name=single("last_name", strip=False),
            username=single("username"),
            primary_email=single("primary_email_address"),
            primary_phone=single("primary_phone_number"),
            verified_emails=multi("verified_email_addresses"),
            unverified_emails=multi("unverified_email_addresses"),
            verified_phones=multi("verified_phone_numbers"),
            unverified_phones=multi("unverified_phone_numbers"),
            password_hasher=single("password_hasher"),
            password_digest=single("password_digest"),
            has_totp=bool(self._cell(record, "totp_secret").strip()),
        )

    # -- public ------------------------------------------------------------------------------

    def scan(self, *, check_duplicates: bool = True) -> Iterator[ExportIndexEntry]:
        """One streamed pass: where each user's record starts, checking the whole file's shape.

        Duplicate ids are found with a set of string hashes (a fraction of the memory of the
        ids themselves); a hash hit is confirmed by re-reading the file up to that point, which
        also names the first row. That re-read only happens on the error path. A caller that
        stores the entries under a unique key (the journal) passes ``check_duplicates=False``
        and keeps memory flat however large the export.
        """
        seen: set[int] = set()
        for record in self._records():
            user_id = self._user_id(record)
            key = _id_key(user_id) if check_duplicates else 0
            if check_duplicates and key in seen:
                first = self._first_row_of(user_id, before=record.offset)
                if first is not None:
                    raise InputError(
                        f"{self.path}: row {record.row_number}: user id {user_id!r} already appears at "
                        f"row {first}; the export is corrupt (export it again)"
                    )
            if check_duplicates:
                seen.add(key)
            yield ExportIndexEntry(
                user_id=user_id,
                offset=record.offset,
                row_number=record.row_number,
                hasher=_single(self._cell(record, "password_hasher"), strip=True),
                has_digest=_single(self._cell(record, "password_digest"), strip=True) is not None,
            )

    def _first_row_of(self, user_id: str, *, before: int) -> int | None:
        for record in self._records():
            if record.offset >= before:
                return None
            if _single(self._cell(record, "id"), strip=True) == user_id:
                return record.row_number
        return None

    def rows(self) -> Iterator[ExportRow]:
        """Every row, streamed, in file order."""
        for record in self._records():
            yield self._to_row(record)

    def row_at(self, offset: int, row_number: int, *, expected_id: str | None = None) -> ExportRow:
        """Exactly one record, read from an offset ``scan`` produced.

        ``expected_id`` guards against an export replaced or edited since it was indexed: the
        record found there must belong to that user.
        """
        if offset < self._data_offset:
            raise InputError(f"{self.path}: byte offset {offset} is inside the header, not at a row")
        with self._lock:
            self._handle.seek(offset)
            source = _LineSource(self._handle, self.path, offset, row_number)
            record = self._next_record(csv.reader(source, strict=True), source)
        if record is None or record.offset != offset:
            raise InputError(
                f"{self.path}: row {row_number}: no record at byte offset {offset}; "
                "has the export changed since it was indexed?"
            )
        row = self._to_row(record)
        if expected_id is not None and row.user_id != expected_id:
            raise InputError(
                f"{self.path}: row {row_number}: expected user {expected_id!r} but found {row.user_id!r}; "
                "the export has changed since it was indexed (index it again)"
            )
        return row


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def row_problems(row: ExportRow) -> list[str]:
    """Cell-level problems that do not stop a run, as messages for the operator.

    Checks identifiers with the same rules the mapping uses, so a warning here predicts what
    mapping will drop. Never mentions the digest's value.
    """
    json_export = row.source == "json"
    where = f"{'user' if json_export else 'row'} {row.row_number} ({row.user_id})"
    problems: list[str] = []
    emails = [("primary_email_address", row.primary_email)] if row.primary_email else []
    emails += [("verified_email_addresses", value) for value in row.verified_emails]
    listed = "email_addresses" if json_export else "unverified_email_addresses"
    emails += [(listed, value) for value in row.unverified_emails]
    for column, value in emails:
        if email_problem(value) is not None:
            problems.append(f"{where}: {column}: {_shown(value)} is not a valid email address")
    phones = [("primary_phone_number", row.primary_phone)] if row.primary_phone else []
    phones += [("verified_phone_numbers", value) for value in row.verified_phones]
    listed = "phone_numbers" if json_export else "unverified_phone_numbers"
    phones += [(listed, value) for value in row.unverified_phones]
    for column, value in phones:
        if parse_phone(value) is None:
            problems.append(f"{where}: {column}: {_shown(value)} is not a valid phone number")
    if row.password_digest and not row.password_hasher:
        problems.append(f"{where}: password_hasher: empty, but the row has a password digest")
    if row.password_hasher and not row.password_digest:
        problems.append(f"{where}: password_digest: empty, but password_hasher is {_shown(row.password_hasher)}")
    return problems
