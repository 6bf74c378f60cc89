"""Start, check and stop Mosquitto and InfluxDB (Debian's ``mosquitto``, ``influxdb``)."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class ServerError(RuntimeError):
    """A server binary is missing, or the server did not start (its log is quoted)."""


class PortInUseError(ServerError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now (the kernel's choice); callers retry if it is taken later."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _binary(name: str, fallbacks: tuple[str, ...]) -> str:
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


class _Server:
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


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class MosquittoServer(_Server):
    """Mosquitto with persistence and deliberate queue limits.

    ``max_queued_messages`` is set high on purpose: Mosquitto's default of 1000 silently
    drops QoS 1 messages queued for an offline persistent session (ingest restarting).
    """

    name = "mosquitto"

    def __init__(
        self,
        state_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        max_queued_messages: int = 1_000_000,
        extra_config: str = "",
        password_file: Path | None = None,
        acl_file: Path | None = None,
        tls: TlsListener | None = None,
    ) -> None:
        """``password_file`` and ``acl_file`` (see
        :mod:`sitewatch.domains.brokeraccounts.brokerauth`): accounts and topic rules,
        anonymous clients refused. ``tls``: a second listener, TLS, on its own free port
        (``tls_port``)."""
        super().__init__(state_dir, port, host)
        if acl_file is not None and password_file is None:
            raise ValueError(
                "an ACL file needs a password file (anonymous clients are "
                "refused once there are accounts)"
            )
        self.max_queued_messages = max_queued_messages
        self.extra_config = extra_config
        self.password_file = password_file
        self.acl_file = acl_file
        self.tls = tls
        self.tls_port = 0

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"mqtts://{self.host}:{self.tls_port}"

    def _choose_ports(self) -> None:
        self.port = free_port(self.host)
        if self.tls is not None:
            self.tls_port = _another_free_port(self.host, self.port)

    def _ports(self) -> list[int]:
        return [self.port, self.tls_port] if self.tls is not None else [self.port]

    def config_text(self) -> str:
        user = "root" if os.geteuid() == 0 else getpass.getuser()
        return (
            render_mosquitto_conf(
                port=self.port,
                host=self.host,
                persistence_dir=self.state_dir,
                max_queued_messages=self.max_queued_messages,
                user=user,
                password_file=self.password_file,
                acl_file=self.acl_file,
                tls=self.tls,
                tls_port=self.tls_port or None,
            )
            + self.extra_config
        )

    def _write_config(self) -> list[str]:
        if self.tls is not None and not self.tls_port:  # a port the caller fixed
            self.tls_port = _another_free_port(self.host, self.port)
        conf = self.state_dir / "mosquitto.conf"
        conf.write_text(self.config_text())
        return [_binary("mosquitto", ("/usr/sbin/mosquitto",)), "-c", str(conf)]

    def _ready(self) -> bool:
        return all(_tcp_open(self.host, port) for port in self._ports())

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its password and ACL files and applies them to the
        clients already connected. Asynchronous: the broker does it in its next loop
        (well within a second); clients see it by connecting again."""
        if self.proc is None or self.proc.poll() is not None:
            raise ServerError(f"{self.name} is not running: nothing to reload")
        os.kill(self.proc.pid, signal.SIGHUP)


def _another_free_port(host: str, taken: int) -> int:
    while True:
        port = free_port(host)
        if port != taken:
            return port


@dataclass(frozen=True)
class TlsListener:
    """The PEM files of a TLS listener. ``cafile``: the CA that signed client
    certificates, needed with ``require_certificate`` (clients then authenticate with a
    certificate as well as their password)."""

    certfile: Path | str
    keyfile: Path | str
    cafile: Path | str | None = None
    require_certificate: bool = False

    def __post_init__(self) -> None:
        if self.require_certificate and self.cafile is None:
            raise ValueError("require_certificate needs cafile (the CA of client certificates)")


def render_mosquitto_conf(
    *,
    port: int,
    host: str,
    persistence_dir: Path | str,
    max_queued_messages: int,
    user: str = "mosquitto",
    log_dest: str = "stderr",
    password_file: Path | str | None = None,
    acl_file: Path | str | None = None,
    tls: TlsListener | None = None,
    tls_port: int | None = None,
    include_dir: Path | str | None = None,
) -> str:
    """The broker settings SiteWatch relies on (also used for docker-compose's file).

    With ``password_file`` anonymous clients are refused; ``acl_file`` limits what each
    account may publish and read (both written by
    :mod:`sitewatch.domains.brokeraccounts.brokerauth`). ``tls`` adds a TLS listener on
    ``tls_port``; ``include_dir`` loads every ``*.conf`` in that folder (docker-compose's
    place for an operator's TLS listener).
    """
    if acl_file is not None and password_file is None:
        raise ValueError("an ACL file needs a password file")
    if tls is not None and tls_port is None:
        raise ValueError("a TLS listener needs its own port (tls_port)")
    auth = "allow_anonymous true\n"
    if password_file is not None:
        auth = (
            "# clients log in with an account of the password file; anonymous refused\n"
            f"allow_anonymous false\npassword_file {password_file}\n"
        )
    if acl_file is not None:
        auth += f"acl_file {acl_file}\n"
    tail = ""
    if tls is not None and tls_port is not None:
        tail += render_tls_listener(port=tls_port, host=host, tls=tls)
    if include_dir is not None:
        tail += (
            "# more listeners (TLS: see tls.conf.example there): every *.conf file\n"
            f"include_dir {include_dir}\n"
        )
    return f"""# generated by sitewatch
per_listener_settings false
listener {port} {host}
{auth}user {user}
persistence true
persistence_location {str(persistence_dir).rstrip("/")}/
autosave_interval 30
# ingest keeps a persistent session: while it restarts the broker queues for it.
# Mosquitto's default (1000) silently drops the rest of a burst; set it deliberately.
max_queued_messages {max_queued_messages}
max_queued_bytes 0
# QoS 1 messages in flight per client (MQTT 5 clients may ask for fewer)
max_inflight_messages 1000
persistent_client_expiration 14d
log_dest {log_dest}
log_type error
log_type warning
log_type notice
connection_messages false
{tail}"""


def render_tls_listener(*, port: int, host: str, tls: TlsListener) -> str:
    """A TLS listener block (accounts and topic rules are the same as on every listener:
    ``per_listener_settings false``)."""
    lines = [
        "# MQTT over TLS: the same accounts and topic rules as the plain listener",
        f"listener {port} {host}",
        f"certfile {tls.certfile}",
        f"keyfile {tls.keyfile}",
    ]
    if tls.cafile is not None:
        lines.append(f"cafile {tls.cafile}")
    if tls.require_certificate:
        lines.append("require_certificate true")
    return "\n".join(lines) + "\n"


class InfluxServer(_Server):
    """InfluxDB 1.x (``influxd``); HTTP on ``port``, its RPC bind on a second free port.
    With ``auth_enabled`` every request but ``/ping`` needs a user: create the first (an
    admin) with ``CREATE USER ... WITH ALL PRIVILEGES``, which InfluxDB allows while it
    has none."""

    name = "influxdb"

    def __init__(
        self,
        state_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        auth_enabled: bool = False,
    ):
        super().__init__(state_dir, port, host)
        self.rpc_port = 0
        self.auth_enabled = auth_enabled

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _choose_ports(self) -> None:
        self.port = free_port(self.host)
        self.rpc_port = free_port(self.host)

    def _write_config(self) -> list[str]:
        if not self.rpc_port:
            self.rpc_port = free_port(self.host)
        d = self.state_dir
        conf = d / "influxdb.conf"
        conf.write_text(f"""# generated by sitewatch
reporting-disabled = true
bind-address = "{self.host}:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
  logging-enabled = false
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  trace-logging-enabled = false
  wal-fsync-delay = "0s"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "{self.host}:{self.port}"
  auth-enabled = {str(self.auth_enabled).lower()}
  log-enabled = false
  max-body-size = 0
[logging]
  level = "warn"
  suppress-logo = true
[continuous_queries]
  enabled = false
""")
        return [_binary("influxd", ("/usr/bin/influxd",)), "-config", str(conf)]

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as r:
                return bool(r.status == 204)
        except (urllib.error.URLError, OSError):
            return False


def _pg_bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if not candidates:
        raise ServerError("PostgreSQL server binaries not found: apt-get install postgresql")
    return candidates[0].parent


class PostgresServer(_Server):
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
