"""The one way a route under ``/sites/{site}`` gets its site.

Every per-site route takes its site as one of the ``…Site`` dependencies below instead
of a bare path parameter: the caller is authenticated and holds the scope, then the site
must exist and be one the caller may see, or the answer is 404, the same either way
(whether a site exists is not for those who may not see it to learn). A route that took
``{site}`` without it would answer for sites that do not exist; the test of the route
table (tests/test_api_sites.py) refuses such a route.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Security

from api.auth import authorized
from api.deps import SiteId, StateDep
from api.errors import NotFound
from sitewatch.domains.accounts import Principal, Scope
from sitewatch.domains.registry import Registry, SiteRow


@dataclass(frozen=True, slots=True)
class SiteAccess:
    """A site that exists, and the caller who may see it."""

    row: SiteRow
    principal: Principal

    @property
    def id(self) -> str:
        return self.row.id


def site_access(
    site: SiteId, p: Annotated[Principal, Depends(authorized)], state: StateDep
) -> SiteAccess:
    # a plain function (FastAPI runs it in a worker thread) with a session of its own,
    # closed before the handler runs, as current_principal does
    if p.may_see(site):
        with state.sessions() as session:
            row = Registry(session).site(site)
        if row is not None:
            return SiteAccess(row, p)
    raise NotFound(f"no site {site}")


#: the scopes are the route's: authorized (inside site_access) checks them first
ReadSite = Annotated[SiteAccess, Security(site_access, scopes=[Scope.READ])]
AdminSite = Annotated[SiteAccess, Security(site_access, scopes=[Scope.ADMIN])]
WorkersSite = Annotated[SiteAccess, Security(site_access, scopes=[Scope.WORKERS_WRITE])]
SnapshotsSite = Annotated[SiteAccess, Security(site_access, scopes=[Scope.SNAPSHOTS_WRITE])]
