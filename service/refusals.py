"""How every refusal is answered: `{"error": "..."}` with a 4xx status, from one place.

    Refusal(status, error)   the service's own: its status and its line
    UserError                the pipeline's (a manifest, a source, a voice the user can fix): 422
    RequestValidationError   a query or path parameter of the wrong type: 400
    404, 405                 no such route, no such method on it

A UserError names the file it is about by its path on this server. A route that checks files in a
folder the client never sees (an upload's staging folder) names that folder as the client knows it
with `name_paths`, and the refusal says `manifests/<name>/book.epub` instead.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tasks.errors import UserError

from .config import Refusal

USER_ERROR_STATUS = 422  # the request was understood, and what it holds is wrong: the message says how


def name_paths(request: Request, names: dict[str, str]) -> None:
    """From here on, this request's refusals write each server path (text in the message, in this
    order) as the name the client knows it by."""
    request.state.path_names = dict(names)


def folder_prefix(folder: Path) -> str:
    """A folder's absolute path as it begins the paths of the files in it (with the separator)."""
    return f"{folder.absolute()}/"


def _public_text(request: Request, text: str) -> str:
    for path, name in getattr(request.state, "path_names", {}).items():
        text = text.replace(path, name)
    return text


def refusal_of(request: Request, exc: Exception) -> Refusal:
    if isinstance(exc, Refusal):
        return exc
    if isinstance(exc, UserError):
        return Refusal(USER_ERROR_STATUS, _public_text(request, str(exc)))
    raise TypeError(f"not a refusal: {type(exc).__name__}")  # only registered for the two above


async def refused(request: Request, exc: Exception) -> JSONResponse:
    refusal = refusal_of(request, exc)
    return JSONResponse({"error": refusal.error}, status_code=refusal.status, headers=refusal.headers)


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
    app.add_exception_handler(UserError, refused)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(404, _not_found)
    app.add_exception_handler(405, _not_allowed)
