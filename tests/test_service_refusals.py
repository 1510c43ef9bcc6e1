"""One place answers refusals: a UserError raised inside any route is a 422 `{"error": message}`, not a
500, and passes the guard like any answer (its security headers)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from service import FakeRunBackend, ServerThread, create_app
from service.routes import ROUTERS
from tasks.errors import SourceError
from tests.test_service import AUTH, make_config

PROBLEM = SourceError("has no text to read", file="book.epub", fix="send the book again")


class UnreadableContext:
    """Stands in for the routes' shared state: whatever a route asks of it raises a UserError."""

    def __getattr__(self, name: str) -> Any:
        raise PROBLEM


def _app(tmp_path: Path) -> FastAPI:
    config = make_config(tmp_path)
    return create_app(config, FakeRunBackend(config.output_dir))


def _routes() -> list[tuple[str, str]]:
    """(method, URL) of every route the app serves, its path parameters filled in."""
    found = []
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            url = re.sub(r"\{file:path\}", "mp3/01.mp3", route.path).replace("{name}", "lamp")
            found += [(method, url) for method in sorted(route.methods)]
    return found


ROUTES = _routes()


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    from service.routes import health

    def failing_health() -> dict[str, Any]:
        raise PROBLEM

    monkeypatch.setattr(health, "health", failing_health)  # the one route that reads no shared state
    app = _app(tmp_path)
    app.state.context = UnreadableContext()
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


def test_every_route_is_covered() -> None:
    assert len(ROUTES) >= 15 and ("POST", "/books") in ROUTES and ("GET", "/healthcheck") in ROUTES


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_a_user_error_in_any_route_is_a_422_with_its_message(client: httpx.Client, method: str, url: str) -> None:
    r = client.request(method, url, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json() == {"error": "book.epub: has no text to read (fix: send the book again)"}
    assert r.headers["x-frame-options"] == "DENY"


def test_a_user_error_names_an_upload_as_sent_not_by_its_server_path(tmp_path: Path) -> None:
    """A document the reader cannot read: the refusal names the file as uploaded, without the staging
    folder it was checked in."""
    config = make_config(tmp_path)
    with ServerThread(create_app(config, FakeRunBackend(config.output_dir))) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http:
        for url in ("/books", "/inspect"):
            r = http.post(url, files={"file": ("empty.txt", b" \n\n ")}, data={"title": "T", "author": "A"}
                          if url == "/books" else {}, headers=AUTH)
            assert r.status_code == 422, (url, r.text)
            error = r.json()["error"]
            assert error.startswith("empty.txt: "), (url, error)
            assert str(tmp_path) not in error and ".incoming-" not in error and "audiobook-inspect-" not in error
    assert not list(config.manifests_dir.iterdir())
