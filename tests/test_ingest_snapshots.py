"""Camera snapshots: the shared store (files and rows, on SQLite)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from sqlalchemy import Engine, event, insert, select
from sqlalchemy.orm import Session

from sitewatch.db import make_engine
from sitewatch.snapshots import (
    Refusal,
    SnapshotError,
    SnapshotRow,
    SnapshotStore,
    create_schema,
    store_snapshot,
)


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
        return [(r.site, r.sha256, r.media_type, r.size, r.source)
                for r in s.scalars(select(SnapshotRow).order_by(SnapshotRow.site))]


# -- the shared store, on SQLite -----------------------------------------------------
@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    create_schema(e)
    return e


def test_store_snapshot_is_one_file_and_one_row_per_site(engine: Engine, tmp_path: Path
                                                         ) -> None:
    files = SnapshotStore(tmp_path / "snaps")
    picture = jpeg(1)
    first = store_snapshot(files, engine, site="S1", source="gateway:GW1", data=picture,
                           expected_sha256=sha(picture))
    assert first.created and first.sha256 == sha(picture)
    assert (first.media_type, first.size, first.source) == ("image/jpeg", len(picture),
                                                            "gateway:GW1")
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
    assert rows(engine) == [("S1", sha(picture), "image/jpeg", len(picture), "gateway:GW1"),
                            ("S2", sha(picture), "image/jpeg", len(picture), "user:officer")]


@pytest.mark.parametrize(("data", "expected", "code"), [
    (b"", None, Refusal.EMPTY),
    (jpeg(2, 64), None, Refusal.TOO_LARGE),
    (b"GIF89a" + bytes(100), None, Refusal.UNSUPPORTED_MEDIA_TYPE),
    (jpeg(3), sha(jpeg(4)), Refusal.HASH_MISMATCH),
    (jpeg(3), sha(jpeg(3)).upper(), Refusal.HASH_MISMATCH),
])
def test_store_snapshot_refuses_and_keeps_nothing(engine: Engine, tmp_path: Path, data: bytes,
                                                  expected: str | None, code: Refusal) -> None:
    with pytest.raises(SnapshotError) as refused:
        store_snapshot(SnapshotStore(tmp_path / "snaps"), engine, site="S1", source="x",
                       data=data, expected_sha256=expected, max_bytes=2048)
    assert refused.value.code is code
    assert files_in(tmp_path / "snaps") == []
    assert rows(engine) == []


def test_store_snapshot_another_writer_first_keeps_its_row(engine: Engine, tmp_path: Path
                                                           ) -> None:
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
                c.execute(insert(SnapshotRow).values(
                    site="S1", sha256=sha(picture), media_type="image/jpeg",
                    size=len(picture), source="user:first", created_at=1))

    stored = store_snapshot(SnapshotStore(tmp_path / "snaps"), engine, site="S1",
                            source="gateway:GW1", data=picture)
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
        created.append(store_snapshot(files, engine, site="S1", source=f"user:u{n}",
                                      data=picture).created)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(created) == [False] * 7 + [True]
    assert len(rows(engine)) == 1 and len(files_in(tmp_path / "snaps")) == 1
