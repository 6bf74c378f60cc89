"""The demo's child processes (each the ``sitewatch`` command an operator runs): started
with a log in the state folder, watched, and stopped in order; and waiting for one to
say it is up."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

#: services that write what the edges send: stopped after the edges, before the API
WRITERS = ("ingest", "alerts")


class Children:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        #: children that do one thing and exit (0 when it went well)
        self.once: set[str] = set()

    def spawn(
        self, name: str, *args: str, env: dict[str, str] | None = None, once: bool = False
    ) -> subprocess.Popen[bytes]:
        log = open(self.state / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "sitewatch.programs.cli", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.procs.append((name, proc))
        if once:
            self.once.add(name)
        return proc

    def dead(self) -> list[str]:
        return [
            name
            for name, p in self.procs
            if p.poll() is not None and not (name in self.once and p.returncode == 0)
        ]

    def stop(self) -> None:
        """Gate terminals first (nothing more is pushed to the edges), then the edge
        agents (they drain their spools into a running ingest), then ingest and the alert
        service (they finish their writes), then the API; each phase waits for the one
        before."""
        phases = [
            [p for n, p in self.procs if n.startswith("gates")],
            [p for n, p in self.procs if n.startswith("edge")],
            [p for n, p in self.procs if n in WRITERS],
            [p for n, p in self.procs if not n.startswith(("edge", "gates")) and n not in WRITERS],
        ]
        for phase in phases:
            for p in phase:
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        p.send_signal(signal.SIGTERM)
            for p in phase:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_log(path: Path, text: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


def wait_http(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        time.sleep(0.2)
    return False
