"""Read Clerk's JSON export (the support export), streamed, with the CSV reader's interface.

Two shapes are read (../shared/reference/clerk-backend-api.md, section 4: what Clerk's migration tool
and WorkOS's migrate-clerk-users expect): a JSON array of users whose ``email_addresses`` and
``phone_numbers`` are lists (with ``primary_email_address``/``primary_phone_number``), and the same
array with those two as one string joined by ``|`` and no ``primary_*`` fields. One user per line
(NDJSON), or users one after another, is read too: a file whose first byte is ``{``.

The file can hold a million users, so it is never loaded whole: ``scan`` streams it through ijson's
push parser, which checks the whole document, and notes where each user object starts (its byte
offset) and its ordinal; each user's checked bytes are then built by the standard library's decoder.
``row_at`` later reads exactly that object again. Digests stay in the file.

ijson reports no byte positions, so the scan feeds the parser pieces cut just before each ``{`` that
can open a user (after ``[``, ``,`` or ``}``): the user's ``start_map`` then arrives during the send of
the piece that begins with its ``{``, whose offset is known. Parser messages are never shown: they
quote the document, digests included.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import ijson

from migrator.clerk.export import ExportFile, ExportIndexEntry, OpenedExport, _id_key, _multi
from migrator.errors import InputError
from migrator.models import ExportRow

_UTF8_BOM = b"\xef\xbb\xbf"
_BLANKS = b" \t\r\n"
CHUNK = 1 << 16
# A ``{`` that can open a user: after ``[`` (the first of an array), ``,`` (the next), ``}`` (NDJSON).
_USER_START = re.compile(rb"[\[,}][ \t\r\n]*(\{)")
_OPENERS = (b"[", b",", b"}", b"")
_DECODER = json.JSONDecoder()
_TEXT_FIELDS = ("id", "first_name", "last_name", "username", "primary_email_address", "primary_phone_number")
_SECRET_FIELDS = ("password_digest", "password_hasher", "totp_secret")
_LIST_FIELDS = ("email_addresses", "phone_numbers")


def is_json_export(path: Path) -> bool:
    """Told from the content, not the name: the first byte that is not blank (after a BOM) is ``[`` or ``{``."""
    with path.open("rb") as handle:
        head = handle.read(4096)
        while head and not head.lstrip(_BLANKS) and (more := handle.read(4096)):
            head = more
    head = head.removeprefix(_UTF8_BOM).lstrip(_BLANKS)
    return head[:1] in (b"[", b"{")


def _where(path: Path, ordinal: int, user_id: str | None = None) -> str:
    return f"{path}: user {ordinal}" + (f" ({user_id})" if user_id else "")


def _text_field(path: Path, ordinal: int, user_id: str | None, user: Mapping[str, Any], name: str) -> str | None:
    value = user.get(name)
    if value is None or isinstance(value, str):
        return value.strip() if isinstance(value, str) and name != "password_digest" else value
    # Never the value itself: it may be a digest in the wrong place.
    raise InputError(
        f"{_where(path, ordinal, user_id)}: field {name!r}: expected text or null, found {type(value).__name__}"
    )


def _list_field(path: Path, ordinal: int, user_id: str, user: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = user.get(name)
    if value is None:
        return ()
    if isinstance(value, str):  # WorkOS's shape: one string joined by |
        return _multi(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(dict.fromkeys(item.strip() for item in value if item.strip()))
    raise InputError(
        f"{_where(path, ordinal, user_id)}: field {name!r}: expected a list of text or one text joined by '|'"
    )


def user_row(path: Path, ordinal: int, user: Any) -> ExportRow:
    """One user object of the export as the row the mapping reads; a wrong type is an ``InputError``."""
    if not isinstance(user, dict):
        raise InputError(f"{_where(path, ordinal)}: not a JSON object (each user is an object with an 'id')")
    raw_id = user.get("id")
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        wrapped = [key for key, value in user.items() if isinstance(value, list) and isinstance(key, str)][:1]
        hint = (
            f" (is the list of users inside {wrapped[0]!r}? give the list itself)"
            if wrapped and wrapped[0].isidentifier()
            else ""
        )
        raise InputError(f"{_where(path, ordinal)}: no 'id'{hint}")
    user_id = _text_field(path, ordinal, None, user, "id")
    assert user_id is not None
    text = {name: _text_field(path, ordinal, user_id, user, name) for name in _TEXT_FIELDS[1:] + _SECRET_FIELDS}
    return ExportRow(
        user_id=user_id,
        row_number=ordinal,
        first_name=text["first_name"] or None,
        last_name=text["last_name"] or None,
        username=text["username"] or None,
        primary_email=text["primary_email_address"] or None,
        primary_phone=text["primary_phone_number"] or None,
        # The JSON export does not say which addresses are verified: the API does.
        unverified_emails=_list_field(path, ordinal, user_id, user, "email_addresses"),
        unverified_phones=_list_field(path, ordinal, user_id, user, "phone_numbers"),
        password_hasher=text["password_hasher"] or None,
        password_digest=(text["password_digest"] or "").strip() or None,
        has_totp=bool(text["totp_secret"]),
        source="json",
    )


class JsonExportFile(OpenedExport):
    """One Clerk JSON export: ``scan``, ``rows`` and ``row_at`` as ``ExportFile`` has them for the CSV."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._start = len(_UTF8_BOM) if self._handle.read(len(_UTF8_BOM)) == _UTF8_BOM else 0

    # -- the streamed pass ------------------------------------------------------------------

    def _users(self) -> Iterator[tuple[int, int, Any]]:
        """(byte offset, ordinal, parsed object) of each user, streamed; the whole document is checked."""
        events = ijson.sendable_list()
        parser = ijson.basic_parse_coro(events, multiple_values=True, use_float=True)
        depth, user_depth, ordinal, offset = 0, None, 0, 0
        raw: list[bytes] | None = None  # the pieces of the user being read (ijson checks, json builds)
        last_id: str | None = None
        position, previous = self._start, b""

        def broken(detail: str) -> InputError:
            after = f" after user {ordinal}" + (f" ({last_id})" if last_id else "") if ordinal else ""
            return InputError(f"{self.path}: malformed JSON{after}: {detail}; export it again")

        def consume(piece: bytes, piece_start: int) -> Iterator[tuple[int, int, Any]]:
            nonlocal depth, user_depth, ordinal, offset, raw, last_id
            first = True
            if raw is not None:
                raw.append(piece)
            for event, _ in events:
                if user_depth is None:  # the first event says which shape this is
                    if event == "start_array":
                        user_depth = 1
                    elif event == "start_map":
                        user_depth = 0
                    else:
                        raise InputError(f"{self.path}: not a list of users (a JSON array or one object per line)")
                if raw is None and depth == user_depth and event != "end_array":
                    ordinal += 1
                    if event != "start_map":
                        raise InputError(f"{_where(self.path, ordinal)}: not a JSON object (each user is an object)")
                    if not (first and piece[:1] == b"{"):
                        raise InputError(f"{_where(self.path, ordinal)}: cannot tell where this user starts")
                    offset, raw = piece_start, [piece]
                elif depth == 0 and user_depth == 1 and event == "start_array" and ordinal:
                    raise InputError(f"{self.path}: a second list after user {ordinal}; give one list of users")
                first = False
                if event in ("start_map", "start_array"):
                    depth += 1
                elif event in ("end_map", "end_array"):
                    depth -= 1
                    if raw is not None and depth == user_depth:
                        # ijson has checked these bytes; the standard library's decoder builds the object
                        # (faster than building it event by event), ignoring the separators after it.
                        try:
                            user = _DECODER.raw_decode(b"".join(raw).decode("utf-8"))[0]
                        except (UnicodeDecodeError, json.JSONDecodeError):
                            raise broken("unreadable user") from None
                        raw = None
                        last_id = user.get("id") if isinstance(user.get("id"), str) else None
                        yield offset, ordinal, user
            del events[:]

        with self.path.open("rb") as handle:
            handle.seek(self._start)
            while chunk := handle.read(CHUNK):
                cuts = [m.start(1) for m in _USER_START.finditer(chunk)]
                lead = len(chunk) - len(chunk.lstrip(_BLANKS))
                if chunk[lead : lead + 1] == b"{" and previous in _OPENERS and lead not in cuts:
                    cuts.insert(0, lead)
                bounds = [0, *cuts, len(chunk)]
                for start, end in pairwise(bounds):
                    if start == end:
                        continue
                    piece = chunk[start:end]
                    try:
                        parser.send(piece)
                    except ijson.JSONError:
                        raise broken("unexpected content") from None
                    yield from consume(piece, position + start)
                position += len(chunk)
                stripped = chunk.rstrip(_BLANKS)
                previous = stripped[-1:] if stripped else previous
            try:
                parser.close()
            except ijson.JSONError:
                raise broken("the file ends inside a value") from None
            yield from consume(b"", position)
        if user_depth is None:
            raise InputError(f"{self.path}: the file is empty; expected Clerk's export (a JSON list of users)")
        if raw is not None or depth != 0:
            raise broken("the file ends inside a value")

    def scan(self, *, check_duplicates: bool = True) -> Iterator[ExportIndexEntry]:
        """One streamed pass: where each user starts, checking every user's fields (see ``ExportFile.scan``)."""
        seen: set[int] = set()
        for offset, ordinal, user in self._users():
            row = user_row(self.path, ordinal, user)
            if check_duplicates:
                key = _id_key(row.user_id)
                if key in seen:
                    first = self._first_ordinal_of(row.user_id, before=offset)
                    if first is not None:
                        raise InputError(
                            f"{_where(self.path, ordinal)}: user id {row.user_id!r} already appears at user {first}; "
                            "the export is corrupt (export it again)"
                        )
                seen.add(key)
            yield ExportIndexEntry(row.user_id, offset, ordinal, row.password_hasher, row.password_digest is not None)

    def _first_ordinal_of(self, user_id: str, *, before: int) -> int | None:
        for offset, ordinal, user in self._users():
            if offset >= before:
                return None
            if isinstance(user, dict) and user.get("id") == user_id:
                return ordinal
        return None

    def rows(self) -> Iterator[ExportRow]:
        for _, ordinal, user in self._users():
            yield user_row(self.path, ordinal, user)

    def row_at(self, offset: int, row_number: int, *, expected_id: str | None = None) -> ExportRow:
        """Exactly one user, read again from the offset ``scan`` noted (the standard library's decoder)."""
        moved = f"{_where(self.path, row_number)}: no user at byte offset {offset}; has the export changed since it was indexed?"
        if offset < self._start:
            raise InputError(moved)
        with self._lock:
            user = self._object_at(offset, row_number, moved)
        row = user_row(self.path, row_number, user)
        if expected_id is not None and row.user_id != expected_id:
            raise InputError(
                f"{_where(self.path, row_number)}: expected user {expected_id!r} but found {row.user_id!r}; "
                "the export has changed since it was indexed (index it again)"
            )
        return row

    def _object_at(self, offset: int, row_number: int, moved: str) -> Any:
        decoder = codecs.getincrementaldecoder("utf-8")()
        text, size = "", 4096  # a user is usually well under 4 KB
        self._handle.seek(offset)
        while True:
            data = self._handle.read(size)
            try:
                text += decoder.decode(data, final=not data)
            except UnicodeDecodeError:
                raise InputError(
                    f"{_where(self.path, row_number)}: not valid UTF-8; save the export as UTF-8"
                ) from None
            if not text.startswith("{"):
                raise InputError(moved)
            try:
                return _DECODER.raw_decode(text)[0]
            except json.JSONDecodeError:
                if not data:
                    raise InputError(moved) from None
                size *= 2  # a user larger than what was read: read on, in growing steps


def open_clerk_export(path: Path) -> ExportFile | JsonExportFile:
    """Clerk's export as CSV or JSON, told from the content (the first byte that is not blank)."""
    try:
        json_export = is_json_export(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot open the Clerk export ({exc.strerror})") from None
    return JsonExportFile(path) if json_export else ExportFile(path)
