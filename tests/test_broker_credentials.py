"""Gateway credentials against real Mosquitto: the API and `sitewatch broker` write the
broker's files from one source (the database), so provisioning through the API never
cuts off a gateway configured in the accounts file; revoking a gateway closes its open
connection and refuses it from then on; rotating makes the old password useless and the
new one work. Every other account keeps publishing throughout."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import wait_for

from api.config import ApiSettings, AuthSettings, RateLimitSettings
from api.main import create_app
from sitewatch.core import mqtt
from sitewatch.core.influx import InfluxSettings
from sitewatch.domains.accounts import add_user
from sitewatch.domains.brokeraccounts.brokerauth import hash_password
from sitewatch.programs.localstack import MosquittoServer

pytestmark = pytest.mark.integration

SECRET = "t" * 40
PASSWORD = "correct horse battery"
SITE = {
    "id": "S1",
    "name": "Bridge",
    "county": "Lankao",
    "town": "Chengguan",
    "project_type": "bridge",
    "latitude": 34.82,
    "longitude": 114.82,
}
FILE_GW_PASSWORD = "file-gateway-password"
INGEST_PASSWORD = "ingest-password-0123"
PROBE_PASSWORD = "probe-password-0123"
#: how long a revoked or rotated-out gateway's open connection may outlive the change
CUT_OFF_S = 3.0


@dataclass
class Stack:
    """A broker on the files in ``auth``, an API that writes them and signals it, an
    accounts file with ingest and gateway S1.GW1."""

    tmp: Path
    server: MosquittoServer
    api: httpx.AsyncClient
    admin: dict[str, str]
    db: str
    prefix: str = "sw/v1"

    @property
    def auth(self) -> Path:
        return self.tmp / "auth"

    def cli(self, *args: str) -> list[str]:
        return [
            *args,
            "--accounts",
            str(self.tmp / "accounts.yaml"),
            "--dir",
            str(self.auth),
            "--database-url",
            self.db,
        ]

    def client(self, username: str, password: str) -> mqtt.Client:
        return mqtt.Client(
            mqtt.MqttSettings(
                host=self.server.host,
                port=self.server.port,
                topic_prefix=self.prefix,
                username=username,
                password=password,
            ),
            client_id=f"{username.replace('.', '_')}-{os.urandom(3).hex()}",
            connect_timeout_s=5,
        )


@pytest.fixture
async def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    from sitewatch.programs.cli import main

    db = f"sqlite:///{tmp_path / 'sitewatch.db'}"
    settings = ApiSettings(
        environment="production",
        auth=AuthSettings(secret_key=SECRET),
        rate_limit=RateLimitSettings(enabled=False),
        influx=InfluxSettings(url="http://127.0.0.1:9", timeout_s=1),  # not used here
        database_url=db,
        snapshots_dir=tmp_path / "snapshots",
        broker={
            "dir": tmp_path / "auth",
            "topic_prefix": "sw/v1",
            "pid_file": tmp_path / "mosquitto.pid",
            "service_accounts": [
                {
                    "username": "ingest",
                    "role": "ingest",
                    "password_hash": hash_password(INGEST_PASSWORD),
                }
            ],
        },
    )
    app = create_app(settings)
    ctx = app.router.lifespan_context(app)
    await ctx.__aenter__()
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
    server = MosquittoServer(
        tmp_path / "mosquitto",
        password_file=tmp_path / "auth/passwd",
        acl_file=tmp_path / "auth/acl",
    )
    try:
        with app.state.sitewatch.sessions() as s:
            add_user(s, "root", PASSWORD, "admin")
            s.commit()
        r = await api.post("/auth/token", data={"username": "root", "password": PASSWORD})
        admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
        assert (await api.post("/sites", json=SITE, headers=admin)).status_code == 201
        # the operator's accounts file: ingest, and a gateway configured there
        (tmp_path / "accounts.yaml").write_text("""prefix: sw/v1
accounts:
  - {username: ingest, role: ingest, password_env: TEST_INGEST_PASSWORD}
  - {role: gateway, site: S1, gateway: GW1, password_env: TEST_GW1_PASSWORD}
""")
        monkeypatch.setenv("TEST_INGEST_PASSWORD", INGEST_PASSWORD)
        monkeypatch.setenv("TEST_GW1_PASSWORD", FILE_GW_PASSWORD)
        st = Stack(tmp_path, server, api, admin, db)
        assert main(st.cli("broker", "files")) == 0  # imports S1.GW1 into the database
        server.start()
        assert server.proc is not None
        (tmp_path / "mosquitto.pid").write_text(f"{server.proc.pid}\n")
        yield st
    finally:
        server.close()
        await api.aclose()
        await ctx.__aexit__(None, None, None)


class Publisher:
    """A gateway publishing telemetry at QoS 1 every 50 ms until stopped; counts what the
    broker accepted and what it refused or failed."""

    def __init__(self, client: mqtt.Client, topic: str) -> None:
        self.client, self.topic = client, topic
        self.accepted = 0
        self.errors: list[str] = []
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Publisher:
        await self.client.connect()
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            try:
                await self.client.publish(self.topic, b"{}", qos=1)
                self.accepted += 1
            except mqtt.MqttError as exc:
                self.errors.append(str(exc))
                return
            await asyncio.sleep(0.05)

    async def still_accepted(self) -> None:
        """The broker keeps taking its messages."""
        n = self.accepted
        await wait_for(
            lambda: self.accepted >= n + 3 or self.errors, timeout=5, what=f"{self.topic} published"
        )
        assert not self.errors, self.errors

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.client.disconnect()


async def refused(st: Stack, username: str, password: str) -> bool:
    try:
        async with st.client(username, password):
            return False
    except mqtt.MqttError as exc:
        return "Not authorized" in str(exc)


async def logs_in(st: Stack, username: str, password: str) -> bool:
    try:
        async with st.client(username, password):
            return True
    except mqtt.MqttError:
        return False


async def provision(st: Stack, gateway: str) -> dict[str, Any]:
    r = await st.api.post("/sites/S1/gateways", json={"id": gateway}, headers=st.admin)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_provisioning_through_the_api_keeps_file_gateways(stack: Stack) -> None:
    """The cut-off of the hardening issue: S1.GW1 from the accounts file is connected and
    publishing; the API provisions S1.GW2; S1.GW1 keeps publishing and can reconnect."""
    st = stack
    async with Publisher(st.client("S1.GW1", FILE_GW_PASSWORD), "sw/v1/S1/GW1/telemetry") as gw1:
        await gw1.still_accepted()
        creds = await provision(st, "GW2")
        async with Publisher(
            st.client(creds["mqtt_username"], creds["mqtt_password"]), "sw/v1/S1/GW2/telemetry"
        ) as gw2:
            await gw2.still_accepted()
            await gw1.still_accepted()
            assert gw1.client.is_connected
    async with st.client("S1.GW1", FILE_GW_PASSWORD) as again:
        await again.publish("sw/v1/S1/GW1/telemetry", b"{}", qos=1)


async def cut_off_within(publisher: Publisher, bound: float) -> float:
    """Seconds until the broker closed the publisher's connection (at most ``bound``)."""
    start = asyncio.get_running_loop().time()
    await wait_for(
        lambda: not publisher.client.is_connected,
        timeout=bound,
        interval=0.02,
        what=f"{publisher.topic}'s connection closed by the broker",
    )
    with contextlib.suppress(mqtt.MqttError, TimeoutError):
        await asyncio.wait_for(publisher.client.wait_disconnected(), 1)
    return asyncio.get_running_loop().time() - start


async def test_revoke_and_rotate_through_the_api(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    st = stack
    gw2 = await provision(st, "GW2")
    gw3 = await provision(st, "GW3")
    assert (await st.api.post("/sites/S1/gateways/GW2/mqtt/revoke")).status_code == 401
    async with (
        Publisher(st.client("S1.GW1", FILE_GW_PASSWORD), "sw/v1/S1/GW1/telemetry") as gw1,
        Publisher(st.client("S1.GW2", gw2["mqtt_password"]), "sw/v1/S1/GW2/telemetry") as p2,
        Publisher(st.client("S1.GW3", gw3["mqtt_password"]), "sw/v1/S1/GW3/telemetry") as p3,
    ):
        for p in (gw1, p2, p3):
            await p.still_accepted()

        # revoke: the open connection is closed at once, the password refused from now on
        r = await st.api.post("/sites/S1/gateways/GW2/mqtt/revoke", headers=st.admin)
        assert r.status_code == 200, r.text
        assert r.json()["revoked"] and r.json()["broker"] == "reloaded"
        assert r.json()["changed_by"] == "user:root"
        print(f"revoked gateway cut off after {await cut_off_within(p2, CUT_OFF_S):.2f} s")
        assert await refused(st, "S1.GW2", gw2["mqtt_password"])
        assert "S1.GW2" not in (st.auth / "passwd").read_text()
        assert "S1/GW2" not in (st.auth / "acl").read_text()
        await gw1.still_accepted()
        await p3.still_accepted()
        state = (await st.api.get("/sites/S1/gateways/GW2/mqtt", headers=st.admin)).json()
        assert state["revoked"] and state["change"] == "revoked"

        # rotate: the old password's connection is closed, the old password refused, the new
        # one works
        r = await st.api.post("/sites/S1/gateways/GW3/mqtt/rotate", headers=st.admin)
        assert r.status_code == 200, r.text
        new3 = r.json()["mqtt_password"]
        assert new3 != gw3["mqtt_password"] and r.json()["broker"] == "reloaded"
        print(f"rotated-out connection cut off after {await cut_off_within(p3, CUT_OFF_S):.2f} s")
        assert await refused(st, "S1.GW3", gw3["mqtt_password"])
        async with Publisher(st.client("S1.GW3", new3), "sw/v1/S1/GW3/telemetry") as again:
            await again.still_accepted()
            await gw1.still_accepted()  # the accounts file's gateway, throughout
        assert gw1.client.is_connected

    # rotating a revoked gateway admits it again, with the new password only
    r = await st.api.post("/sites/S1/gateways/GW2/mqtt/rotate", headers=st.admin)
    new2 = r.json()["mqtt_password"]
    assert r.status_code == 200 and not r.json()["revoked"]
    async with st.client("S1.GW2", new2) as c:
        await c.publish("sw/v1/S1/GW2/telemetry", b"{}", qos=1)
    assert await refused(st, "S1.GW2", gw2["mqtt_password"])
    # who did what is in the log
    audit = [r.getMessage() for r in caplog.records if r.name == "sitewatch.api"]
    assert any("S1.GW2: MQTT account revoked by user:root" in m for m in audit), audit
    assert any("S1.GW3: MQTT password rotated by user:root" in m for m in audit), audit
    missing = await st.api.post("/sites/S1/gateways/NOPE/mqtt/revoke", headers=st.admin)
    assert missing.status_code == 404


async def test_revoke_and_rotate_with_the_cli(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sitewatch broker revoke/rotate` on the accounts file's gateway: it stays revoked
    although the file still lists it, and the file's password stops counting."""
    from sitewatch.programs.cli import main

    st = stack
    api_gw = await provision(st, "GW2")
    pid = ["--pid-file", str(st.tmp / "mosquitto.pid"), "--by", "cli:county-it"]
    async with (
        Publisher(st.client("S1.GW1", FILE_GW_PASSWORD), "sw/v1/S1/GW1/telemetry") as gw1,
        Publisher(st.client("S1.GW2", api_gw["mqtt_password"]), "sw/v1/S1/GW2/telemetry") as gw2,
    ):
        await gw1.still_accepted()
        capsys.readouterr()
        assert main(st.cli("broker", "revoke", "S1", "GW1", *pid)) == 0
        assert "broker reloaded" in capsys.readouterr().out
        await cut_off_within(gw1, CUT_OFF_S)
        assert await refused(st, "S1.GW1", FILE_GW_PASSWORD)
        await gw2.still_accepted()
        # writing the files again from the accounts file does not bring it back. The
        # marker that the files of that run are in force: an account it adds logs in
        accounts = st.tmp / "accounts.yaml"
        accounts.write_text(
            accounts.read_text()
            + ("  - {username: probe, role: monitor, password_env: TEST_PROBE_PASSWORD}\n")
        )
        monkeypatch.setenv("TEST_PROBE_PASSWORD", PROBE_PASSWORD)
        assert main(st.cli("broker", "files", *pid)) == 0
        assert "the database's credential is used" in capsys.readouterr().out
        await wait_for(
            lambda: logs_in(st, "probe", PROBE_PASSWORD),
            timeout=10,
            what="the broker reloaded the files",
        )
        assert await refused(st, "S1.GW1", FILE_GW_PASSWORD)

        assert main(st.cli("broker", "rotate", "S1", "GW1", *pid)) == 0
        out = capsys.readouterr().out
        new = out.split("(shown once): ", 1)[1].split()[0]
        async with st.client("S1.GW1", new) as c:
            await c.publish("sw/v1/S1/GW1/telemetry", b"{}", qos=1)
        assert await refused(st, "S1.GW1", FILE_GW_PASSWORD)
        await gw2.still_accepted()  # the API's gateway, throughout
    state = (await st.api.get("/sites/S1/gateways/GW1/mqtt", headers=st.admin)).json()
    assert (state["change"], state["changed_by"], state["revoked"]) == (
        "rotated",
        "cli:county-it",
        False,
    )
    assert main(st.cli("broker", "revoke", "S1", "NOPE")) == 2
    assert "no gateway NOPE at site S1" in capsys.readouterr().err
    assert main(["broker", "rotate", "S1", "GW1", "--accounts", str(st.tmp / "accounts.yaml")]) == 2
    assert "--database-url" in capsys.readouterr().err


async def test_api_refuses_to_cut_off_accounts_it_does_not_know(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files written without the database hold a gateway the API cannot see: provisioning
    is refused with 409 (naming it) instead of cutting it off, and nothing is created."""
    from sitewatch.programs.cli import main

    st = stack
    other = st.tmp / "other.yaml"
    other.write_text(
        (st.tmp / "accounts.yaml").read_text()
        + ("  - {role: gateway, site: S2, gateway: GW1, password_env: TEST_S2_PASSWORD}\n")
    )
    monkeypatch.setenv("TEST_S2_PASSWORD", "s2-password")
    assert (
        main(
            [
                "broker",
                "files",
                "--accounts",
                str(other),
                "--dir",
                str(st.auth),
                "--pid-file",
                str(st.tmp / "mosquitto.pid"),
            ]
        )
        == 0
    )
    async with Publisher(st.client("S2.GW1", "s2-password"), "sw/v1/S2/GW1/telemetry") as s2:
        await wait_for(lambda: s2.accepted, what="S2.GW1 publishing")
        r = await st.api.post("/sites/S1/gateways", json={"id": "GW4"}, headers=st.admin)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["detail"] == {"unknown_accounts": ["S2.GW1"]}
        r = await st.api.post("/sites/S1/gateways/GW1/mqtt/rotate", headers=st.admin)
        assert r.status_code == 409
        await s2.still_accepted()
        gateways = (await st.api.get("/sites/S1/gateways", headers=st.admin)).json()
        assert [g["id"] for g in gateways["items"]] == ["GW1"]
    async with st.client("S1.GW1", FILE_GW_PASSWORD):
        pass  # the refused rotation changed nothing


def test_import_keeps_the_database_as_the_source(tmp_path: Path) -> None:
    """Without a broker: the accounts file's gateway is imported once; after that its
    password in the file does not count, and a revoked gateway stays out of the files."""
    from sqlalchemy.orm import Session

    from sitewatch.core.db import make_engine
    from sitewatch.domains import registry
    from sitewatch.domains.brokeraccounts import brokercreds
    from sitewatch.domains.brokeraccounts.brokerauth import Account, Role, verify_password
    from sitewatch.domains.schema import create_tables

    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    create_tables(engine)

    def file_gateway(site: str, password: str) -> Account:
        return Account(f"{site}.GW1", hash_password(password), Role.GATEWAY, site, "GW1")

    with Session(engine) as s:
        registry.Registry(s).add_site(
            registry.SiteRow(
                id="S1",
                name="s",
                county="C",
                town="",
                project_type="road",
                latitude=0.0,
                longitude=0.0,
                planned_headcount=None,
                created_at=1,
            )
        )
        first = brokercreds.import_gateways(s, [file_gateway("S1", "one")], by="t")
        again = brokercreds.import_gateways(s, [file_gateway("S1", "two")], by="t")
        assert (first.added, again.added, again.kept) == (["S1.GW1"], [], ["S1.GW1"])
        [account] = brokercreds.gateway_accounts(s)
        assert verify_password("one", account.password_hash)
        with pytest.raises(
            brokercreds.CredentialError, match=r"S2\.GW1: site S2 is not in the database"
        ):
            brokercreds.import_gateways(s, [file_gateway("S2", "x")], by="t")
        assert brokercreds.revoke(s, "S1", "GW1", by="t")
        assert not brokercreds.revoke(s, "S1", "GW1", by="t")  # already
        brokercreds.import_gateways(s, [file_gateway("S1", "one")], by="t")
        assert brokercreds.gateway_accounts(s) == []
        assert brokercreds.gateway_usernames(s) == {"S1.GW1"}
        with pytest.raises(brokercreds.CredentialError, match="no gateway GW9 at site S1"):
            brokercreds.rotate(s, "S1", "GW9", by="t")
    engine.dispose()
