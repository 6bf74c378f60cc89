"""Camera snapshots: the shared store (files and rows, on SQLite), and ingest taking them
from the snapshot topic of real Mosquitto, published by a client we did not write."""

from __future__ import annotations

import hashlib
import subprocess
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from conftest import RunningIngest, wait_for
from sqlalchemy import Engine, event, insert, select
from sqlalchemy.orm import Session

from api.config import ApiSettings
from api.main import create_app
from ingest.config import IngestSettings
from ingest.service import Ingest
from sitewatch.core.db import make_engine
from sitewatch.core.influx import InfluxSettings
from sitewatch.core.topics import snapshot_topic
from sitewatch.domains.accounts import add_api_key
from sitewatch.domains.deadletters import DeadLetterStore
from sitewatch.domains.registry import SiteRow
from sitewatch.domains.snapshots import (
    Refusal,
    SnapshotError,
    SnapshotRow,
    SnapshotStore,
    create_schema,
    store_snapshot,
)
from sitewatch.programs.localstack import InfluxServer, MosquittoServer


def jpeg(seed: int, size: int = 32) -> bytes:
    """A camera-like picture: noise, so that a larger one does not compress away."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return encoded.tobytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def rows(engine: Engine) -> list[tuple[str, str, str, int, str]]:
    with Session(engine) as s:
        return [
            (r.site, r.sha256, r.media_type, r.size, r.source)
            for r in s.scalars(select(SnapshotRow).order_by(SnapshotRow.site))
        ]


# -- the shared store, on SQLite -----------------------------------------------------
@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    create_schema(e)
    return e


def test_store_snapshot_is_one_file_and_one_row_per_site(engine: Engine, tmp_path: Path) -> None:
    files = SnapshotStore(tmp_path / "snaps")
    picture = jpeg(1)
    first = store_snapshot(
        files, engine, site="S1", source="gateway:GW1", data=picture, expected_sha256=sha(picture)
    )
    assert first.created and first.sha256 == sha(picture)
    assert (first.media_type, first.size, first.source) == (
        "image/jpeg",
        len(picture),
        "gateway:GW1",
    )
    path = tmp_path / "snaps" / sha(picture)[:2] / f"{sha(picture)}.jpg"
    assert files_in(tmp_path / "snaps") == [path] and path.read_bytes() == picture
    # the same picture again, from another source: not an error, the first row stays
    again = store_snapshot(files, engine, site="S1", source="user:officer", data=picture)
    assert not again.created and again.source == "gateway:GW1"
    assert again.created_at == first.created_at
    # another site: its own row, the same file
    other = store_snapshot(files, engine, site="S2", source="user:officer", data=picture)
    assert other.created
    assert files_in(tmp_path / "snaps") == [path]
    assert rows(engine) == [
        ("S1", sha(picture), "image/jpeg", len(picture), "gateway:GW1"),
        ("S2", sha(picture), "image/jpeg", len(picture), "user:officer"),
    ]


@pytest.mark.parametrize(
    ("data", "expected", "code"),
    [
        (b"", None, Refusal.EMPTY),
        (jpeg(2, 64), None, Refusal.TOO_LARGE),
        (b"GIF89a" + bytes(100), None, Refusal.UNSUPPORTED_MEDIA_TYPE),
        (jpeg(3), sha(jpeg(4)), Refusal.HASH_MISMATCH),
        (jpeg(3), sha(jpeg(3)).upper(), Refusal.HASH_MISMATCH),
    ],
)
def test_store_snapshot_refuses_and_keeps_nothing(
    engine: Engine, tmp_path: Path, data: bytes, expected: str | None, code: Refusal
) -> None:
    with pytest.raises(SnapshotError) as refused:
        store_snapshot(
            SnapshotStore(tmp_path / "snaps"),
            engine,
            site="S1",
            source="x",
            data=data,
            expected_sha256=expected,
            max_bytes=2048,
        )
    assert refused.value.code is code
    assert files_in(tmp_path / "snaps") == []
    assert rows(engine) == []


def test_store_snapshot_another_writer_first_keeps_its_row(engine: Engine, tmp_path: Path) -> None:
    """The row appears between our look and our insert (the API's upload and ingest at
    once): the insert fails on the key, and the other writer's row is the answer."""
    picture = jpeg(5)
    other_writer = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    raced: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def insert_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO snapshots") and not raced:
            raced.append(statement)
            with other_writer.begin() as c:
                c.execute(
                    insert(SnapshotRow).values(
                        site="S1",
                        sha256=sha(picture),
                        media_type="image/jpeg",
                        size=len(picture),
                        source="user:first",
                        created_at=1,
                    )
                )

    stored = store_snapshot(
        SnapshotStore(tmp_path / "snaps"), engine, site="S1", source="gateway:GW1", data=picture
    )
    assert raced
    assert not stored.created and (stored.source, stored.created_at) == ("user:first", 1)
    assert rows(engine) == [("S1", sha(picture), "image/jpeg", len(picture), "user:first")]
    other_writer.dispose()


def test_store_snapshot_from_threads_at_once(engine: Engine, tmp_path: Path) -> None:
    files, picture = SnapshotStore(tmp_path / "snaps"), jpeg(6)
    start = threading.Barrier(8)
    created: list[bool] = []

    def upload(n: int) -> None:
        start.wait()
        created.append(
            store_snapshot(files, engine, site="S1", source=f"user:u{n}", data=picture).created
        )

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(created) == [False] * 7 + [True]
    assert len(rows(engine)) == 1 and len(files_in(tmp_path / "snaps")) == 1


# -- ingest, against real Mosquitto and InfluxDB -------------------------------------
def test_ingest_snapshot_settings_default_to_the_apis() -> None:
    ingest, api = IngestSettings(), ApiSettings(environment="development")
    assert ingest.snapshots_dir == api.snapshots_dir
    assert ingest.max_snapshot_bytes == api.max_snapshot_bytes == 8 * 1024 * 1024
    with pytest.raises(ValueError, match="snapshot_dir"):
        IngestSettings(snapshot_dir="typo")  # type: ignore[call-arg]


def mosquitto_pub(server: MosquittoServer, topic: str, payload: bytes) -> None:
    body = ["-n"] if not payload else ["-s"]  # -n: a zero-length message
    subprocess.run(
        ["mosquitto_pub", "-h", server.host, "-p", str(server.port), "-q", "1", "-t", topic, *body],
        input=payload,
        check=True,
        timeout=10,
    )


def sample(ingest: Ingest, name: str, **labels: str) -> float | None:
    return ingest.registry.get_sample_value(name, labels)


@pytest.mark.integration
async def test_snapshot_is_stored_under_its_hash_and_served_by_the_api(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    influxdb: InfluxServer,
    prefix: str,
    unique: str,
    tmp_path: Path,
) -> None:
    snaps = tmp_path / "snapshots"
    running = await start_ingest(snapshots_dir=snaps)
    service = running.service
    assert service is not None
    picture = jpeg(10, 48)
    topic = snapshot_topic(prefix, "S1", "GW7", sha(picture))
    mosquitto_pub(mosquitto, topic, picture)
    await wait_for(lambda: service.stats.snapshots_stored == 1, what="snapshot stored")
    path = snaps / sha(picture)[:2] / f"{sha(picture)}.jpg"
    assert files_in(snaps) == [path] and path.read_bytes() == picture
    engine = make_engine(running.settings.database_url)
    assert rows(engine) == [("S1", sha(picture), "image/jpeg", len(picture), "gateway:GW7")]
    # the same bytes again (a gateway resending): one file, one row, nothing refused
    mosquitto_pub(mosquitto, topic, picture)
    await wait_for(lambda: service.stats.snapshots_resent == 1, what="resend taken")
    assert files_in(snaps) == [path] and len(rows(engine)) == 1
    assert service.stats.items_rejected == 0
    assert sample(service, "sitewatch_ingest_snapshots_total", outcome="stored") == 1
    assert sample(service, "sitewatch_ingest_snapshots_total", outcome="resent") == 1
    engine.dispose()

    # the API, on the same folder and database, serves it to whoever may see site S1
    # (ingest kept it before S1 was registered: it keeps a snapshot whatever its site;
    # the API answers for registered sites only)
    app = create_app(
        ApiSettings(
            environment="development",
            influx=InfluxSettings(url=influxdb.url, database=unique),
            database_url=running.settings.database_url,
            snapshots_dir=snaps,
        )
    )
    async with app.router.lifespan_context(app):
        with app.state.sitewatch.sessions() as s:
            _, key = add_api_key(s, "test", "viewer")
            s.add(
                SiteRow(
                    id="S1",
                    name="Site S1",
                    county="C",
                    town="T",
                    project_type="building",
                    latitude=34.8,
                    longitude=114.8,
                    created_at=0,
                )
            )
            s.commit()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"X-API-Key": key},
        ) as api:
            r = await api.get(f"/sites/S1/snapshots/{sha(picture)}")
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
            assert r.content == picture
            assert (await api.get(f"/sites/S2/snapshots/{sha(picture)}")).status_code == 404


@pytest.mark.integration
async def test_bad_snapshots_are_dead_lettered_counted_and_acknowledged(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    tmp_path: Path,
) -> None:
    snaps = tmp_path / "snapshots"
    limit = 64 * 1024
    running = await start_ingest(snapshots_dir=snaps, max_snapshot_bytes=limit)
    service = running.service
    assert service is not None
    big = jpeg(11, 400)
    assert len(big) > limit
    gif = b"GIF89a" + bytes(200)
    other = jpeg(12)
    bad: list[tuple[str, str, bytes]] = [
        ("snapshot_hash_mismatch", snapshot_topic(prefix, "S1", "GW1", sha(jpeg(13))), other),
        ("unsupported_media_type", snapshot_topic(prefix, "S1", "GW1", sha(gif)), gif),
        ("empty_snapshot", snapshot_topic(prefix, "S1", "GW1", sha(b"")), b""),
        ("too_large", snapshot_topic(prefix, "S1", "GW1", sha(big)), big),
        ("bad_topic", f"{prefix}/S1/GW1/snapshot/{sha(other).upper()}", other),
    ]
    for _, topic, payload in bad:
        mosquitto_pub(mosquitto, topic, payload)
    good = jpeg(14)
    mosquitto_pub(mosquitto, snapshot_topic(prefix, "S1", "GW1", sha(good)), good)

    # ingest goes on: the good snapshot after them is stored, and every bad one is kept
    # with its reason and counted
    await wait_for(lambda: service.stats.snapshots_stored == 1, what="good snapshot stored")
    await wait_for(
        lambda: service.stats.items_rejected == len(bad),
        what=lambda: f"rejections counted: {service.stats.rejected}",
    )
    assert files_in(snaps) == [snaps / sha(good)[:2] / f"{sha(good)}.jpg"]
    store = DeadLetterStore(running.settings.database_url)
    kept = {r.topic: r for r in store.recent(100)}
    assert len(kept) == len(bad)
    for reason, topic, payload in bad:
        row = kept[topic]
        assert (row.reason, row.site, row.gateway, row.batch) == (reason, "S1", "GW1", None)
        assert row.detail and row.payload == payload[: 64 * 1024]
        assert service.stats.rejected[reason] == 1
        assert sample(service, "sitewatch_ingest_dead_letters_total", reason=reason) == 1
    assert len(kept[bad[3][1]].payload) == 64 * 1024  # the too-large one, cut
    assert "not " + sha(jpeg(13)) in kept[bad[0][1]].detail

    # all of them were PUBACKed: ingest back on the same persistent session gets none
    # of them again, only what is published now
    await running.stop()
    again = await start_ingest(snapshots_dir=snaps, max_snapshot_bytes=limit)
    assert again.settings.client_id == running.settings.client_id
    later = again.service
    assert later is not None
    newer = jpeg(15)
    mosquitto_pub(mosquitto, snapshot_topic(prefix, "S1", "GW1", sha(newer)), newer)
    await wait_for(lambda: later.stats.snapshots_stored == 1, what="newer snapshot stored")
    assert later.stats.messages == 1 and later.stats.snapshots_resent == 0
    assert not later.stats.rejected
    assert sum(store.counts_by_reason().values()) == len(bad)
    store.dispose()
