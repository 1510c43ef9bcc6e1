"""The books: list them, one book's state, its manifest, cover and files; render one again.

    GET  /books, /books/{name}               status, progress, files, report summary
    GET  /books/{name}/manifest              the stored manifest (to edit and resubmit)
    GET  /books/{name}/cover                 the cover image
    GET  /books/{name}/download/{file}       the M4B, EPUB, an MP3, its captions, report.json
    POST /books/{name}/retry                 render the book again from its stored manifest (202)
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from .. import library
from ..auth import require_auth
from ..config import Refusal, ServiceConfig, check_name
from ..context import Context

router = APIRouter()


@router.post("/books/{name}/retry")
def retry(request: Request, name: str, context: Context) -> JSONResponse:
    config = context.config
    require_auth(request, config)
    name = check_name(name)
    manifest = library.manifest_path(config, name)
    if manifest is None:
        raise Refusal(404, f"no manifest for {name!r}: submit the book again")
    with context.submit_lock:
        state = context.statuses([name])[name]["status"]
        if state in ("queued", "running"):
            raise Refusal(409, f"the book {name!r} is {state}: wait for it to finish")
        try:
            info = context.runs.start(name, manifest.absolute())
        except Exception as exc:
            raise Refusal(503, f"could not start the render: {type(exc).__name__}: {exc}"[:500]) from None
    return JSONResponse({"name": name, "run_id": info.run_id, "ui_url": info.ui_url, "status": "queued",
                         "status_url": f"/books/{urllib.parse.quote(name)}"}, status_code=202)


@router.get("/books")
def books(context: Context) -> list[dict[str, Any]]:
    return context.all_books()


@router.get("/books/{name}")
def book(name: str, context: Context) -> dict[str, Any]:
    return context.one_book(name)


@router.get("/books/{name}/manifest")
def book_manifest(request: Request, name: str, context: Context) -> Response:
    require_auth(request, context.config)
    path = library.manifest_path(context.config, check_name(name))
    if path is None:
        raise Refusal(404, f"no manifest for {name!r}")
    return FileResponse(path, media_type="application/yaml", filename=path.name)


def require_download(request: Request, config: ServiceConfig) -> None:
    if not config.public_downloads:
        require_auth(request, config)


@router.get("/books/{name}/cover")
def cover(request: Request, name: str, context: Context) -> Response:
    require_download(request, context.config)
    path = library.cover_file(context.config, check_name(name))
    if path is None:
        raise Refusal(404, f"no cover for {name!r}")
    return FileResponse(path, media_type=library.IMAGE_TYPES[path.suffix.lower()])


@router.get("/books/{name}/download/{file:path}")
def download(request: Request, name: str, file: str, context: Context) -> Response:
    config = context.config
    require_download(request, config)
    name = check_name(name)
    parts = file.split("/")
    if (not file or file.startswith("/") or "\\" in file or "\x00" in file
            or any(p in ("", ".", "..") or p.startswith(".") for p in parts)):
        raise Refusal(400, f"bad file path {file[:80]!r}")
    suffix = Path(file).suffix.lower()
    if suffix not in library.MEDIA_TYPES or (suffix == ".json" and file != "report.json"):
        raise Refusal(404, f"no such file: {file[:80]!r} (downloads are the .m4b, .epub, .mp3, .vtt and .srt files "
                           "and report.json)")
    out_root = config.output_dir.resolve()
    folder = library.book_dir(config, name)
    try:
        real = (folder / file).resolve(strict=True)
    except (OSError, RuntimeError):
        raise Refusal(404, f"no such file: {name}/{file[:80]}") from None
    if not folder.resolve().is_relative_to(out_root) or not real.is_relative_to(folder.resolve()) \
            or not real.is_file():
        raise Refusal(404, f"no such file: {name}/{file[:80]}")
    return FileResponse(real, media_type=library.MEDIA_TYPES[suffix], filename=Path(file).name)
