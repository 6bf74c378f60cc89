"""After a gateway is provisioned: rewrite the broker's password and ACL files and have
Mosquitto re-read them."""

from __future__ import annotations

import logging
import os
import signal

from sqlalchemy.orm import Session

from sitewatch.api.config import BrokerFilesSettings
from sitewatch.brokerauth import Account, write_broker_files
from sitewatch.registry import Registry

log = logging.getLogger("sitewatch.api")


def accounts(settings: BrokerFilesSettings, session: Session) -> list[Account]:
    """The service accounts of the configuration, then every registered gateway's."""
    out = [Account(a.username, a.password_hash, a.role, a.site)  # type: ignore[arg-type]
           for a in settings.service_accounts]
    out += Registry(session).broker_accounts()
    return out


def sync(settings: BrokerFilesSettings, session: Session) -> bool:
    """Write the files if a folder is configured; True if they were written."""
    if settings.dir is None:
        return False
    files = write_broker_files(settings.dir, settings.topic_prefix,
                               accounts(settings, session))
    log.info("broker files written: %s, %s", files.password_file, files.acl_file)
    if settings.pid_file is not None:
        try:
            os.kill(int(settings.pid_file.read_text().strip()), signal.SIGHUP)
        except (OSError, ValueError) as exc:
            log.warning("could not signal the broker to reload (%s): %s", settings.pid_file,
                        exc)
    return True
