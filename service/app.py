"""The routes. Every refusal answers `{"error": "..."}` (one line naming the field and the fix) and
stores nothing; a book is checked whole in a staging folder and moved into place only when valid."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from tasks import paths
from tasks.errors import UserError
from tasks.manifest import Manifest, parse_yaml, validate_manifest

from . import library
from .auth import (
    Guesses,
    client_of,
    host_allowed,
    refuse_cross_site,
    require_auth,
    session_value,
    signed_in,
    token_matches,
)
from .backend import RunBackend, RunStatus
from .config import TOKEN_COOKIE, Refusal, ServiceConfig, check_name
from .health import GPU, available_engines, health
from .library import STAGING_PREFIX, public_message, remove_stale_staging
from .uploads import StagedBook, document_metadata, read_form, stage_book

HERE = Path(__file__).parent
YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"}
COOKIE_MAX_AGE_S = 30 * 24 * 3600
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
log = logging.getLogger("audiobook.service")


def create_app(config: ServiceConfig, runs: RunBackend) -> FastAPI:
    app = FastAPI(title="Audiobook service", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["urldecode"] = urllib.parse.unquote
    GPU.start()
    submit_lock = threading.Lock()
    app.state.guesses = Guesses()
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

    @app.exception_handler(Refusal)
    async def _refused(request: Request, exc: Refusal) -> JSONResponse:
        return JSONResponse({"error": exc.error}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
                             for e in exc.errors()[:3])
        return JSONResponse({"error": f"bad request: {problems}"[:500]}, status_code=400)

    @app.exception_handler(404)
    async def _not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"not found: {request.url.path[:200]}"}, status_code=404)

    @app.exception_handler(405)
    async def _not_allowed(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"{request.method} is not allowed here"}, status_code=405)

    # -- reading the library ---------------------------------------------------------------------------

    def statuses(names: list[str]) -> dict[str, dict[str, Any]]:
        try:
            found = runs.statuses(names)
        except Exception as exc:  # Prefect unreachable: say so, do not fail the page
            log.warning("cannot read the runs' states: %s: %s", type(exc).__name__, exc)
            why = public_message(f"cannot read the run's state: {type(exc).__name__}: {exc}")[:500]
            return {n: {"status": "completed" if library.read_report(config, n) else "unknown", "run_id": None,
                        "ui_url": None, "message": why, "progress": None} for n in names}
        fields = {n: _status_fields(found.get(n)) for n in names}
        for name, entry in fields.items():
            if entry["message"] and (public := public_message(entry["message"])) != entry["message"]:
                log.info("book %s: %s", name, entry["message"])
                entry["message"] = public
        return fields

    def book_entry(name: str, status: dict[str, Any], *, detail: bool = False) -> dict[str, Any]:
        report = library.read_report(config, name)
        meta = library.manifest_data(config, name) or {}
        title = (report.title if report else None) or meta.get("title") or name
        quoted = urllib.parse.quote(name)
        entry: dict[str, Any] = {
            "name": name,
            "title": str(title),
            "author": str((report.author if report else None) or meta.get("author") or ""),
            **status,
            "files": [library.download_url(name, f) for f in library.book_files(config, name)],
            "cover_url": f"/books/{quoted}/cover" if library.cover_file(config, name, meta) else None,
            "page_url": f"/book/{quoted}",
        }
        if detail:
            entry["status_url"] = f"/books/{quoted}"
            entry["manifest_url"] = f"/books/{quoted}/manifest" if library.manifest_path(config, name) else None
            entry["report"] = library.report_summary(report) if report else None
        return entry

    def all_books() -> list[dict[str, Any]]:
        names = library.list_names(config)
        found = statuses(names)
        return [book_entry(n, found[n]) for n in names]

    def one_book(name: str) -> dict[str, Any]:
        name = check_name(name)
        status = statuses([name])[name]
        if not library.book_exists(config, name) and status["status"] == "idle":
            raise Refusal(404, f"no book named {name!r}")
        return book_entry(name, status, detail=True)

    # -- submitting ------------------------------------------------------------------------------------

    async def read_body(request: Request) -> bytes:
        limit = config.max_upload_bytes
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

    @app.post("/manifests")
    async def submit(request: Request, name: str | None = None, overwrite: bool = False) -> JSONResponse:
        require_auth(request, config)
        if name is not None:
            name = check_name(name)
            if not overwrite and library.book_exists(config, name):
                raise Refusal(409, f"the book {name!r} exists; add ?overwrite=true to replace its manifest")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in YAML_TYPES and ctype != "multipart/form-data":
            raise Refusal(415, f"unsupported content type {ctype[:80] or '(none)'!r}: send the YAML as "
                               "application/yaml (or text/plain), or a multipart/form-data field 'manifest'")
        body = await read_body(request)
        if ctype == "multipart/form-data":
            body, filename = await manifest_from_multipart(request, body)
            if name is None:
                if not filename:
                    raise Refusal(400, "give ?name=NAME or a file name for the 'manifest' field")
                name = check_name(filename)
        if name is None:
            raise Refusal(400, "give the book's name: POST /manifests?name=NAME")
        target = config.manifests_dir.absolute() / f"{name}.yaml"
        try:
            manifest = validate_manifest(parse_yaml(body, target), target)
            from tasks.plan import check_sources_exist

            check_sources_exist(manifest)
        except UserError as exc:
            raise Refusal(422, str(exc)) from None
        return await run_in_threadpool(store_manifest, name, target, body, manifest, overwrite)

    def store_manifest(name: str, target: Path, body: bytes, manifest: Manifest, overwrite: bool) -> JSONResponse:
        with submit_lock:
            if not overwrite and library.book_exists(config, name):
                raise Refusal(409, f"the book {name!r} exists; add ?overwrite=true to replace its manifest")
            existed = target.exists()
            try:
                library.write_new(target, body, overwrite=overwrite)
            except FileExistsError:
                raise Refusal(409, f"the book {name!r} exists; add ?overwrite=true to replace it") from None
            except OSError as exc:
                raise Refusal(507, f"cannot store the manifest: {exc.strerror}") from None
            try:
                info = runs.start(name, target)
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

    @app.post("/books")
    async def submit_book(request: Request) -> JSONResponse:
        """One request, one book: files (and a manifest, or a .zip of a manifest folder, or just a
        document and the form's fields); checked whole, then stored in manifests/<name>/ and queued."""
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
            staged, overwrite = await run_in_threadpool(stage_book, form, staging, config)
            manifest = await run_in_threadpool(check_staged, staged, staging)
            return await run_in_threadpool(commit_book, staged, staging, manifest, overwrite)
        finally:
            await run_in_threadpool(shutil.rmtree, staging, True)

    def check_staged(staged: StagedBook, staging: Path) -> Manifest:
        """What `audiobook check` checks: the manifest, its files, the engine and voice, the sources read."""
        target = staged.manifest_file.absolute()
        try:
            if len(staged.manifest_yaml) > config.max_upload_bytes:
                raise Refusal(413, f"field 'manifest': over the {config.max_upload_bytes} byte limit")
            manifest = validate_manifest(parse_yaml(staged.manifest_yaml, target), target)
            from tasks.plan import check_sources_exist, make_plan

            check_sources_exist(manifest)
            if config.validate_plan:
                voices = staging / "voices" if staged.clips else config.voices
                make_plan(manifest, engine_name=None, cache_dir=paths.cache_dir(), voices_dir=voices,
                          check_only=True)
        except UserError as exc:
            message = str(exc).replace(str(staged.folder.absolute()), f"manifests/{staged.name}")
            message = message.replace(str((staging / "voices").absolute()), "voices")
            raise Refusal(422, message) from None
        return manifest

    def commit_book(staged: StagedBook, staging: Path, manifest: Manifest, overwrite: bool) -> JSONResponse:
        name = staged.name
        dest = config.manifests_dir / name
        flat = config.manifests_dir / f"{name}.yaml"
        voice_dir = config.voices / staged.voice
        with submit_lock:
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
                info = runs.start(name, (dest / f"{name}.yaml").absolute())
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

    @app.post("/inspect")
    async def inspect(request: Request) -> dict[str, Any]:
        """The metadata of one document (title, authors, language, whether it has a cover)."""
        require_auth(request, config)
        with tempfile.TemporaryDirectory(prefix="audiobook-inspect-") as spool:
            form = await read_form(request, config, Path(spool))
            documents = [u for u in form.files if u.kind in ("epub", "docx", "text", "html")]
            if len(documents) != 1:
                raise Refusal(400, "field 'file': send one document to inspect")
            meta = await run_in_threadpool(document_metadata, documents[0].path)
        return {k: meta[k] for k in ("title", "author", "authors", "language", "description")} | {
            "has_cover": bool(meta["cover"])}

    @app.post("/books/{name}/retry")
    def retry(request: Request, name: str) -> JSONResponse:
        require_auth(request, config)
        name = check_name(name)
        manifest = library.manifest_path(config, name)
        if manifest is None:
            raise Refusal(404, f"no manifest for {name!r}: submit the book again")
        with submit_lock:
            state = statuses([name])[name]["status"]
            if state in ("queued", "running"):
                raise Refusal(409, f"the book {name!r} is {state}: wait for it to finish")
            try:
                info = runs.start(name, manifest.absolute())
            except Exception as exc:
                raise Refusal(503, f"could not start the render: {type(exc).__name__}: {exc}"[:500]) from None
        return JSONResponse({"name": name, "run_id": info.run_id, "ui_url": info.ui_url, "status": "queued",
                             "status_url": f"/books/{urllib.parse.quote(name)}"}, status_code=202)

    # -- reading -------------------------------------------------------------------------------------

    @app.get("/books")
    def books() -> list[dict[str, Any]]:
        return all_books()

    @app.get("/books/{name}")
    def book(name: str) -> dict[str, Any]:
        return one_book(name)

    @app.get("/books/{name}/manifest")
    def book_manifest(request: Request, name: str) -> Response:
        require_auth(request, config)
        path = library.manifest_path(config, check_name(name))
        if path is None:
            raise Refusal(404, f"no manifest for {name!r}")
        return FileResponse(path, media_type="application/yaml", filename=path.name)

    def require_download(request: Request) -> None:
        if not config.public_downloads:
            require_auth(request, config)

    @app.get("/books/{name}/cover")
    def cover(request: Request, name: str) -> Response:
        require_download(request)
        path = library.cover_file(config, check_name(name))
        if path is None:
            raise Refusal(404, f"no cover for {name!r}")
        return FileResponse(path, media_type=library.IMAGE_TYPES[path.suffix.lower()])

    @app.get("/books/{name}/download/{file:path}")
    def download(request: Request, name: str, file: str) -> Response:
        require_download(request)
        name = check_name(name)
        parts = file.split("/")
        if (not file or file.startswith("/") or "\\" in file or "\x00" in file
                or any(p in ("", ".", "..") or p.startswith(".") for p in parts)):
            raise Refusal(400, f"bad file path {file[:80]!r}")
        suffix = Path(file).suffix.lower()
        if suffix not in library.MEDIA_TYPES or (suffix == ".json" and file != "report.json"):
            raise Refusal(404, f"no such file: {file[:80]!r} (downloads are the .m4b, .epub, .mp3, .vtt and .srt files and report.json)")
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

    @app.get("/engines")
    def engines() -> list[dict[str, Any]]:
        return available_engines(config.voices)

    @app.get("/healthcheck")
    def healthcheck() -> dict[str, Any]:
        return health()

    # -- the session cookie and the page ------------------------------------------------------------------

    @app.get("/session")
    def session(request: Request) -> dict[str, Any]:
        return {"token_required": config.token is not None, "signed_in": signed_in(request, config),
                "public_downloads": config.public_downloads}

    @app.post("/session")
    async def sign_in(request: Request) -> JSONResponse:
        """Check the token once and keep it in an HttpOnly, SameSite=Strict cookie (JavaScript never
        holds it after this request)."""
        refuse_cross_site(request, config)
        if config.token is not None:
            app.state.guesses.check(client_of(request))
        try:
            form = await request.form(max_files=0, max_fields=2, max_part_size=4096)
        except Exception as exc:  # malformed form: starlette raises MultiPartException / HTTPException
            raise Refusal(400, f"field 'token': malformed form: {getattr(exc, 'detail', None) or exc}") from None
        token = form.get("token")
        await form.close()
        if config.token is None:
            return JSONResponse({"signed_in": True, "token_required": False})
        if not isinstance(token, str) or not token_matches(token.strip(), config.token):
            app.state.guesses.failed(client_of(request))
            raise Refusal(401, "field 'token': wrong token: ask whoever runs the service for it")
        response = JSONResponse({"signed_in": True, "token_required": True})
        response.set_cookie(TOKEN_COOKIE, session_value(config.token), max_age=COOKIE_MAX_AGE_S, path="/",
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return response

    @app.delete("/session")
    def sign_out(request: Request) -> JSONResponse:
        refuse_cross_site(request, config)
        response = JSONResponse({"signed_in": False})
        response.delete_cookie(TOKEN_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    def page_context(request: Request) -> dict[str, Any]:
        return {"token_required": config.token is not None, "signed_in": signed_in(request, config),
                "public_downloads": config.public_downloads, "engines": available_engines(config.voices)}

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        return templates.TemplateResponse(request, "index.html", {**page_context(request), "books": all_books()})

    @app.get("/book/{name}", response_class=HTMLResponse)
    def book_page(request: Request, name: str) -> Response:
        entry = one_book(name)
        mp3s = [f for f in entry["files"] if f.endswith(".mp3")]
        chapters = (entry.get("report") or {}).get("chapters") or []
        rows = [{"title": c.get("title"), "duration_s": c.get("duration_s"),
                 "audio": mp3s[i] if i < len(mp3s) else None} for i, c in enumerate(chapters)]
        for row in rows:  # the chapter's captions: the page highlights the sentence being read
            vtt = row["audio"][:-4] + ".vtt" if row["audio"] else None
            row["captions"] = vtt if vtt in entry["files"] else None
        m4b = next((f for f in entry["files"] if f.endswith(".m4b")), None)
        return templates.TemplateResponse(request, "book.html", {**page_context(request), "book": entry,
                                                                 "chapters": rows, "m4b": m4b})

    return app


def _status_fields(status: RunStatus | None) -> dict[str, Any]:
    if status is None:
        return {"status": "idle", "run_id": None, "ui_url": None, "message": "no render recorded", "progress": None}
    progress = None
    if status.chunks_total is not None or status.chunks_done is not None:
        progress = {"chunks_done": status.chunks_done, "chunks_total": status.chunks_total, "eta_s": status.eta_s}
    return {"status": status.state, "run_id": status.run_id, "ui_url": status.ui_url, "message": status.message,
            "progress": progress}
