"""The HTTP service: submit books, watch renders, listen to and download them.

    POST /books                              one book in one multipart request (202): `file` fields (the
                                             sources, cover, a new voice's clips) and an optional `manifest`,
                                             or one .zip of a manifest folder, or just a document plus the
                                             fields name, title, author, narrator, engine, voice, quality
    POST /manifests?name=NAME                a manifest alone (YAML body or multipart `manifest`) (201)
    POST /inspect                            a document's own metadata (title, author, cover?)
    POST /books/{name}/retry                 render a book again from its stored manifest (202)
    GET  /books, /books/{name}               books: status, progress, files, report summary
    GET  /books/{name}/download/{file}       the M4B, an MP3 or report.json (HTTP ranges)
    GET  /books/{name}/cover, /manifest      the cover image; the stored manifest (to edit and resubmit)
    GET  /engines, /healthcheck              engines and voices for the form; engines, GPU, Prefect
    GET/POST/DELETE /session                 the page's sign-in: the token into an HttpOnly cookie
    GET  /, /book/{name}                     the page (Jinja2 templates, static/app.js)

Modules: `app` (create_app: the guard, the refusals, the routers), `routes/` (one router per
resource: `submit`, `books`, `health`, `session`, `pages`), `context` (what the routes share: the
settings, the run backend, the templates; the books as clients see them), `refusals` (Refusal and
UserError -> a 4xx `{"error"}`, in one place), `config` (settings, limits, Refusal), `auth`,
`backend` (RunBackend: Prefect and a fake), `library` (books on disk), `filetypes` (content
sniffing, archive and XML safety), `uploads` (a book from one request), `health`, `server` (uvicorn
in a thread), `serve` (the `audiobook serve` process).
"""

from __future__ import annotations

from .app import create_app
from .auth import require_auth
from .backend import (
    DEPLOYMENT,
    FakeRunBackend,
    PrefectRunBackend,
    RunBackend,
    RunInfo,
    RunState,
    RunStatus,
    map_prefect_state,
)
from .config import Refusal, ServiceConfig, check_name
from .health import health
from .server import ServerThread

__all__ = [
    "DEPLOYMENT", "FakeRunBackend", "PrefectRunBackend", "Refusal", "RunBackend", "RunInfo", "RunState",
    "RunStatus", "ServerThread", "ServiceConfig", "check_name", "create_app", "health", "map_prefect_state",
    "require_auth",
]
