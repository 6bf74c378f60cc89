"""Every route under /sites/{site}, taken from the app's own route table (so a route added
later is checked too), answers 404 for a site that does not exist and for one the caller
may not see, alike; on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from test_api_access import Api, api, api_factory  # noqa: F401 (the fixtures)

from api.siteaccess import site_access

pytestmark = pytest.mark.integration

#: a valid value for each path parameter other than the site
SAMPLES = {"device": "TC01", "worker": "W001", "gateway": "GW1", "sha256": "0" * 64}


def per_site_routes(app: Any) -> list[Any]:
    """The app's routes under /sites/{site}, as served (included routers' routes with
    the dependencies and prefix they are served with)."""
    return [
        r
        for r in iter_route_contexts(app.routes)
        if isinstance(r.original_route, APIRoute) and (r.path or "").startswith("/sites/{site}")
    ]


def _uses(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return dependant.call is call or any(_uses(d, call) for d in dependant.dependencies)


def _requests(route: Any, site: str) -> list[tuple[str, str]]:
    path = route.path.replace("{site}", site)
    for name, value in SAMPLES.items():
        path = path.replace(f"{{{name}}}", value)
    assert "{" not in path, f"{route.path}: add a sample value for its path parameter"
    return [(method, path) for method in sorted(route.methods)]


async def test_every_per_site_route_resolves_its_site_through_one_dependency(api: Api) -> None:  # noqa: F811
    routes = per_site_routes(api.app)
    paths = {r.path for r in routes}
    assert {
        "/sites/{site}/latest",
        "/sites/{site}/camera-events",
        "/sites/{site}",
        "/sites/{site}/attendance/sheets",
    } <= paths and len(routes) >= 20
    forgot = [
        f"{sorted(r.methods)} {r.path}" for r in routes if not _uses(r.dependant, site_access)
    ]
    assert not forgot, f"per-site routes without the site_access dependency: {forgot}"


async def test_a_site_that_does_not_exist_is_404_on_every_per_site_route(api: Api) -> None:  # noqa: F811
    admin = await api.as_user("admin")  # every scope: nothing else stands in the way
    answers = {}
    for route in per_site_routes(api.app):
        for method, path in _requests(route, "NOPE"):
            r = await api.client.request(method, path, headers=admin)
            answers[f"{method} {path}"] = (r.status_code, r.json()["error"]["code"])
    assert answers and set(answers.values()) == {(404, "not_found")}, answers


async def test_a_site_the_caller_may_not_see_is_404_as_if_it_did_not_exist(api: Api) -> None:  # noqa: F811
    viewer = await api.as_user("viewer-b")  # may see S-B only, scope read only
    answers = {}
    for route in per_site_routes(api.app):
        scopes = _site_scopes(route.dependant)
        for method, path in _requests(route, "S-A"):
            r = await api.client.request(method, path, headers=viewer)
            if scopes != ["read"]:  # a scope the viewer lacks: that 403 comes first
                assert r.status_code == 403, (path, r.text)
                continue
            answers[f"{method} {path}"] = (r.status_code, r.json()["error"]["message"])
    assert answers and set(answers.values()) == {(404, "no site S-A")}, answers


def _site_scopes(dependant: Dependant) -> list[str] | None:
    """The scopes a route's site_access asks for."""
    if dependant.call is site_access:
        return sorted({*(dependant.parent_oauth_scopes or []), *(dependant.own_oauth_scopes or [])})
    return next((s for d in dependant.dependencies if (s := _site_scopes(d)) is not None), None)
