"""The app: the routers (service/routes/, one per resource), the guard every request passes, and the
one place refusals are answered (service/refusals.py). Every refusal answers `{"error": "..."}` (one
line naming the field and the fix) and stores nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from .auth import host_allowed
from .backend import RunBackend
from .config import ServiceConfig
from .context import ServiceContext
from .health import GPU
from .library import remove_stale_staging
from .refusals import install_refusals
from .routes import ROUTERS

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def create_app(config: ServiceConfig, runs: RunBackend) -> FastAPI:
    app = FastAPI(title="Audiobook service", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.state.context = ServiceContext(config, runs)
    GPU.start()
    remove_stale_staging(config.manifests_dir)

    @app.middleware("http")
    async def _guard(request: Request, call_next: Any) -> Response:
        """The Host allow-list (DNS rebinding), then the page's security headers on every answer."""
        if not host_allowed(request, config):
            host = request.headers.get("host", "")[:80]
            response: Response = JSONResponse(
                {"error": f"Host {host!r} is not a name this service answers to: open it as 127.0.0.1 or "
                          "localhost, or list the name in AUDIOBOOK_ALLOWED_HOSTS"}, status_code=400)
        else:
            response = await call_next(request)
        for header, value in SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        return response

    install_refusals(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
