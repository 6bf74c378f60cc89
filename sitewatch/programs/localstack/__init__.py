"""Real Mosquitto and InfluxDB as child processes with generated configs.

One implementation serves ``sitewatch demo``, the test suite's fixtures and the
benchmarks: each server gets a state folder and a free loopback port (or a port the
caller names, which must be free), and is stopped with its process group.
"""

from sitewatch.programs.localstack.servers import (
    InfluxServer,
    MosquittoServer,
    PortInUseError,
    PostgresServer,
    ServerError,
    free_port,
)

__all__ = [
    "InfluxServer",
    "MosquittoServer",
    "PortInUseError",
    "PostgresServer",
    "ServerError",
    "free_port",
]
