"""The alert service's calls to its store, each in a worker thread, tracked.

Cancelling the caller cannot stop the thread, whose transaction then commits whenever it
gets there: so every call is tracked, and the service does not stop before it has ended
(:meth:`StoreCalls.settle`). Otherwise a service started next on the same store could
read the open alerts before this one's last commit, and raise them a second time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

log = logging.getLogger("sitewatch.alerts")

#: at stop, how long to wait for store transactions still under way (they take
#: milliseconds; SQLite waits up to 10 s for a lock)
STORE_SETTLE_S = 30.0

P = ParamSpec("P")
T = TypeVar("T")


class StoreCalls:
    def __init__(self) -> None:
        #: store calls running in worker threads
        self._calls: set[asyncio.Task[Any]] = set()

    async def __call__(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store call in a worker thread, tracked until it has ended."""
        task = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
        self._calls.add(task)
        task.add_done_callback(self._done)
        return await asyncio.shield(task)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._calls.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: its caller may have been cancelled meanwhile

    async def settle(self) -> None:
        """Wait for the store calls still under way (at stop)."""
        calls = set(self._calls)
        if not calls:
            return
        log.info("alerts: stopping once %d store call(s) under way have ended", len(calls))
        _, pending = await asyncio.wait(calls, timeout=STORE_SETTLE_S)
        if pending:
            log.error(
                "alerts: %d store call(s) still under way after %.0fs; stopping without them",
                len(pending),
                STORE_SETTLE_S,
            )
