"""Camera snapshots and photos, stored by the SHA-256 of their bytes.

Content-addressed: the file's name is its hash, so storing the same picture twice is one
file, a reference (an event's ``snapshot`` field, a topic's last level) can be checked
against the bytes, and nothing is ever overwritten with other content. Files live under
``<dir>/<first two hex digits>/<sha256>.<ext>``; only JPEG and PNG are taken (by their
magic bytes, not by what the sender claims).

A snapshot belongs to a site by a :class:`SnapshotRow`; :func:`store_snapshot` is the one
way in (the API's upload, ingest's snapshot topic): the file first, then the row.
"""

from __future__ import annotations

import hashlib
import re
import time
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy import BigInteger, Engine, Integer, String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from sitewatch.core.db import Base
from sitewatch.core.durable import fsync_dir, replace_file

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


def create_schema(engine: Engine) -> None:
    Base.metadata.create_all(engine, tables=TABLES)  # type: ignore[arg-type]


class Refusal(StrEnum):
    """Why bytes are not stored as a snapshot."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    HASH_MISMATCH = "hash_mismatch"


class SnapshotError(ValueError):
    def __init__(self, code: Refusal, message: str) -> None:
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
            raise SnapshotError(Refusal.UNSUPPORTED_MEDIA_TYPE, "not a JPEG or PNG image")
        digest = hashlib.sha256(data).hexdigest()
        if expected_sha256 is not None and expected_sha256 != digest:
            raise SnapshotError(
                Refusal.HASH_MISMATCH, f"content has SHA-256 {digest}, not {expected_sha256}"
            )
        path = self.dir / digest[:2] / f"{digest}.{kind}"
        snap = Snapshot(digest, path, MEDIA_TYPES[kind], len(data))
        if path.exists():
            return snap, False
        _make_dirs(path.parent)
        # durable, folder included, before the row: a row must never outlive its file
        replace_file(path, lambda f: f.write(data))
        return snap, True

    def get(self, sha256: str) -> Snapshot | None:
        if not SHA256_RE.fullmatch(sha256):
            return None
        for kind, media in MEDIA_TYPES.items():
            path = self.dir / sha256[:2] / f"{sha256}.{kind}"
            if path.exists():
                return Snapshot(sha256, path, media, path.stat().st_size)
        return None

    def delete(self, sha256: str) -> None:
        """Remove a snapshot (a gateway's, once ingest has it); nothing if there is none."""
        snap = self.get(sha256)
        if snap is not None:
            snap.path.unlink(missing_ok=True)

    def expire(self, older_than_s: float) -> None:
        """Remove the snapshots written more than ``older_than_s`` seconds ago."""
        if not self.dir.is_dir():
            return
        cutoff = time.time() - older_than_s
        for kind in MEDIA_TYPES:
            for path in self.dir.glob(f"*/*.{kind}"):
                with suppress(OSError):
                    if path.stat().st_mtime < cutoff:
                        path.unlink()


def _make_dirs(directory: Path) -> None:
    """``mkdir -p``, each new folder's entry fsynced in its parent (as the file's is)."""
    if directory.is_dir():
        return
    _make_dirs(directory.parent)
    directory.mkdir(exist_ok=True)
    fsync_dir(directory.parent)


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """A site's snapshot as its row records it, and whether this call added the row."""

    site: str
    sha256: str
    media_type: str
    size: int
    source: str
    created_at: int
    #: False when the site already had it (the same picture again: not an error)
    created: bool


def store_snapshot(
    files: SnapshotStore,
    engine: Engine,
    *,
    site: str,
    source: str,
    data: bytes,
    expected_sha256: str | None = None,
    max_bytes: int | None = None,
) -> StoredSnapshot:
    """Store ``data`` for ``site``: the file fsynced, then its row committed.

    Blocking (fsync, a transaction): run it in a worker thread. Raises
    :class:`SnapshotError` for bytes that are empty, over ``max_bytes``, not JPEG/PNG, or
    whose SHA-256 is not ``expected_sha256``; database and file-system errors pass
    through (the caller retries or answers 5xx). Storing the same picture for the same
    site again, even from two writers at once, keeps the first row and returns it.
    """
    if not data:
        raise SnapshotError(Refusal.EMPTY, "no bytes: a snapshot is one JPEG or PNG image")
    if max_bytes is not None and len(data) > max_bytes:
        raise SnapshotError(Refusal.TOO_LARGE, f"{len(data)} bytes, more than {max_bytes}")
    snap, _ = files.put(data, expected_sha256)
    with Session(engine) as s:
        row = s.get(SnapshotRow, (site, snap.sha256))
        if row is None:
            new = StoredSnapshot(
                site,
                snap.sha256,
                snap.media_type,
                snap.size,
                source,
                int(time.time() * 1000),
                created=True,
            )
            s.add(
                SnapshotRow(
                    site=site,
                    sha256=snap.sha256,
                    media_type=new.media_type,
                    size=new.size,
                    source=source,
                    created_at=new.created_at,
                )
            )
            try:
                s.commit()
                return new
            except IntegrityError:  # another writer added it since we looked
                s.rollback()
                row = s.get(SnapshotRow, (site, snap.sha256))
                if row is None:
                    raise
        return StoredSnapshot(
            row.site,
            row.sha256,
            row.media_type,
            row.size,
            row.source,
            row.created_at,
            created=False,
        )
