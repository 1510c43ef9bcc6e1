"""What every route shares: the settings, the run backend, the page's templates, the lock that
orders submissions, and the books as a client sees them (files on disk merged with the runs' states).

One `ServiceContext` per app, on `app.state.context`; a route asks for it with the `Context`
dependency (`def route(context: Context)`), so the routes are plain functions, not closures.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from . import library
from .auth import Guesses
from .backend import RunBackend, RunStatus
from .config import Refusal, ServiceConfig, check_name
from .library import public_message

HERE = Path(__file__).parent
log = logging.getLogger("audiobook.service")


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["urldecode"] = urllib.parse.unquote
    return templates


@dataclass
class ServiceContext:
    config: ServiceConfig
    runs: RunBackend
    templates: Jinja2Templates = field(default_factory=make_templates)
    submit_lock: threading.Lock = field(default_factory=threading.Lock)  # one book stored or started at a time
    guesses: Guesses = field(default_factory=Guesses)  # wrong tokens per client (POST /session)

    def statuses(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """Each book's run state as the API shows it; when Prefect cannot be reached, says so per book."""
        try:
            found = self.runs.statuses(names)
        except Exception as exc:  # Prefect unreachable: say so, do not fail the page
            log.warning("cannot read the runs' states: %s: %s", type(exc).__name__, exc)
            why = public_message(f"cannot read the run's state: {type(exc).__name__}: {exc}")[:500]
            return {n: {"status": "completed" if library.read_report(self.config, n) else "unknown",
                        "run_id": None, "ui_url": None, "message": why, "progress": None} for n in names}
        fields = {n: status_fields(found.get(n)) for n in names}
        for name, entry in fields.items():
            if entry["message"] and (public := public_message(entry["message"])) != entry["message"]:
                log.info("book %s: %s", name, entry["message"])
                entry["message"] = public
        return fields

    def book_entry(self, name: str, status: dict[str, Any], *, detail: bool = False) -> dict[str, Any]:
        config = self.config
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

    def all_books(self) -> list[dict[str, Any]]:
        names = library.list_names(self.config)
        found = self.statuses(names)
        return [self.book_entry(n, found[n]) for n in names]

    def one_book(self, name: str) -> dict[str, Any]:
        name = check_name(name)
        status = self.statuses([name])[name]
        if not library.book_exists(self.config, name) and status["status"] == "idle":
            raise Refusal(404, f"no book named {name!r}")
        return self.book_entry(name, status, detail=True)


def status_fields(status: RunStatus | None) -> dict[str, Any]:
    if status is None:
        return {"status": "idle", "run_id": None, "ui_url": None, "message": "no render recorded", "progress": None}
    progress = None
    if status.chunks_total is not None or status.chunks_done is not None:
        progress = {"chunks_done": status.chunks_done, "chunks_total": status.chunks_total, "eta_s": status.eta_s}
    return {"status": status.state, "run_id": status.run_id, "ui_url": status.ui_url, "message": status.message,
            "progress": progress}


async def service_context(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context


Context = Annotated[ServiceContext, Depends(service_context)]
