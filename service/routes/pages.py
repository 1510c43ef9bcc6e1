"""The page: GET / (sign in, add a book, the library) and GET /book/{name} (one book: its chapters
to play with the sentence being read marked, its downloads). Jinja2 templates in service/templates/."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..auth import signed_in
from ..context import Context, ServiceContext
from ..filetypes import AUDIO_SUFFIXES, DOCUMENT_SUFFIXES, IMAGE_SUFFIXES, MANIFEST_SUFFIXES
from ..health import available_engines

router = APIRouter()

# The upload form's file pickers offer what the upload checks take (service.filetypes, whose document
# suffixes come from the readers): a document, a manifest or a .zip; a cover; voice clips.
ACCEPT = {
    "document": ",".join([*DOCUMENT_SUFFIXES, *sorted(MANIFEST_SUFFIXES), ".zip"]),
    "cover": ",".join(IMAGE_SUFFIXES),
    "clips": ",".join(sorted(AUDIO_SUFFIXES)),
}


def page_context(request: Request, context: ServiceContext) -> dict[str, Any]:
    config = context.config
    return {"token_required": config.token is not None, "signed_in": signed_in(request, config),
            "public_downloads": config.public_downloads, "engines": available_engines(config.voices),
            "accept": ACCEPT}


@router.get("/", response_class=HTMLResponse)
def index(request: Request, context: Context) -> Response:
    return context.templates.TemplateResponse(request, "index.html", {**page_context(request, context),
                                                                      "books": context.all_books()})


@router.get("/book/{name}", response_class=HTMLResponse)
def book_page(request: Request, name: str, context: Context) -> Response:
    entry = context.one_book(name)
    mp3s = [f for f in entry["files"] if f.endswith(".mp3")]
    chapters = (entry.get("report") or {}).get("chapters") or []
    rows = [{"title": c.get("title"), "duration_s": c.get("duration_s"),
             "audio": mp3s[i] if i < len(mp3s) else None} for i, c in enumerate(chapters)]
    for row in rows:  # the chapter's captions: the page highlights the sentence being read
        vtt = row["audio"][:-4] + ".vtt" if row["audio"] else None
        row["captions"] = vtt if vtt in entry["files"] else None
    m4b = next((f for f in entry["files"] if f.endswith(".m4b")), None)
    return context.templates.TemplateResponse(request, "book.html", {**page_context(request, context), "book": entry,
                                                                     "chapters": rows, "m4b": m4b})
