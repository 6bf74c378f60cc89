"""Back up and restore everything a SiteWatch installation keeps (docs/backup.md).

One archive (a plain ``.tar``) holds the readings of InfluxDB (``influxdump``), every
table of the SQL store (``sqldump``), the snapshot folder and the operator's files
(``files``), each member with its SHA-256 in ``manifest.json`` (``archive``).
``run`` puts them together for ``sitewatch backup create|restore|verify`` (``cli``).
"""

from __future__ import annotations


class BackupError(Exception):
    """A backup that cannot be made, checked or restored; the message says what to do."""
