"""``/docs`` (Swagger UI) and ``/redoc``, with every script, style sheet and icon served by
the API itself from ``static/vendor/`` (pinned versions in its ``manifest.json``,
fetched by ``scripts/vendor-web-assets``): county intranets and many sites have no
internet, and FastAPI's defaults load them from a CDN. Swagger UI's online validator
badge (a call to validator.swagger.io) is switched off and ReDoc gets no Google fonts."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
STATIC_URL = "/static"
SWAGGER = f"{STATIC_URL}/vendor/swagger-ui"
REDOC = f"{STATIC_URL}/vendor/redoc"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
#: the pages may load from this API only: should a bundled script name an outside address
#: (ReDoc's footer logo did: the vendored copy is patched, see the manifest), the browser
#: refuses it before it asks, instead of hanging on a closed network
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "worker-src 'self' blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
    )
)


def install(app: FastAPI, *, title: str, openapi_url: str = "/openapi.json") -> None:
    """Serve ``/static`` and the two documentation pages (create the app with
    ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages are not registered)."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC), name="static")
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    def swagger_ui() -> HTMLResponse:
        return _own_assets_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{title} - Swagger UI",
                swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
                swagger_css_url=f"{SWAGGER}/swagger-ui.css",
                swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
                oauth2_redirect_url=OAUTH2_REDIRECT,
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @router.get(OAUTH2_REDIRECT)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc")
    def redoc() -> HTMLResponse:
        return _own_assets_only(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{title} - ReDoc",
                redoc_js_url=f"{REDOC}/redoc.standalone.js",
                redoc_favicon_url=f"{SWAGGER}/favicon-32x32.png",
                with_google_fonts=False,
            )
        )

    app.include_router(router)


def _own_assets_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page
