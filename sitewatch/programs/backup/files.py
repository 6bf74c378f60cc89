"""Files: the snapshot folder (camera snapshots and photos, named by their SHA-256) and
the operator's files given with ``--include`` (the .env with the secrets, the broker's
accounts, the alert rules), kept under ``config/`` by their base names."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from sitewatch.core.durable import replace_file
from sitewatch.programs.backup import BackupError
from sitewatch.programs.backup.archive import CHUNK, ArchiveReader, ArchiveWriter

SNAPSHOTS = "snapshots/"
CONFIG = "config/"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _snapshot_files(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        # .tmp-*: a snapshot being written (it is renamed once complete)
        if path.is_file() and not path.name.startswith(".tmp-"):
            yield path


def dump_snapshots(root: Path, archive: ArchiveWriter) -> int:
    n = 0
    for path in _snapshot_files(root):
        archive.add_file(SNAPSHOTS + path.relative_to(root).as_posix(), path)
        n += 1
    return n


def dump_config(files: list[Path], archive: ArchiveWriter) -> list[str]:
    names: dict[str, Path] = {}
    for f in files:
        if f.name in names:
            raise BackupError(
                f"--include {f} and {names[f.name]}: both named {f.name} in "
                "the backup; give each file once, or copy one to another name"
            )
        if not f.is_file():
            raise BackupError(f"--include {f}: no such file")
        names[f.name] = f
    for name, f in names.items():
        archive.add_file(CONFIG + name, f)
    return list(names)


def _target(root: Path, member: str, prefix: str) -> Path:
    rel = PurePosixPath(member.removeprefix(prefix))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise BackupError(f"member {member}: a path outside its folder")
    return root.joinpath(*rel.parts)


def check_snapshots(root: Path, archive: ArchiveReader) -> None:
    """Refuse a snapshot file that is there with other content (the same one is kept)."""
    for member in archive.paths(SNAPSHOTS):
        path = _target(root, member, SNAPSHOTS)
        if path.exists() and _sha256(path) != archive.members[member]["sha256"]:
            raise BackupError(
                f"snapshot {path} exists with other content: restore into an empty snapshot folder"
            )


def check_config(out: Path | None, archive: ArchiveReader) -> None:
    if out is None:
        return
    for member in archive.paths(CONFIG):
        path = _target(out, member, CONFIG)
        if path.exists():
            raise BackupError(
                f"{path} exists: restoring the backup's files does not "
                "overwrite any; give an empty --config-out folder"
            )


def _write(path: Path, archive: ArchiveReader, member: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)

    def copy(out: BinaryIO) -> None:
        with archive.open(member) as f:
            while chunk := f.read(CHUNK):
                out.write(chunk)

    replace_file(path, copy, mode=mode)


def restore_snapshots(root: Path, archive: ArchiveReader) -> int:
    n = 0
    for member in archive.paths(SNAPSHOTS):
        path = _target(root, member, SNAPSHOTS)
        if not path.exists():
            _write(path, archive, member, 0o644)
        if _sha256(path) != archive.members[member]["sha256"]:
            raise BackupError(f"snapshot {path}: content differs from the backup's")
        n += 1
    return n


def restore_config(out: Path, archive: ArchiveReader) -> list[Path]:
    written = []
    for member in archive.paths(CONFIG):
        path = _target(out, member, CONFIG)
        _write(path, archive, member, 0o600)  # secrets: the owner's only
        written.append(path)
    return written
