"""Broker accounts and topic rules (sitewatch/domains/brokeraccounts/brokerauth.py), in the files' own formats and
against real Mosquitto with the files we generate: a gateway speaks only for itself and
reads only its own acks, anonymous clients are refused, and everything legitimate still
reaches ingest and InfluxDB."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import stat
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import (
    RunningAgent,
    RunningIngest,
    assert_seqs_exactly_once,
    edge_settings,
    now_ms,
    seqs_by_device,
    wait_for,
)

from edge.config import EdgeSettings
from sitewatch.core import mqtt
from sitewatch.core.influx import InfluxClient
from sitewatch.domains.brokeraccounts.brokerauth import (
    Account,
    BrokerAuthError,
    Role,
    gateway_username,
    hash_password,
    load_accounts,
    new_password,
    render_acl,
    render_password_file,
    verify_password,
    write_broker_files,
)
from sitewatch.domains.deadletters import DeadLetterStore
from sitewatch.programs.localstack.mosquitto import (
    MosquittoServer,
    TlsListener,
    render_mosquitto_conf,
)

# made by Debian's mosquitto_passwd 2.0.11: `mosquitto_passwd -c -b FILE u 'pä:ss wörd'`
MOSQUITTO_PASSWD_LINE = (
    "u:$7$101$g28DLWTbpYfjgl+e$wSyB99HfIx2nDZgXkI6Hhzjew52idCrIrlYxR8lfC+8g"
    "K6i5OORyUvfpkGLVuoK0nAgJh6/9ZSoQRi3DwGkIWg=="
)
HASH = hash_password("x", salt=b"0123456789ab")


def gw(site: str, gateway: str, password_hash: str = HASH) -> Account:
    return Account(gateway_username(site, gateway), password_hash, Role.GATEWAY, site, gateway)


# -- the formats, without a broker ---------------------------------------------------------


def test_hash_is_mosquitto_passwd_format() -> None:
    line = MOSQUITTO_PASSWD_LINE.split(":", 1)[1]
    _, kind, iterations, salt, digest = line.split("$")
    ours = hash_password("pä:ss wörd", salt=base64.b64decode(salt), iterations=int(iterations))
    assert ours == line
    assert verify_password("pä:ss wörd", line)
    assert not verify_password("pä:ss word", line)
    fresh = hash_password("secret")
    _, kind, iterations, salt, digest = fresh.split("$")
    assert (kind, iterations) == ("7", "101")
    assert len(base64.b64decode(salt)) == 12 and len(base64.b64decode(digest)) == 64
    assert fresh != hash_password("secret")  # a new salt every time
    assert verify_password("secret", fresh)


@pytest.mark.parametrize(
    "kwargs",
    [{"password": ""}, {"password": "x", "salt": b"short"}, {"password": "x", "iterations": 0}],
)
def test_hash_refuses_what_mosquitto_cannot_use(kwargs: dict[str, object]) -> None:
    with pytest.raises(BrokerAuthError):
        hash_password(**kwargs)  # type: ignore[arg-type]


def test_gateway_username_is_unambiguous() -> None:
    assert gateway_username("SITE01", "GW01") == "SITE01.GW01"
    assert gateway_username("a-b", "c_d") == "a-b.c_d"
    # the separator is not an identifier character: no two gateways share a name
    with pytest.raises(BrokerAuthError):
        gateway_username("a.b", "c")


@pytest.mark.parametrize(
    "bad", ["", "a+b", "a#", "a/b", "a:b", "a b", "a\tb", "a\nb", "a.b", "é", "$SYS", "x" * 65]
)
def test_identifiers_that_would_break_the_files_are_refused(bad: str) -> None:
    with pytest.raises(BrokerAuthError, match="identifier"):
        gateway_username(bad, "GW1")
    with pytest.raises(BrokerAuthError, match="identifier"):
        gateway_username("S1", bad)
    with pytest.raises(BrokerAuthError, match="identifier"):
        Account(bad, HASH, Role.INGEST)


@pytest.mark.parametrize(
    ("account", "message"),
    [
        (lambda: Account("S1.GW2", HASH, Role.GATEWAY, "S1", "GW1"), "is named 'S1.GW1'"),
        (lambda: Account("S1.GW1", HASH, Role.GATEWAY, "S1"), "needs site and gateway"),
        (lambda: Account("ingest", HASH, Role.INGEST, site="S1"), "only gateway and monitor"),
        (lambda: Account("ingest", HASH, Role.INGEST, gateway="GW1"), "only a gateway account"),
        (lambda: Account("ingest", "plaintext", Role.INGEST), "not a Mosquitto \\$7\\$ hash"),
        (lambda: Account("ingest", HASH + "\nevil:x", Role.INGEST), "not a Mosquitto"),
        (lambda: Account("ingest", HASH, "superuser"), "unknown role"),  # type: ignore[arg-type]
        (lambda: Account("board", HASH, Role.MONITOR, site="S+"), "identifier"),
    ],
)
def test_invalid_accounts_cannot_be_made(account: Callable[[], Account], message: str) -> None:
    with pytest.raises(BrokerAuthError, match=message):
        account()


def test_password_file_lines_and_duplicates() -> None:
    h1, h2 = hash_password("a"), hash_password("b")
    text = render_password_file([gw("S1", "GW1", h1), Account("ingest", h2, Role.INGEST)])
    assert text == f"ingest:{h2}\nS1.GW1:{h1}\n"  # services first, then gateways
    with pytest.raises(BrokerAuthError, match=r"duplicate account 'S1\.GW1'"):
        render_password_file([gw("S1", "GW1"), gw("S1", "GW1")])
    with pytest.raises(BrokerAuthError, match="duplicate"):
        render_acl("p", [Account("x", HASH, Role.INGEST), Account("x", HASH, Role.ALERTS)])


def test_acl_rules_of_every_role() -> None:
    accounts = [
        gw("S1", "GW1"),
        Account("ingest", HASH, Role.INGEST),
        Account("alerts", HASH, Role.ALERTS),
        Account("board", HASH, Role.MONITOR),
        Account("siren", HASH, Role.MONITOR, site="S1"),
        Account("observer", HASH, Role.OBSERVER),
        Account("fleet", HASH, Role.FLEET),
        Account("health", HASH, Role.HEALTHCHECK),
    ]
    text = render_acl("sitewatch/v1", accounts)
    body = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert body == [
        "user ingest",
        "topic read sitewatch/v1/+/+/telemetry",
        "topic read sitewatch/v1/+/+/status",
        "topic read sitewatch/v1/+/+/attendance",
        "topic read sitewatch/v1/+/+/camera",
        "topic read sitewatch/v1/+/+/snapshot/+",
        "topic write sitewatch/v1/+/+/ack",
        "user alerts",
        "topic read sitewatch/v1/+/+/telemetry",
        "topic read sitewatch/v1/+/+/attendance",
        "topic read sitewatch/v1/+/+/status",
        "topic read sitewatch/v1/+/+/camera",
        "topic write sitewatch/v1/+/alerts",
        "user board",
        "topic read sitewatch/v1/+/alerts",
        "user siren",
        "topic read sitewatch/v1/S1/alerts",
        "user observer",
        "topic read sitewatch/v1/#",
        "user fleet",
        "topic write sitewatch/v1/+/+/telemetry",
        "topic write sitewatch/v1/+/+/status",
        "user health",
        "topic read $SYS/broker/uptime",
        "user S1.GW1",
        "topic write sitewatch/v1/S1/GW1/telemetry",
        "topic write sitewatch/v1/S1/GW1/status",
        "topic write sitewatch/v1/S1/GW1/attendance",
        "topic write sitewatch/v1/S1/GW1/camera",
        "topic write sitewatch/v1/S1/GW1/snapshot/+",
        "topic read sitewatch/v1/S1/GW1/ack",
    ]
    # no rule before the first `user` line: nothing applies to everybody
    first_rule = next(ln for ln in text.splitlines() if ln and not ln.startswith("#"))
    assert first_rule.startswith("user ")


@pytest.mark.parametrize(
    "prefix", ["", "a/+", "a/#", "a//b", "/a", "a b", "a:b", "$SYS", "a/\nuser x"]
)
def test_prefixes_that_would_break_acl_rules_are_refused(prefix: str) -> None:
    with pytest.raises(BrokerAuthError, match="invalid topic prefix"):
        render_acl(prefix, [gw("S1", "GW1")])


def test_write_broker_files_atomically_0600(tmp_path: Path) -> None:
    accounts = [gw("S1", "GW1"), Account("ingest", HASH, Role.INGEST)]
    files = write_broker_files(tmp_path / "auth", "p", accounts, owner=(os.getuid(), os.getgid()))
    assert files.password_file.read_text() == render_password_file(accounts)
    assert files.acl_file.read_text() == render_acl("p", accounts)
    for path in (files.password_file, files.acl_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    inode = files.password_file.stat().st_ino
    write_broker_files(tmp_path / "auth", "p", accounts[:1])
    assert files.password_file.stat().st_ino != inode  # replaced, never rewritten in place
    assert "ingest" not in files.password_file.read_text()
    before = files.acl_file.read_text()
    with pytest.raises(BrokerAuthError):
        write_broker_files(tmp_path / "auth", "p", [gw("S1", "GW1"), gw("S1", "GW1")])
    assert files.acl_file.read_text() == before  # nothing written
    assert sorted(p.name for p in (tmp_path / "auth").iterdir()) == ["acl", "passwd"]


def test_accounts_file_takes_passwords_from_the_environment() -> None:
    data = {
        "prefix": "sw/v1",
        "accounts": [
            {"role": "ingest", "username": "ingest", "password_env": "PW_INGEST"},
            {"role": "gateway", "site": "S1", "gateway": "GW1", "password_env": "PW_GW"},
            {"role": "monitor", "username": "board", "password_hash": HASH},
        ],
    }
    prefix, accounts = load_accounts(data, {"PW_INGEST": "i", "PW_GW": "g"})
    assert prefix == "sw/v1"
    by_name = {a.username: a for a in accounts}
    assert verify_password("i", by_name["ingest"].password_hash)
    assert verify_password("g", by_name["S1.GW1"].password_hash)
    assert by_name["S1.GW1"].role is Role.GATEWAY and by_name["board"].password_hash == HASH
    with pytest.raises(
        BrokerAuthError,
        match=r"accounts\[1\]: S1.GW1: environment variable "
        "PW_GW is not set",
    ):
        load_accounts(data, {"PW_INGEST": "i"})
    with pytest.raises(BrokerAuthError, match=r"[Ee]xtra"):
        load_accounts({"accounts": [{"role": "ingest", "username": "i", "pasword_env": "X"}]}, {})
    with pytest.raises(BrokerAuthError, match="one of them"):
        load_accounts({"accounts": [{"role": "ingest", "username": "i"}]}, {})
    with pytest.raises(BrokerAuthError, match="duplicate"):
        load_accounts(
            {
                "accounts": [
                    {"role": "ingest", "username": "i", "password_hash": HASH},
                    {"role": "alerts", "username": "i", "password_hash": HASH},
                ]
            },
            {},
        )


def test_broker_config_with_and_without_accounts() -> None:
    plain = render_mosquitto_conf(port=1, host="h", persistence_dir="/d", max_queued_messages=5)
    assert "allow_anonymous true\n" in plain and "password_file" not in plain
    auth = render_mosquitto_conf(
        port=1,
        host="h",
        persistence_dir="/d",
        max_queued_messages=5,
        password_file="/a/passwd",
        acl_file="/a/acl",
        tls=TlsListener("/c/crt", "/c/key", "/c/ca"),
        tls_port=2,
    )
    assert "allow_anonymous false\npassword_file /a/passwd\nacl_file /a/acl\n" in auth
    assert "allow_anonymous true" not in auth
    assert "listener 2 h\ncertfile /c/crt\nkeyfile /c/key\ncafile /c/ca\n" in auth
    with pytest.raises(ValueError, match="password file"):
        render_mosquitto_conf(
            port=1, host="h", persistence_dir="/d", max_queued_messages=5, acl_file="/a/acl"
        )


# -- against real Mosquitto ------------------------------------------------------------------

integration = pytest.mark.integration

#: every kind of account, on a broker of the test's own
ACCOUNTS: list[tuple[str, Role, str | None, str | None]] = [
    ("ingest", Role.INGEST, None, None),
    ("alerts", Role.ALERTS, None, None),
    ("board", Role.MONITOR, None, None),
    ("display-s2", Role.MONITOR, "S2", None),
    ("observer", Role.OBSERVER, None, None),
    ("fleet", Role.FLEET, None, None),
    ("health", Role.HEALTHCHECK, None, None),
    ("S1.GW1", Role.GATEWAY, "S1", "GW1"),
    ("S1.GW2", Role.GATEWAY, "S1", "GW2"),
    ("S2.GW1", Role.GATEWAY, "S2", "GW1"),
]


@dataclass
class AuthBroker:
    server: MosquittoServer
    dir: Path
    prefix: str
    passwords: dict[str, str] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)

    def add(
        self, username: str, role: Role, site: str | None = None, gateway: str | None = None
    ) -> None:
        self.passwords[username] = new_password()
        self.accounts[username] = Account(
            username, hash_password(self.passwords[username]), role, site, gateway
        )

    def remove(self, username: str) -> None:
        del self.accounts[username]

    def write(self) -> None:
        write_broker_files(self.dir, self.prefix, self.accounts.values())

    def settings(
        self, username: str | None, password: str | None = None, *, tls_ca: Path | None = None
    ) -> mqtt.MqttSettings:
        if username is not None and password is None:
            password = self.passwords[username]
        return mqtt.MqttSettings(
            host=self.server.host,
            port=self.server.tls_port if tls_ca else self.server.port,
            topic_prefix=self.prefix,
            username=username or "",
            password=password,
            tls_ca=str(tls_ca) if tls_ca else None,
        )  # type: ignore[arg-type]

    def client(
        self, username: str | None, password: str | None = None, *, tls_ca: Path | None = None
    ) -> mqtt.Client:
        return mqtt.Client(
            self.settings(username, password, tls_ca=tls_ca),
            client_id=f"{(username or 'anon').replace('.', '_')}-{id(self)}-{os.urandom(3).hex()}",
            connect_timeout_s=5,
        )


def auth_broker_at(tmp_path: Path, prefix: str, tls: TlsListener | None = None) -> AuthBroker:
    auth = tmp_path / "auth"
    broker = AuthBroker(
        MosquittoServer(
            tmp_path / "mosquitto", password_file=auth / "passwd", acl_file=auth / "acl", tls=tls
        ),
        auth,
        prefix,
    )
    for username, role, site, gateway in ACCOUNTS:
        broker.add(username, role, site, gateway)
    broker.write()
    return broker


@pytest.fixture
def auth_broker(tmp_path: Path, prefix: str) -> Iterator[AuthBroker]:
    """Mosquitto with the password and ACL files we generate, anonymous refused."""
    broker = auth_broker_at(tmp_path, prefix)
    broker.server.start()
    try:
        yield broker
    finally:
        broker.server.close()


class Inbox:
    """Every message a client receives, by topic."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.messages: list[mqtt.Message] = []
        self.task: asyncio.Task[None] | None = None

    async def subscribe(self, *filters: str) -> None:
        await self.client.subscribe(*filters, qos=1)
        if self.task is None:
            self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(mqtt.MqttError):
            async for m in self.client.messages():
                self.messages.append(m)

    @property
    def topics(self) -> set[str]:
        return {m.topic for m in self.messages}


@contextlib.asynccontextmanager
async def connected(*clients: mqtt.Client) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for c in clients:
            await stack.enter_async_context(c)
        yield


async def refused_connect(client: mqtt.Client) -> str:
    with pytest.raises(mqtt.MqttError) as exc:
        await client.connect()
    await gone(client)
    return str(exc.value)


async def gone(client: mqtt.Client) -> None:
    """Take the reason a connection ended (a refused CONNACK, a broker that dropped us)."""
    with contextlib.suppress(mqtt.MqttError, TimeoutError):
        await asyncio.wait_for(client.wait_disconnected(), 1)
    await client.disconnect()


def telemetry(batch: int, device: str, seq: int) -> bytes:
    return json.dumps(
        {
            "v": 1,
            "batch": batch,
            "sent": now_ms(),
            "items": [
                {
                    "device": device,
                    "profile": "tower_crane",
                    "ts": now_ms() - 1000,
                    "seq": seq,
                    "values": {"load_t": 3.2, "wind_ms": 6.1},
                }
            ],
        }
    ).encode()


SNAPSHOT = "ab" * 32
#: (account, topic, allowed): what each role may publish ({p}: the prefix)
PUBLISHES: list[tuple[str, str, bool]] = [
    ("S1.GW1", "{p}/S1/GW1/telemetry", True),
    ("S1.GW1", "{p}/S1/GW1/status", True),
    ("S1.GW1", "{p}/S1/GW1/attendance", True),
    ("S1.GW1", "{p}/S1/GW1/camera", True),
    ("S1.GW1", "{p}/S1/GW1/snapshot/" + SNAPSHOT, True),
    ("S1.GW1", "{p}/S1/GW2/telemetry", False),  # another gateway of its site
    ("S1.GW1", "{p}/S2/GW1/telemetry", False),  # its own gateway id at another site
    ("S1.GW1", "{p}/S1/GW2/status", False),
    ("S1.GW1", "{p}/S1/GW2/snapshot/" + SNAPSHOT, False),
    ("S1.GW1", "{p}/S1/GW1/ack", False),  # acknowledging its own batches
    ("S1.GW1", "{p}/S1/GW2/ack", False),
    ("S1.GW1", "{p}/S1/alerts", False),  # a fake alert
    ("S1.GW1", "{p}/S1/GW1/telemetry/more", False),
    ("S1.GW1", "{p}/S1/GW1", False),
    ("S1.GW1", "elsewhere/S1/GW1/telemetry", False),
    ("ingest", "{p}/S1/GW1/ack", True),
    ("ingest", "{p}/S1/GW2/telemetry", False),
    ("ingest", "{p}/S1/alerts", False),
    ("alerts", "{p}/S1/alerts", True),
    ("alerts", "{p}/S1/GW1/ack", False),
    ("alerts", "{p}/S1/GW1/telemetry", False),
    ("fleet", "{p}/S3/GW7/telemetry", True),
    ("fleet", "{p}/S3/GW7/status", True),
    ("fleet", "{p}/S3/GW7/ack", False),
    ("fleet", "{p}/S3/alerts", False),
    ("board", "{p}/S1/alerts", False),
    ("observer", "{p}/S1/GW1/telemetry", False),
    ("health", "{p}/S1/GW1/telemetry", False),
]
_OWN = [
    "{p}/S1/GW1/telemetry",
    "{p}/S1/GW1/status",
    "{p}/S1/GW1/attendance",
    "{p}/S1/GW1/camera",
    "{p}/S1/GW1/snapshot/" + SNAPSHOT,
]
_FLEET = ["{p}/S3/GW7/telemetry", "{p}/S3/GW7/status"]
#: what each account, subscribed to `#`, receives of the allowed publishes above
READS: dict[str, list[str]] = {
    "S1.GW1": ["{p}/S1/GW1/ack"],
    "S1.GW2": [],
    "S2.GW1": [],
    "ingest": _OWN + _FLEET,
    "alerts": [
        "{p}/S1/GW1/telemetry",
        "{p}/S1/GW1/status",
        "{p}/S1/GW1/attendance",
        "{p}/S1/GW1/camera",
        *_FLEET,
    ],
    "board": ["{p}/S1/alerts"],
    "display-s2": [],
    "observer": [t for _, t, ok in PUBLISHES if ok],
    "fleet": [],
    "health": [],
}


@integration
async def test_every_role_publishes_and_reads_only_its_topics(auth_broker: AuthBroker) -> None:
    p = auth_broker.prefix
    clients = {name: auth_broker.client(name) for name, *_ in ACCOUNTS}
    inboxes = {name: Inbox(c) for name, c in clients.items()}
    async with connected(*clients.values()):
        for inbox in inboxes.values():
            # Mosquitto 2.0 grants any subscription and filters each delivery by the ACL
            await inbox.subscribe("#")
        health_sys = Inbox(auth_broker.client("health"))
        async with health_sys.client:
            await health_sys.subscribe("$SYS/#")
            for who, topic, allowed in PUBLISHES:
                topic = topic.format(p=p)
                publish = clients[who].publish(topic, b"{}", qos=1)
                if allowed:
                    await publish
                else:
                    with pytest.raises(mqtt.MqttError, match="Not authorized"):
                        await publish

            def reads() -> dict[str, set[str]]:
                return {n: inbox.topics for n, inbox in inboxes.items()}

            want = {n: {t.format(p=p) for t in ts} for n, ts in READS.items()}
            await wait_for(
                lambda: all(want[n] <= got for n, got in reads().items()),
                what=lambda: f"deliveries: want {want}, got {reads()}",
            )
            await wait_for(lambda: health_sys.topics, what="$SYS/broker/uptime")
            # the marker that nothing more is coming: every publish above was answered
            # (PUBACK or refusal) before this, so a SUBACK on each connection comes after
            # whatever the broker sent that client for them; then each inbox has taken
            # everything that arrived before its SUBACK
            everyone = [*clients.values(), health_sys.client]
            for c in everyone:
                await c.subscribe(f"{p}/nothing-publishes-here")
            await wait_for(
                lambda: all(c.pending_messages() == 0 for c in everyone),
                what="every inbox took what came before its SUBACK",
            )
            assert reads() == want
            assert health_sys.topics == {"$SYS/broker/uptime"}


@integration
async def test_anonymous_and_wrong_credentials_are_refused(auth_broker: AuthBroker) -> None:
    for username, password in [
        (None, None),
        ("S1.GW1", "wrong"),
        ("nobody", "x"),
        ("S1.GW1", auth_broker.passwords["S1.GW2"]),
    ]:
        message = await refused_connect(auth_broker.client(username, password))
        assert "Not authorized" in message, (username, message)


@integration
def test_clients_we_did_not_write_need_an_account(auth_broker: AuthBroker) -> None:
    server = auth_broker.server
    anon = subprocess.run(
        [
            "mosquitto_sub",
            "-h",
            server.host,
            "-p",
            str(server.port),
            "-t",
            "#",
            "-C",
            "1",
            "-W",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert anon.returncode != 0 and "not authorised" in anon.stderr.lower(), anon
    ok = subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            server.host,
            "-p",
            str(server.port),
            "-q",
            "1",
            "-u",
            "S1.GW1",
            "-P",
            auth_broker.passwords["S1.GW1"],
            "-t",
            f"{auth_broker.prefix}/S1/GW1/status",
            "-m",
            "{}",
        ],
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert ok.returncode == 0, ok


@integration
async def test_gateway_subscribing_to_everything_gets_nothing_of_others(
    auth_broker: AuthBroker,
) -> None:
    p = auth_broker.prefix
    other = auth_broker.client("S1.GW2")
    ingest = auth_broker.client("ingest")
    alerts = auth_broker.client("alerts")
    nosy = Inbox(auth_broker.client("S1.GW1"))
    async with connected(other, ingest, alerts, nosy.client):
        await other.publish(f"{p}/S1/GW2/status", b'{"state":"online"}', retain=True)
        await nosy.subscribe("#", f"{p}/#", f"{p}/S1/GW2/#", f"{p}/+/+/telemetry")
        await other.publish(f"{p}/S1/GW2/telemetry", telemetry(1, "TC01", 1))
        await ingest.publish(f"{p}/S1/GW2/ack", b'{"acks":[]}')
        await alerts.publish(f"{p}/S1/alerts", b"{}")
        # the last message is one it may read: earlier deliveries would be in by now
        await ingest.publish(f"{p}/S1/GW1/ack", b'{"acks":[]}')
        # (the broker sends a client its messages in the order it took them)
        await wait_for(lambda: nosy.messages, what="its own ack")
        # (one copy per matching subscription)
        assert {m.topic for m in nosy.messages} == {f"{p}/S1/GW1/ack"}


@integration
async def test_gateway_cannot_publish_for_another_and_nothing_is_stored(
    auth_broker: AuthBroker,
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    agent_factory: Callable[[EdgeSettings], RunningAgent],
    influx_client: InfluxClient,
    tmp_path: Path,
) -> None:
    """The real pipeline on the authenticated broker: the edge agent of S1/GW1 and ingest
    with their own accounts; gateway S1/GW2 tries to publish as S1/GW1 and to forge its
    acks. Every reading of S1/GW1 is stored exactly once, S1/GW2's own reading too, and
    nothing it sent under S1/GW1's name."""
    p = auth_broker.prefix
    running = await start_ingest(
        mqtt_server=auth_broker.server, mqtt=auth_broker.settings("ingest")
    )
    settings = edge_settings(auth_broker.server, p, tmp_path / "edge")
    assert (settings.site, settings.gateway) == ("S1", "GW1")
    agent = agent_factory(settings.model_copy(update={"mqtt": auth_broker.settings("S1.GW1")}))
    await wait_for(agent.agent.connected.is_set, what="edge agent connected")

    async with auth_broker.client("S1.GW2") as rogue:
        forged = telemetry(now_ms(), "FORGED01", 1)
        with pytest.raises(mqtt.MqttError, match="Not authorized"):
            await rogue.publish(f"{p}/S1/GW1/telemetry", forged, qos=1)
        await rogue.publish(f"{p}/S1/GW1/telemetry", forged, qos=0)  # dropped silently
        with pytest.raises(mqtt.MqttError, match="Not authorized"):
            await rogue.publish(f"{p}/S2/GW1/telemetry", forged, qos=1)
        # a forged ack would make the agent drop readings it has not yet delivered
        forged_ack = json.dumps(
            {"acks": [{"batch": b, "stored": 1, "rejected": 0} for b in range(1, 200)]}
        ).encode()
        with pytest.raises(mqtt.MqttError, match="Not authorized"):
            await rogue.publish(f"{p}/S1/GW1/ack", forged_ack, qos=1)
        await rogue.publish(f"{p}/S1/GW2/telemetry", telemetry(1, "ROGUE01", 1), qos=1)
        # the agent acknowledged by ingest after the forgeries were refused, each device
        # with readings of its own (ROGUE01, sent after the forged QoS 0 message, is
        # awaited in the store below)
        acked = agent.agent.batches_acked
        await wait_for(
            lambda: (
                agent.agent.batches_acked > acked + 2
                and set(agent.agent.spool.last_seqs()) >= {d.id for d in settings.devices}
            ),
            timeout=30,
            what="the agent's batches acknowledged after the forgeries",
        )
    last = await agent.stop()
    assert last and all(n > 0 for n in last.values())

    await assert_seqs_exactly_once(influx_client, {**last, "ROGUE01": 1})
    rows = await influx_client.series('SELECT "seq", "gateway" FROM /.*/ GROUP BY "device"')
    gateways = {(r["device"], r["gateway"]) for r in rows}
    assert gateways == {(d, "GW1") for d in last} | {("ROGUE01", "GW2")}
    assert "FORGED01" not in await seqs_by_device(influx_client)
    assert DeadLetterStore(running.settings.database_url).recent(10) == []
    assert running.service is not None and running.service.stats.items_rejected == 0


@integration
async def test_accounts_changed_while_running_apply_after_reload(auth_broker: AuthBroker) -> None:
    p = auth_broker.prefix
    auth_broker.add("S1.GW3", Role.GATEWAY, "S1", "GW3")
    message = await refused_connect(auth_broker.client("S1.GW3"))
    assert "Not authorized" in message  # not in the running broker's files yet

    ingest = Inbox(auth_broker.client("ingest"))
    revoked = auth_broker.client("S1.GW1")
    async with connected(ingest.client, revoked):
        await ingest.subscribe(f"{p}/+/+/telemetry")
        auth_broker.remove("S1.GW1")
        auth_broker.write()
        auth_broker.server.reload()

        async def gw3_connects() -> bool:
            try:
                async with auth_broker.client("S1.GW3") as c:
                    await c.publish(f"{p}/S1/GW3/telemetry", telemetry(1, "TC01", 1))
                return True
            except mqtt.MqttError:
                return False

        await wait_for(gw3_connects, timeout=10, interval=0.2, what="S1.GW3 accepted")
        await wait_for(lambda: f"{p}/S1/GW3/telemetry" in ingest.topics, what="its reading")
        # the removed gateway is refused from now on, and its open connection is closed
        # (Mosquitto re-checks connected clients against the files it reloaded)
        assert "Not authorized" in await refused_connect(auth_broker.client("S1.GW1"))
        await wait_for(lambda: not revoked.is_connected, what="revoked gateway disconnected")
        await gone(revoked)


def self_signed(directory: Path, cn: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (the openssl binary; nothing downloaded)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            f"/CN={cn}",
            "-addext",
            f"subjectAltName=IP:{cn}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@integration
async def test_tls_listener_with_the_same_accounts(tmp_path: Path, prefix: str) -> None:
    cert, key = self_signed(tmp_path / "tls")
    other_ca, _ = self_signed(tmp_path / "other")
    broker = auth_broker_at(tmp_path, prefix, tls=TlsListener(cert, key))
    broker.server.start()
    try:
        assert broker.server.tls_port not in (0, broker.server.port)
        ingest = Inbox(broker.client("ingest"))  # plain listener, inside the platform
        async with ingest.client:
            await ingest.subscribe(f"{prefix}/+/+/telemetry")
            async with broker.client("S1.GW1", tls_ca=cert) as gateway:
                await gateway.publish(f"{prefix}/S1/GW1/telemetry", telemetry(1, "TC01", 1))
                with pytest.raises(mqtt.MqttError, match="Not authorized"):
                    await gateway.publish(f"{prefix}/S1/GW2/telemetry", b"{}")
            await wait_for(lambda: ingest.topics, what="the reading sent over TLS")
            assert ingest.topics == {f"{prefix}/S1/GW1/telemetry"}
        assert "Not authorized" in await refused_connect(broker.client(None, tls_ca=cert))
        # a client that does not trust the broker's certificate does not talk to it
        with pytest.raises(mqtt.MqttError, match="CERTIFICATE_VERIFY_FAILED"):
            await broker.client("S1.GW1", tls_ca=other_ca).connect()
    finally:
        broker.server.close()


@integration
@pytest.mark.parametrize("password", ["secret", "pä:ss wörd", "x" * 200, "$7$101$"])
def test_hash_equals_mosquitto_passwd(tmp_path: Path, password: str) -> None:
    """The real mosquitto_passwd, given the same password, writes our hash with its salt."""
    path = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(path), "u", password],
        check=True,
        capture_output=True,
        timeout=30,
    )
    username, theirs = path.read_text().strip().split(":", 1)
    _, _, iterations, salt, _ = theirs.split("$")
    assert (
        hash_password(password, salt=base64.b64decode(salt), iterations=int(iterations)) == theirs
    )
    assert Account(username, theirs, Role.INGEST).password_hash == theirs


# -- `sitewatch broker`: what an operator runs ------------------------------------------------


def registry_with_gateway(url: str, site: str, gateway: str | None, password: str = "") -> None:
    """A site, and a gateway provisioned as the API does it: its account's hash in the
    registry."""
    from sqlalchemy.orm import Session

    from sitewatch.core.db import Base, make_engine
    from sitewatch.domains import registry

    engine = make_engine(url)
    Base.metadata.create_all(engine, tables=registry.TABLES)  # type: ignore[arg-type]
    with Session(engine) as s:
        reg = registry.Registry(s)
        reg.add_site(
            registry.SiteRow(
                id=site,
                name="site",
                county="C",
                town="T",
                project_type="building",
                latitude=30.0,
                longitude=120.0,
                planned_headcount=None,
                created_at=now_ms(),
            )
        )
        if gateway is not None:
            reg.add_gateway(
                registry.GatewayRow(
                    site=site,
                    id=gateway,
                    description="",
                    mqtt_username=gateway_username(site, gateway),
                    mqtt_password_hash=hash_password(password),
                    created_at=now_ms(),
                )
            )
        s.commit()
    engine.dispose()


@integration
async def test_broker_files_command_writes_what_the_broker_takes(
    tmp_path: Path, prefix: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sitewatch.programs.cli import main

    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(f"""prefix: {prefix}
accounts:
  - {{username: ingest, role: ingest, password_env: TEST_INGEST_PASSWORD}}
  - {{role: gateway, site: S1, gateway: GW1, password_env: TEST_GW_PASSWORD}}
""")
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    registry_with_gateway(db, "S9", "GW9", "from-the-api")
    registry_with_gateway(db, "S1", None)  # the file's gateway is imported: its site is known
    monkeypatch.setenv("TEST_INGEST_PASSWORD", "ingest-pw")
    args = ["broker", "files", "--accounts", str(accounts), "--dir", str(tmp_path / "auth")]
    assert main(args) == 2  # TEST_GW_PASSWORD is missing: nothing written
    assert "TEST_GW_PASSWORD is not set" in capsys.readouterr().err
    assert not (tmp_path / "auth" / "passwd").exists()
    monkeypatch.setenv("TEST_GW_PASSWORD", "gw-pw")
    assert main([*args, "--database-url", db, "--owner", f"{os.getuid()}:{os.getgid()}"]) == 0
    assert "3 accounts (2 gateways)" in capsys.readouterr().out

    server = MosquittoServer(
        tmp_path / "mosquitto",
        password_file=tmp_path / "auth/passwd",
        acl_file=tmp_path / "auth/acl",
    )
    server.start()
    try:

        def login(username: str, password: str) -> mqtt.Client:
            return mqtt.Client(
                mqtt.MqttSettings(
                    host=server.host, port=server.port, username=username, password=password
                ),  # type: ignore[arg-type]
                client_id=f"{username.replace('.', '_')}-{os.urandom(3).hex()}",
            )

        ingest = Inbox(login("ingest", "ingest-pw"))
        async with (
            ingest.client,
            login("S1.GW1", "gw-pw") as gw1,
            login("S9.GW9", "from-the-api") as gw9,
        ):
            await ingest.subscribe(f"{prefix}/+/+/telemetry")
            await gw1.publish(f"{prefix}/S1/GW1/telemetry", b"{}")
            await gw9.publish(f"{prefix}/S9/GW9/telemetry", b"{}")
            with pytest.raises(mqtt.MqttError, match="Not authorized"):
                await gw9.publish(f"{prefix}/S1/GW1/telemetry", b"{}")
            await wait_for(lambda: len(ingest.topics) == 2, what=lambda: str(ingest.topics))
    finally:
        server.close()


def test_broker_hash_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from sitewatch.programs.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    assert main(["broker", "hash"]) == 0
    assert verify_password("s3cret", capsys.readouterr().out.strip())
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["broker", "hash"]) == 2
    assert "empty password" in capsys.readouterr().err
