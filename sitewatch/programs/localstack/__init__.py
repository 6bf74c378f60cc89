"""Real Mosquitto, InfluxDB and PostgreSQL as child processes with generated configs.

One implementation serves ``sitewatch demo``, the test suite's fixtures and the
benchmarks: each server gets a state folder and a free loopback port (or a port the
caller names, which must be free), and is stopped with its process group. One module per
server (``mosquitto.py``, ``influxdb.py``, ``postgres.py``); what they share: the ports
(``ports.py``) and the child process (``process.py``).
"""

from sitewatch.programs.localstack.influxdb import InfluxServer
from sitewatch.programs.localstack.mosquitto import MosquittoServer
from sitewatch.programs.localstack.ports import free_port
from sitewatch.programs.localstack.postgres import PostgresServer
from sitewatch.programs.localstack.process import PortInUseError, ServerError

__all__ = [
    "InfluxServer",
    "MosquittoServer",
    "PortInUseError",
    "PostgresServer",
    "ServerError",
    "free_port",
]
