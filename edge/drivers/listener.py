"""Drivers whose devices connect to the gateway: one server per protocol, host and port,
shared by every device of that driver, started by the first and closed by the last."""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from collections import Counter
from typing import Any, ClassVar, Generic, Self, TypeVar

from edge.drivers.base import Driver, Sink

log = logging.getLogger("sitewatch.edge.listener")

D = TypeVar("D", bound="ListeningDriver")


class SharedListener(Generic[D]):
    """A TCP server for one protocol on one host and port; devices found by a key."""

    protocol: ClassVar[str]
    _shared: ClassVar[dict[tuple[type, str, int], Any]] = {}

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.devices: dict[str, D] = {}
        self.counters: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        # devices of one port start together: one of them binds, the others wait for it
        self._binding = asyncio.Lock()

    @classmethod
    def shared(cls, host: str, port: int) -> Self:
        listener: Self = cls._shared.setdefault((cls, host, port), cls(host, port))
        return listener

    async def attach(self, key: str, driver: D) -> None:
        if self.devices.get(key, driver) is not driver:
            raise ValueError(f"two {self.protocol} devices with {key!r} on port {self.port}")
        self.devices[key] = driver
        async with self._binding:
            if self._server is None:
                self._server = await asyncio.start_server(self._connection, self.host, self.port)
                log.info("%s listener on %s:%d", self.protocol, self.host, self.port)

    async def detach(self, key: str) -> None:
        self.devices.pop(key, None)
        if not self.devices and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            self._shared.pop((type(self), self.host, self.port), None)

    @abstractmethod
    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None: ...


class ListeningDriver(Driver):
    """A device that connects to its driver's shared listener instead of being polled."""

    listener: SharedListener[Any]
    _sink: Sink | None = None

    @property
    @abstractmethod
    def listener_key(self) -> str:
        """How the listener recognises this device (HJ 212 MN, HTTP path id)."""

    async def run(self, sink: Sink) -> None:
        self._sink = sink
        await self.listener.attach(self.listener_key, self)
        try:
            await asyncio.Event().wait()  # the listener does the work
        finally:
            await self.listener.detach(self.listener_key)
