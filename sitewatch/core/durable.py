"""Files that survive a power cut: written whole under a temporary name, fsynced, renamed
over the target, and the folder fsynced, so a reader sees the old file or the new one,
never a part. One implementation for snapshots, the broker's files, backups and the
gateway's counters."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def fsync_dir(directory: Path) -> None:
    """Make a folder's entries (a new or renamed file in it) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(
    path: Path,
    write: Callable[[BinaryIO], object],
    *,
    mode: int = 0o600,
    owner: tuple[int, int] | None = None,
) -> None:
    """Write ``path`` durably with ``write`` (given the open temporary file), with
    ``mode`` and, where given, ``owner`` (uid, gid; needs root) set before it appears."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if owner is not None:
                os.fchown(f.fileno(), owner[0], owner[1])
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
