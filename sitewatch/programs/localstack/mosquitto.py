"""Mosquitto (Debian's ``mosquitto``) as a local server, and the broker configuration
SiteWatch relies on (also rendered for docker-compose's file)."""

from __future__ import annotations

import getpass
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from sitewatch.programs.localstack.ports import free_port
from sitewatch.programs.localstack.process import ServerError, ServerProcess, find_binary


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class MosquittoServer(ServerProcess):
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
        return [find_binary("mosquitto", ("/usr/sbin/mosquitto",)), "-c", str(conf)]

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
