"""One running owner per state folder: an OS lock (``flock``) on a file in the folder,
held for the owner's life, with the owner's pid and address written in it.

The kernel releases a ``flock`` when its holder exits, however it exits (Ctrl-C, a
crash, ``kill -9``), so a lock file left behind never blocks the next start: only a
running holder does. The file descriptor is not inherited by child processes
(``O_CLOEXEC``), so children left running by a crashed owner do not hold the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self


class StateFolderBusy(Exception):
    """The folder's lock is held by another running process."""

    def __init__(self, path: Path, holder: dict[str, object]) -> None:
        self.path = path
        pid, address = holder.get("pid"), holder.get("address")
        #: the holder's pid and address as it wrote them (None: not written yet)
        self.pid = pid if isinstance(pid, int) else None
        self.address = address if isinstance(address, str) else None
        super().__init__(
            f"{path} is locked by a running process (pid "
            f"{self.pid or 'unknown'}, address {self.address or 'unknown'})"
        )


@dataclass
class StateLock:
    path: Path
    _fd: int | None = None

    def acquire(self) -> Self:
        """Take the lock without waiting, or raise :class:`StateFolderBusy` naming the
        holder. Writes nothing but the lock file itself."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StateFolderBusy(self.path, holder) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.describe(address=None)
        return self

    def describe(self, *, address: str | None) -> None:
        """Write who holds the lock (this process) and where it serves."""
        assert self._fd is not None, "describe() needs the lock"
        data = json.dumps({"pid": os.getpid(), "address": address}).encode() + b"\n"
        os.pwrite(self._fd, data, 0)  # then cut: a reader never sees an empty file
        os.ftruncate(self._fd, len(data))

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, object]:
    try:
        doc = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}
