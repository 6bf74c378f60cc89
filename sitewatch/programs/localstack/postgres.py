"""PostgreSQL (Debian's ``postgresql``) as a local server: a throwaway cluster."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from sitewatch.programs.localstack.process import ServerError, ServerProcess


def _pg_bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if not candidates:
        raise ServerError("PostgreSQL server binaries not found: apt-get install postgresql")
    return candidates[0].parent


class PostgresServer(ServerProcess):
    """A throwaway PostgreSQL cluster (Debian's ``postgresql``) on a free port.

    initdb refuses to run as root, so as root the cluster belongs to the ``postgres``
    system user that the package creates, and is started as that user.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown; SIGTERM would wait for every client

    def __init__(self, state_dir: Path, port: int | None = None, host: str = "127.0.0.1"):
        super().__init__(state_dir, port, host)
        self._bindir = _pg_bindir()
        self._as: list[str] = []
        self._own_root: Path | None = None
        cluster_root = self.state_dir
        if os.geteuid() == 0:
            # setpriv execs in place (runuser would stay in front as a parent process)
            self._as = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
            # the state folder's parents may be closed to other users (pytest's tmp is)
            self._own_root = Path(tempfile.mkdtemp(prefix="sitewatch-pg-"))
            self._own_root.chmod(0o755)
            shutil.chown(self._own_root, "postgres", "postgres")
            cluster_root = self._own_root
        self.data_dir = cluster_root / "data"
        self.socket_dir = cluster_root

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/postgres"

    def _write_config(self) -> list[str]:
        if not (self.data_dir / "PG_VERSION").exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    *self._as,
                    str(self._bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        return [
            *self._as,
            str(self._bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ]

    def close(self) -> None:
        self.stop()
        if self._own_root is not None:
            shutil.rmtree(self._own_root, ignore_errors=True)

    def _ready(self) -> bool:
        return (
            subprocess.run(
                [
                    str(self._bindir / "pg_isready"),
                    "-h",
                    self.host,
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-q",
                ],
                check=False,
            ).returncode
            == 0
        )
