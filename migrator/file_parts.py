"""Numbered files of one kind, each kept under a size limit, written owner-only (0600).

Kinde's import takes files of 49 MB or less; an import file holds password digests, so nobody but
the owner may read it. A record is never split across two files; a CSV part repeats its header.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from migrator.errors import InputError


@dataclass
class Part:
    name: str
    users: int = 0
    bytes: int = 0


@dataclass
class FileParts:
    """``stem-0001.ext``, ``stem-0002.ext``... in ``out``; ``dry_run`` sizes the parts without writing."""

    out: Path
    stem: str
    ext: str
    max_bytes: int
    header: bytes = b""
    dry_run: bool = False
    single: bool = False  # one file named ``stem.ext``, never split (a list, not an import file)
    parts: list[Part] = field(default_factory=list)
    _handle: BinaryIO | None = None

    def write(self, chunk: bytes, users: int = 1) -> None:
        """Append one user's record(s); a new part starts when this one would pass the limit."""
        if not self.single and len(self.header) + len(chunk) > self.max_bytes:
            raise InputError(
                f"{self.stem}: one user's record ({len(chunk)} bytes) is larger than the file size limit"
                f" ({self.max_bytes} bytes); raise --max-file-mb"
            )
        current = self.parts[-1] if self.parts else None
        if current is None or (not self.single and current.bytes + len(chunk) > self.max_bytes):
            current = self._start()
        if self._handle is not None:
            self._handle.write(chunk)
        current.bytes += len(chunk)
        current.users += users

    def _start(self) -> Part:
        self.close()
        name = f"{self.stem}.{self.ext}" if self.single else f"{self.stem}-{len(self.parts) + 1:04d}.{self.ext}"
        part = Part(name)
        self.parts.append(part)
        if not self.dry_run:
            self._handle = open_private(self.out / part.name)
            self._handle.write(self.header)
        part.bytes = len(self.header)
        return part

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def open_private(path: Path) -> BinaryIO:
    """Create (or truncate) ``path`` readable by its owner only, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT: set it
    return os.fdopen(fd, "wb", buffering=1 << 16)
