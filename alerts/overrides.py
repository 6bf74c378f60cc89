"""Per-device rule overrides set through the API (the registry), after the config's.

Read at start, so a change there takes effect when the service restarts. Each one is
checked alone first, so that one the rules refuse is named in the log and left out
rather than stopping the service.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from sitewatch.core.settings import ConfigError
from sitewatch.domains.alertrecords.settings import AlertSettings
from sitewatch.domains.rulebook import Override, RuleBook

log = logging.getLogger("sitewatch.alerts")


def with_registry_overrides(db: Engine, book: RuleBook, settings: AlertSettings) -> RuleBook:
    """``book`` with the registry's device overrides added, or ``book`` itself if there
    are none (or no registry tables: an alert-only database)."""
    from sitewatch.domains.registry import Registry

    s = settings
    try:
        with Session(db) as session:
            found = Registry(session).device_overrides()
    except SQLAlchemyError as exc:  # no registry tables: an alert-only database
        log.info("alerts: no device overrides from the registry (%s)", type(exc).__name__)
        return book
    extra: list[Override] = []
    for dev, rule, o in found:
        try:
            candidate = Override(site=dev.site, device=dev.id, profile=dev.profile, rule=rule, **o)
            RuleBook(book.profiles, [candidate])  # checked alone, to name it
        except (ValidationError, ConfigError) as exc:
            log.error(
                "alerts: ignoring the registry's override of rule %s of device %s/%s: %s",
                rule,
                dev.site,
                dev.id,
                exc,
            )
            continue
        extra.append(candidate)
    if not extra:
        return book
    log.info("alerts: %d device rule override(s) from the registry", len(extra))
    return RuleBook(book.profiles, [*s.overrides, *extra], s.sites, s.default_utc_offset_h)
