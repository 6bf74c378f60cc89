"""Real-name attendance of a site: its worker registry, its gate-event ledger, and what
is derived from them (who is on site, headcount, hours, day-labour sheets).

Every route is under ``/sites/{site}`` and takes its site through
:mod:`api.siteaccess` (404 for a site that does not exist or the caller may not
see). Read with ``read``; the registry and the site's attendance policy are changed with
``workers:write`` (site officers of the site, admins). ID-card
numbers come in (a PUT, an import) and are hashed with ``attendance.id_hash_key`` at
once; no answer carries one, nor its hash: only the masked form. Figures come from
``sitewatch.domains.attendance.reports``, the same code as ``sitewatch attendance``.

The slice is one router made of its route groups, mounted in this order (the order of
the OpenAPI page): :mod:`.workers` (the registry and its import), :mod:`.policy` (the
site's attendance policy), :mod:`.ledger` (gate events and what is derived from them;
the sheets' answers in :mod:`.sheets`). :mod:`.params` holds what they share.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.attendance import ledger, policy, workers

router = APIRouter()
router.include_router(workers.router)
router.include_router(policy.router)
router.include_router(ledger.router)
