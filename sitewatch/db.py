"""The relational store: one SQLAlchemy metadata for every table (SQLite or PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Select, create_engine, event, func, select
from sqlalchemy.orm import DeclarativeBase, Session


class Base(DeclarativeBase):
    pass


def create_tables(engine: Engine) -> None:
    """Every table of the store, whatever the caller happened to import: the modules
    that define them register them with ``Base.metadata`` when imported, here."""
    from sitewatch import accounts, brokercreds, registry, snapshots  # noqa: F401
    from sitewatch.attendance import ledger, sitepolicy, workers  # noqa: F401
    from sitewatch.ingest import deadletter  # noqa: F401
    from sitewatch.ingest.alerts import store  # noqa: F401

    Base.metadata.create_all(engine)


def count_rows(session: Session, query: Select[Any]) -> int:
    """How many rows ``query`` matches (for a page's ``total``)."""
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def make_engine(url: str) -> Engine:
    """An engine with SQLite made durable and concurrent-safe (WAL, FULL sync, busy wait)."""
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

    return engine
