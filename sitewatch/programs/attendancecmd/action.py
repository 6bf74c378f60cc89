"""What every ``sitewatch attendance`` action shares: a session on the store of
``--database-url`` (its tables made if missing), the one way an action fails (a line on
standard error naming it, and an exit code), and the clock. Standard library only at the
top, as the whole command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@contextmanager
def open_session(args: argparse.Namespace) -> Iterator[Session]:
    from sqlalchemy.orm import Session

    from sitewatch.core.db import make_engine
    from sitewatch.domains.schema import create_tables

    engine = make_engine(args.database_url)
    try:
        create_tables(engine)
        with Session(engine) as s:
            yield s
    finally:
        engine.dispose()


def fail(args: argparse.Namespace, message: str, code: int = 1) -> int:
    print(f"sitewatch attendance {args.action}: {message}", file=sys.stderr)
    return code


def now_ms() -> int:
    import time

    return int(time.time() * 1000)
