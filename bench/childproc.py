"""What the benchmarks share: child processes of ``sitewatch`` and their CPU time."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def run_in_workdir(
    bench: Callable[[argparse.Namespace, Path], Coroutine[Any, Any, int]],
    args: argparse.Namespace,
    prefix: str,
) -> int:
    """Run ``bench`` in ``args.workdir`` (kept), or in a temporary folder removed after."""
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(bench(args, args.workdir.resolve()))
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        return asyncio.run(bench(args, Path(tmp)))


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """utime + stime of a process, from /proc/<pid>/stat; with ``children``, also its
    live child processes and the children it has waited for (PostgreSQL's backends)."""

    def stat(p: int) -> list[str]:
        return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()

    fields = stat(pid)
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    f = stat(int(d.name))
                    if int(f[1]) == pid:
                        ticks += int(f[11]) + int(f[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot, from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Service:
    """A ``sitewatch`` subcommand running as a child process, its output in a log file."""

    name: str
    cmd: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    async def started(self, ready: bytes, timeout_s: float = 30.0) -> None:
        """Start, then wait until ``ready`` appears in the log."""
        self.start()
        deadline = time.monotonic() + timeout_s
        while ready not in self.log_path.read_bytes():
            if time.monotonic() > deadline or (self.proc and self.proc.poll() is not None):
                raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")
            await asyncio.sleep(0.05)

    def check_running(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM (the services stop cleanly on it), SIGKILL if that takes too long."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
