"""The backup archive: a plain tar of gzip-compressed members and a manifest.

Members are written one at a time through a temporary file beside the archive (bounded
memory, whatever the size of the stores), each hashed as it is stored; the manifest
(format, version, what each member holds and its SHA-256) is the last member. The
archive is written as ``FILE.partial``, fsynced and renamed only when complete, so an
interrupted backup never looks like a good one.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sitewatch.core.durable import fsync_dir
from sitewatch.programs.backup import BackupError

FORMAT = 1
MANIFEST = "manifest.json"
CHUNK = 1 << 20


class _HashingFile(io.RawIOBase):
    """Writes to ``raw`` and hashes what passes."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.raw.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)


@dataclass
class Member:
    path: str
    sha256: str = ""
    bytes: int = 0
    #: what it holds: {"rows": n} for a table, {"points": n} for a measurement
    counts: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes, **self.counts}


class ArchiveWriter:
    def __init__(self, out: Path, manifest: dict[str, Any]) -> None:
        self.out = out
        self.partial = out.with_name(out.name + ".partial")
        self.manifest = {"format": FORMAT, "created_at": int(time.time() * 1000), **manifest}
        self.members: list[Member] = []
        self._file = open(self.partial, "wb")  # closed in close() or abort()
        os.chmod(self.partial, 0o600)  # it holds the secrets
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)

    def _add(self, path: str, src: IO[bytes], size: int) -> None:
        if any(m.path == path for m in self.members):
            raise BackupError(f"{path}: twice in one backup")
        info = tarfile.TarInfo(path)
        info.size, info.mtime, info.mode = size, int(time.time()), 0o600
        self._tar.addfile(info, src)

    @contextmanager
    def member(self, path: str, *, compress: bool = True) -> Iterator[tuple[IO[bytes], Member]]:
        """A member written as a stream (gzip-compressed unless ``compress`` is False);
        the caller fills in ``Member.counts``."""
        m = Member(path)
        with tempfile.TemporaryFile(dir=self.out.parent) as tmp:
            hashing = _HashingFile(tmp)
            if compress:
                with gzip.GzipFile(fileobj=hashing, mode="wb", mtime=0, compresslevel=6) as gz:
                    yield gz, m  # type: ignore[misc]
            else:
                yield hashing, m  # type: ignore[misc]
            m.sha256, m.bytes = hashing.sha256.hexdigest(), hashing.size
            tmp.seek(0)
            self._add(path, tmp, m.bytes)
        self.members.append(m)

    def add_file(self, path: str, source: Path) -> Member:
        """A file as it is (snapshots are JPEG/PNG already; config files are small)."""
        with self.member(path, compress=False) as (out, m), open(source, "rb") as f:
            while chunk := f.read(CHUNK):
                out.write(chunk)
        return m

    def close(self) -> Path:
        body = json.dumps(
            {**self.manifest, "members": [m.as_json() for m in self.members]},
            indent=1,
            ensure_ascii=False,
        ).encode()
        self._add(MANIFEST, io.BytesIO(body), len(body))
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.partial, self.out)
        fsync_dir(self.out.parent)
        return self.out

    def abort(self) -> None:
        self._tar.close()
        self._file.close()
        self.partial.unlink(missing_ok=True)


class ArchiveReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._tar = tarfile.open(path, mode="r:")
        except (OSError, tarfile.TarError) as exc:
            raise BackupError(f"{path}: not a SiteWatch backup ({exc})") from None
        try:
            raw = self._read(MANIFEST)
            self.manifest: dict[str, Any] = json.loads(raw)
        except (KeyError, ValueError):
            raise BackupError(f"{path}: not a SiteWatch backup (no readable {MANIFEST})") from None
        if self.manifest.get("format") != FORMAT:
            raise BackupError(
                f"{path}: backup format {self.manifest.get('format')!r}; this "
                f"version reads format {FORMAT}"
            )
        self.members: dict[str, dict[str, Any]] = {m["path"]: m for m in self.manifest["members"]}

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, path: str) -> bytes:
        f = self._tar.extractfile(path)
        if f is None:
            raise KeyError(path)
        return f.read()

    def verify(self) -> None:
        """Every member listed is there with its SHA-256, and nothing else is."""
        seen = set()
        for info in self._tar.getmembers():
            if info.name == MANIFEST:
                continue
            want = self.members.get(info.name)
            if want is None:
                raise BackupError(f"{self.path}: member {info.name} is not in the manifest")
            f = self._tar.extractfile(info)
            digest = hashlib.sha256()
            try:
                while f is not None and (chunk := f.read(CHUNK)):
                    digest.update(chunk)
            except (OSError, tarfile.TarError) as exc:
                raise BackupError(
                    f"{self.path}: member {info.name} cannot be read ({exc})"
                ) from None
            if digest.hexdigest() != want["sha256"]:
                raise BackupError(
                    f"{self.path}: member {info.name} is damaged (SHA-256 "
                    "differs from the manifest)"
                )
            seen.add(info.name)
        missing = sorted(self.members.keys() - seen)
        if missing:
            raise BackupError(f"{self.path}: member {missing[0]} is missing")

    def paths(self, prefix: str) -> list[str]:
        return [p for p in self.members if p.startswith(prefix)]

    def open(self, path: str) -> IO[bytes]:
        """A member's content (decompressed if it was stored compressed)."""
        f = self._tar.extractfile(path)
        if f is None:
            raise BackupError(f"{self.path}: member {path} is missing")
        if path.endswith(".gz"):
            return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
        return f
