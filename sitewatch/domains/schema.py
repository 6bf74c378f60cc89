"""Every table of the relational store, in one place: the modules that define the tables
register them with :data:`sitewatch.core.db.Base.metadata` when imported; this module
imports them all, so that :func:`create_tables` makes every one whatever the caller
happened to import. (It sits apart from :mod:`sitewatch.core.db`, which the table modules
import: the two would otherwise import each other.)"""

from __future__ import annotations

from sqlalchemy import Engine

from sitewatch.core.db import Base
from sitewatch.domains import accounts, registry, snapshots
from sitewatch.domains import deadletters as deadletter
from sitewatch.domains.alertrecords import store
from sitewatch.domains.attendance import ledger, sitepolicy, workers
from sitewatch.domains.brokeraccounts import brokercreds

#: the modules that define the store's tables
TABLE_MODULES = (
    accounts,
    brokercreds,
    registry,
    snapshots,
    ledger,
    sitepolicy,
    workers,
    deadletter,
    store,
)


def create_tables(engine: Engine) -> None:
    """Create every table of the store that does not exist yet."""
    Base.metadata.create_all(engine)
