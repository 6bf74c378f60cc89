"""Graceful stop on SIGINT/SIGTERM for the long-running services."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from contextlib import suppress


def stop_on_signals(stop: Callable[[], None]) -> None:
    """Call ``stop`` (once per signal) on SIGINT or SIGTERM in the running event loop."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):  # not on every platform
            loop.add_signal_handler(sig, stop)
