"""The relational store: one SQLAlchemy metadata for every table (SQLite or PostgreSQL).

The tables themselves are defined by the modules that own them, which import
:class:`Base` from here; :mod:`sitewatch.domains.schema` knows them all. This module imports
none of them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Select, create_engine, event, func, select
from sqlalchemy.orm import DeclarativeBase, Session


class Base(DeclarativeBase):
    pass


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
