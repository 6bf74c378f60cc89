"""What every local server shares: its binary found, its child process started in its
own process group with a log file in its state folder, waited for until ready, and
stopped, killed or restarted (the servers themselves: ``mosquitto.py``, ``influxdb.py``,
``postgres.py``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from sitewatch.programs.localstack.ports import free_port, port_is_free


class ServerError(RuntimeError):
    """A server binary is missing, or the server did not start (its log is quoted)."""


class PortInUseError(ServerError):
    pass


def find_binary(name: str, fallbacks: tuple[str, ...]) -> str:
    found = shutil.which(name)
    if found:
        return found
    for path in fallbacks:
        if os.access(path, os.X_OK):
            return path
    raise ServerError(
        f"{name} not found: install Debian's package (scripts/setup.sh does: "
        f"apt-get install mosquitto mosquitto-clients influxdb)"
    )


class ServerProcess:
    """A child process in its own process group with a log file in its state folder."""

    name = "server"
    start_timeout_s = 30.0
    #: the signal that asks this server for a clean, prompt shutdown
    stop_signal = signal.SIGTERM

    def __init__(self, state_dir: Path, port: int | None = None, host: str = "127.0.0.1"):
        self.state_dir = Path(state_dir)
        self.host = host
        self._fixed_port = port
        self.port = port or 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.state_dir / f"{self.name}.log"
        self._log: IO[bytes] | None = None

    # subclasses
    def _write_config(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _ports(self) -> list[int]:
        return [self.port]

    def _choose_ports(self) -> None:
        self.port = free_port(self.host)

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self._fixed_port else 5
        for attempt in range(attempts):
            if self._fixed_port:
                if not port_is_free(self._fixed_port, self.host):
                    raise PortInUseError(
                        f"{self.name}: port {self._fixed_port} on {self.host} is already in "
                        f"use; pick another or leave it out to choose a free one"
                    )
            else:
                self._choose_ports()
            if self._launch():
                return
            if attempt == attempts - 1:
                break
        raise ServerError(f"{self.name} did not start; last log lines:\n{self.log_tail()}")

    def _launch(self) -> bool:
        cmd = self._write_config()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # most likely the port was taken between choice and bind
            if self._ready():
                return True
            time.sleep(0.05)
        self.stop()
        raise ServerError(
            f"{self.name} not ready after {self.start_timeout_s}s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, self.stop_signal)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop for good and remove what only this process needed."""
        self.stop()

    def kill(self) -> None:
        """SIGKILL, as a power cut or OOM kill would."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> None:
        """Start again on the same port(s) and state."""
        self.stop()
        if not self._launch():
            raise ServerError(f"{self.name} did not restart:\n{self.log_tail()}")
