"""Camera snapshots and photos, stored by the SHA-256 of their bytes.

Content-addressed: the file's name is its hash, so storing the same picture twice is one
file, a reference (an event's ``snapshot`` field, a topic's last level) can be checked
against the bytes, and nothing is ever overwritten with other content. Files live under
``<dir>/<first two hex digits>/<sha256>.<ext>``; only JPEG and PNG are taken (by their
magic bytes, not by what the sender claims).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from sitewatch.db import Base

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png"}


class SnapshotRow(Base):
    """Which site a snapshot belongs to (who may see it), and where it came from."""

    __tablename__ = "snapshots"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    #: "gateway:<id>" for camera events, "user:<name>" / "key:<id>" for uploads
    source: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[int] = mapped_column(BigInteger)


TABLES = [SnapshotRow.__table__]


class SnapshotError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def image_kind(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return None


@dataclass(frozen=True, slots=True)
class Snapshot:
    sha256: str
    path: Path
    media_type: str
    size: int


class SnapshotStore:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def put(self, data: bytes, expected_sha256: str | None = None) -> tuple[Snapshot, bool]:
        """Store ``data``; True if it was new. Refuses what is not JPEG/PNG and bytes
        whose hash differs from ``expected_sha256``."""
        kind = image_kind(data)
        if kind is None:
            raise SnapshotError("unsupported_media_type", "not a JPEG or PNG image")
        digest = hashlib.sha256(data).hexdigest()
        if expected_sha256 is not None and expected_sha256 != digest:
            raise SnapshotError("hash_mismatch", f"content has SHA-256 {digest}, "
                                f"not {expected_sha256}")
        path = self.dir / digest[:2] / f"{digest}.{kind}"
        snap = Snapshot(digest, path, MEDIA_TYPES[kind], len(data))
        if path.exists():
            return snap, False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return snap, True

    def get(self, sha256: str) -> Snapshot | None:
        if not SHA256_RE.fullmatch(sha256):
            return None
        for kind, media in MEDIA_TYPES.items():
            path = self.dir / sha256[:2] / f"{sha256}.{kind}"
            if path.exists():
                return Snapshot(sha256, path, media, path.stat().st_size)
        return None
