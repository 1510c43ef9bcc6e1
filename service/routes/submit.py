"""Sending books in. Each is checked whole before anything is stored, then queued.

    POST /books                one book in one multipart request (202): see service.uploads
    POST /manifests?name=NAME  a manifest alone, as a YAML body or a multipart `manifest` field (201)
    POST /inspect              a document's own metadata (title, authors, language, cover?)

A POST /books upload is laid out in a staging folder in manifests/, checked as `audiobook check`
checks a book, and moved into place under the submission lock only when valid; if the render cannot
start, everything is put back as it was.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from tasks import paths
from tasks.manifest import Manifest, parse_yaml, validate_manifest

from .. import library
from ..auth import require_auth
from ..config import Refusal, check_name
from ..context import Context, ServiceContext
from ..filetypes import DOCUMENT_KINDS
from ..library import STAGING_PREFIX
from ..refusals import folder_prefix, name_paths
from ..uploads import StagedBook, document_metadata, read_form, stage_book

YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"}
router = APIRouter()


# -- POST /manifests ----------------------------------------------------------------------------------

async def read_body(request: Request, limit: int) -> bytes:
    too_big = f"the upload is over the {limit} byte limit"
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise Refusal(400, "bad Content-Length header")
        if int(length) > limit:
            raise Refusal(413, too_big)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refusal(413, too_big)
    return bytes(body)


async def manifest_from_multipart(request: Request, body: bytes) -> tuple[bytes, str | None]:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=20, max_part_size=len(body) + 1)
    except Exception as exc:  # malformed multipart: starlette raises MultiPartException / HTTPException
        raise Refusal(400, f"malformed multipart upload: {getattr(exc, 'detail', None) or exc}") from None
    try:
        upload = form.get("manifest")
        if isinstance(upload, UploadFile):
            data, filename = await upload.read(), upload.filename
        elif isinstance(upload, str):  # a plain form field holding the YAML: the name comes from ?name=
            data, filename = upload.encode("utf-8"), None
        else:
            raise Refusal(400, "put the manifest in a multipart file field named 'manifest'")
    finally:
        await form.close()
    if filename is not None and ("/" in filename or "\\" in filename or "\x00" in filename):
        raise Refusal(400, f"bad file name {filename[:80]!r}: give a plain name such as book.yaml")
    return data, filename


@router.post("/manifests")
async def submit(request: Request, context: Context, name: str | None = None,
                 overwrite: bool = False) -> JSONResponse:
    config = context.config
    require_auth(request, config)
    if name is not None:
        name = check_name(name)
        if not overwrite and library.book_exists(config, name):
            raise Refusal(409, f"the book {name!r} exists; add ?overwrite=true to replace its manifest")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in YAML_TYPES and ctype != "multipart/form-data":
        raise Refusal(415, f"unsupported content type {ctype[:80] or '(none)'!r}: send the YAML as "
                           "application/yaml (or text/plain), or a multipart/form-data field 'manifest'")
    body = await read_body(request, config.max_upload_bytes)
    if ctype == "multipart/form-data":
        body, filename = await manifest_from_multipart(request, body)
        if name is None:
            if not filename:
                raise Refusal(400, "give ?name=NAME or a file name for the 'manifest' field")
            name = check_name(filename)
    if name is None:
        raise Refusal(400, "give the book's name: POST /manifests?name=NAME")
    target = config.manifests_dir.absolute() / f"{name}.yaml"
    manifest = validate_manifest(parse_yaml(body, target), target)
    from tasks.source import check_sources_exist

    check_sources_exist(manifest)
    return await run_in_threadpool(store_manifest, context, name, target, body, manifest, overwrite)


def store_manifest(context: ServiceContext, name: str, target: Path, body: bytes, manifest: Manifest,
                   overwrite: bool) -> JSONResponse:
    with context.submit_lock:
        if not overwrite and library.book_exists(context.config, name):
            raise Refusal(409, f"the book {name!r} exists; add ?overwrite=true to replace its manifest")
        existed = target.exists()
        try:
            library.write_new(target, body, overwrite=overwrite)
        except FileExistsError:
            raise Refusal(409, f"the book {name!r} exists; add ?overwrite=true to replace it") from None
        except OSError as exc:
            raise Refusal(507, f"cannot store the manifest: {exc.strerror}") from None
        try:
            info = context.runs.start(name, target)
        except Exception as exc:
            if not existed:
                target.unlink(missing_ok=True)
            raise Refusal(503, f"could not start the render: {type(exc).__name__}: {exc}"[:500]) from None
    return JSONResponse(
        {
            "name": name, "run_id": info.run_id, "ui_url": info.ui_url,
            "status_url": f"/books/{urllib.parse.quote(name)}",
            "manifest": {"file": f"{name}.yaml", "title": manifest.title, "author": manifest.author,
                         "engine": manifest.engine, "voice": manifest.voice},
        },
        status_code=201,
    )


# -- POST /books --------------------------------------------------------------------------------------

@router.post("/books")
async def submit_book(request: Request, context: Context) -> JSONResponse:
    """One request, one book: files (and a manifest, or a .zip of a manifest folder, or just a
    document and the form's fields); checked whole, then stored in manifests/<name>/ and queued."""
    config = context.config
    require_auth(request, config)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise Refusal(415, f"unsupported content type {ctype[:80] or '(none)'!r}: send multipart/form-data "
                           "with 'file' fields (and optionally 'manifest')")
    config.manifests_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=config.manifests_dir, prefix=STAGING_PREFIX))
    try:
        (staging / "spool").mkdir()
        form = await read_form(request, config, staging / "spool")
        if not form.files and form.manifest_text is None:
            raise Refusal(400, "field 'file': send the book's files (a document, or a manifest and its files)")
        name_paths(request, {folder_prefix(staging / "book"): ""})  # a document is named as it was sent
        staged, overwrite = await run_in_threadpool(stage_book, form, staging, config)
        # Once named, the book's files are named as they will be stored.
        name_paths(request, {str(staged.folder.absolute()): f"manifests/{staged.name}",
                             str((staging / "voices").absolute()): "voices"})
        manifest = await run_in_threadpool(check_staged, context, staged, staging)
        return await run_in_threadpool(commit_book, context, staged, staging, manifest, overwrite)
    finally:
        await run_in_threadpool(shutil.rmtree, staging, True)


def check_staged(context: ServiceContext, staged: StagedBook, staging: Path) -> Manifest:
    """What `audiobook check` checks: the manifest, its files, the engine and voice, the sources read."""
    config = context.config
    target = staged.manifest_file.absolute()
    if len(staged.manifest_yaml) > config.max_upload_bytes:
        raise Refusal(413, f"field 'manifest': over the {config.max_upload_bytes} byte limit")
    manifest = validate_manifest(parse_yaml(staged.manifest_yaml, target), target)
    from tasks.plan import make_plan
    from tasks.source import check_sources_exist

    check_sources_exist(manifest)
    if config.validate_plan:
        voices = staging / "voices" if staged.clips else config.voices
        make_plan(manifest, engine_name=None, cache_dir=paths.cache_dir(), voices_dir=voices, check_only=True)
    return manifest


def commit_book(context: ServiceContext, staged: StagedBook, staging: Path, manifest: Manifest,
                overwrite: bool) -> JSONResponse:
    config = context.config
    name = staged.name
    dest = config.manifests_dir / name
    flat = config.manifests_dir / f"{name}.yaml"
    voice_dir = config.voices / staged.voice
    with context.submit_lock:
        if not overwrite and library.book_exists(config, name):
            raise Refusal(409, f"the book {name!r} exists: set overwrite to replace it")
        if staged.clips and voice_dir.exists():
            raise Refusal(409, f"field 'voice': a voice named {staged.voice!r} exists: choose a new name for "
                               "these clips, or send no clips to use it")
        old, old_flat = staging / "old", staging / "old.yaml"
        try:
            if dest.exists():
                dest.rename(old)
            if flat.exists():
                flat.rename(old_flat)
            staged.folder.rename(dest)
            if staged.clips:
                voice_dir.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(staging / "voices" / staged.voice), voice_dir)
        except OSError as exc:
            raise Refusal(507, f"cannot store the book: {exc.strerror}") from None
        try:
            info = context.runs.start(name, (dest / f"{name}.yaml").absolute())
        except Exception as exc:  # put everything back as it was
            shutil.rmtree(dest, ignore_errors=True)
            if old.exists():
                old.rename(dest)
            if old_flat.exists():
                old_flat.rename(flat)
            if staged.clips:
                shutil.rmtree(voice_dir, ignore_errors=True)
            raise Refusal(503, f"could not start the render: {type(exc).__name__}: {exc}"[:500]) from None
    quoted = urllib.parse.quote(name)
    return JSONResponse(
        {
            "name": name, "run_id": info.run_id, "ui_url": info.ui_url, "status": "queued",
            "status_url": f"/books/{quoted}", "page_url": f"/book/{quoted}",
            "manifest_url": f"/books/{quoted}/manifest", "manifest_built": staged.generated,
            "manifest": {"title": manifest.title, "author": manifest.author, "engine": manifest.engine,
                         "voice": manifest.voice, "quality": manifest.quality},
        },
        status_code=202,
    )


# -- POST /inspect ------------------------------------------------------------------------------------

@router.post("/inspect")
async def inspect(request: Request, context: Context) -> dict[str, Any]:
    """The metadata of one document (title, authors, language, whether it has a cover)."""
    require_auth(request, context.config)
    with tempfile.TemporaryDirectory(prefix="audiobook-inspect-") as spool:
        form = await read_form(request, context.config, Path(spool))
        documents = [u for u in form.files if u.kind in DOCUMENT_KINDS]
        if len(documents) != 1:
            raise Refusal(400, "field 'file': send one document to inspect")
        name_paths(request, {folder_prefix(Path(spool)): ""})
        meta = await run_in_threadpool(document_metadata, documents[0].path)
    return {k: meta[k] for k in ("title", "author", "authors", "language", "description")} | {
        "has_cover": bool(meta["cover"])}
