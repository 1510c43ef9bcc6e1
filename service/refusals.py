"""How every refusal is answered: `{"error": "..."}` with a 4xx status, from one place.

    Refusal(status, error)   the service's own: its status and its line
    RequestValidationError   a query or path parameter of the wrong type: 400
    404, 405                 no such route, no such method on it
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .config import Refusal


async def refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refusal)
    return JSONResponse({"error": exc.error}, status_code=exc.status, headers=exc.headers)


async def _bad_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
                         for e in exc.errors()[:3])
    return JSONResponse({"error": f"bad request: {problems}"[:500]}, status_code=400)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": f"not found: {request.url.path[:200]}"}, status_code=404)


async def _not_allowed(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": f"{request.method} is not allowed here"}, status_code=405)


def install_refusals(app: FastAPI) -> None:
    app.add_exception_handler(Refusal, refused)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(404, _not_found)
    app.add_exception_handler(405, _not_allowed)
