"""The HTTP service over real HTTP (uvicorn on a loopback port): submissions, status, downloads, and
every refusal writing nothing. One test drives PrefectRunBackend against the real Prefect server."""

from __future__ import annotations

import json
import os
import socket
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from service import (
    FakeRunBackend,
    PrefectRunBackend,
    ServerThread,
    ServiceConfig,
    create_app,
    map_prefect_state,
)
from service.auth import session_value

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
YAML = {"Content-Type": "application/yaml"}

GOOD = b"""title: A Good Book
author: Jane Doe
engine: piper
voice: joe
chapters:
  - {title: One, text: "It was a quiet night."}
"""


class Service:
    def __init__(self, config: ServiceConfig, runs: FakeRunBackend, client: httpx.Client, base: str) -> None:
        self.config, self.runs, self.client, self.base = config, runs, client, base

    def raw(self, request_target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """GET with the request target sent exactly as given (no client-side URL normalisation)."""
        host, port = self.base.removeprefix("http://").split(":")
        lines = [f"GET {request_target} HTTP/1.1", f"Host: {host}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body


def make_config(tmp_path: Path, **overrides: Any) -> ServiceConfig:
    config = ServiceConfig(manifests_dir=tmp_path / "manifests", output_dir=tmp_path / "output", token=TOKEN)
    config.manifests_dir.mkdir(exist_ok=True)
    config.output_dir.mkdir(exist_ok=True)
    return replace(config, **overrides)


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Any]:
    servers: list[tuple[ServerThread, httpx.Client]] = []

    def start(**overrides: Any) -> Service:
        config = make_config(tmp_path, **overrides)
        runs = FakeRunBackend(config.output_dir)
        server = ServerThread(create_app(config, runs)).__enter__()
        client = httpx.Client(base_url=server.url, timeout=10)
        servers.append((server, client))
        return Service(config, runs, client, server.url)

    yield start
    for server, client in servers:
        client.close()
        server.__exit__(None, None, None)


@pytest.fixture
def svc(service_factory: Any) -> Service:
    service: Service = service_factory()
    return service


def add_rendered_book(config: ServiceConfig, name: str = "done", title: str = "Done Book") -> dict[str, bytes]:
    """A rendered book's folder as render-book leaves it (file contents are stand-ins)."""
    folder = config.output_dir / name
    (folder / "mp3").mkdir(parents=True)
    files = {
        f"{name}.m4b": bytes(range(256)) * 40,
        "mp3/01-the-storm.mp3": b"ID3" + os.urandom(3000),
        "mp3/02-after.mp3": b"ID3" + os.urandom(2000),
        "report.json": json.dumps({"title": title, "engine": "piper", "chunks_total": 3, "chunks_synthesized": 3,
                                   "chunks_cached": 0, "duration_s": 12.5,
                                   "chapters": [{"title": "The Storm", "duration_s": 6.0}]}).encode(),
    }
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
    (folder / ".render-state.json").write_text("{}")
    (folder / ".lock").write_text("")
    (folder / "mp3" / ".01-the-storm.partial.mp3").write_bytes(b"half")
    return files


def snapshot(config: ServiceConfig) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for root in (config.manifests_dir, config.output_dir):
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                out[str(path)] = path.read_bytes()
            else:
                out[str(path)] = b"<dir-or-link>"
    return out


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str) and body["error"]
    return body["error"]


# -- submission -----------------------------------------------------------------------------------------


def test_submit_yaml_body_stores_it_and_starts_a_render(svc: Service) -> None:
    r = svc.client.post("/manifests", params={"name": "quiet"}, content=GOOD, headers={**AUTH, **YAML})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "quiet" and body["run_id"] == "fake-1" and body["status_url"] == "/books/quiet"
    assert body["manifest"]["title"] == "A Good Book"
    stored = svc.config.manifests_dir / "quiet.yaml"
    assert stored.read_bytes() == GOOD
    assert svc.runs.started == [("quiet", stored.absolute())]
    assert [p.name for p in svc.config.manifests_dir.iterdir()] == ["quiet.yaml"]  # no temp file left

    status = svc.client.get("/books/quiet").json()
    assert status["status"] == "queued" and status["run_id"] == "fake-1" and status["title"] == "A Good Book"
    assert status["files"] == [] and status["report"] is None
    svc.runs.set_state("quiet", "running")
    assert svc.client.get("/books/quiet").json()["status"] == "running"
    svc.runs.set_state("quiet", "failed", "chapter 1 could not be rendered")
    failed = svc.client.get("/books/quiet").json()
    assert failed["status"] == "failed" and "chapter 1" in failed["message"]


def test_submit_multipart_takes_the_name_from_the_file(svc: Service) -> None:
    files = {"manifest": ("night-book.yaml", GOOD, "application/x-yaml")}
    r = svc.client.post("/manifests", files=files, headers=AUTH)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "night-book"
    assert (svc.config.manifests_dir / "night-book.yaml").read_bytes() == GOOD
    # A plain (non-file) field works too, named by ?name=.
    r = svc.client.post("/manifests", params={"name": "field"}, data={"manifest": GOOD.decode()}, files={"x": ("x", b"")},
                        headers=AUTH)
    assert r.status_code == 201, r.text
    assert (svc.config.manifests_dir / "field.yaml").read_bytes() == GOOD
    # ?name= wins over the file name
    r = svc.client.post("/manifests", params={"name": "other"}, files=files, headers=AUTH)
    assert r.status_code == 201 and r.json()["name"] == "other"


def test_submit_with_a_source_file_inside_the_manifests_folder(svc: Service) -> None:
    (svc.config.manifests_dir / "story.txt").write_text("Chapter 1\n\nOnce upon a time.\n")
    body = b"title: Story\nauthor: A\nsource: story.txt\n"
    r = svc.client.post("/manifests", params={"name": "story"}, content=body, headers={**AUTH, **YAML})
    assert r.status_code == 201, r.text
    before = snapshot(svc.config)
    missing = b"title: Story\nauthor: A\nsource: nowhere.txt\n"
    r = svc.client.post("/manifests", params={"name": "story2"}, content=missing, headers={**AUTH, **YAML})
    assert r.status_code == 422 and "nowhere.txt" in error_of(r)
    assert snapshot(svc.config) == before


def test_existing_book_is_not_replaced_without_overwrite(svc: Service) -> None:
    assert svc.client.post("/manifests?name=b", content=GOOD, headers={**AUTH, **YAML}).status_code == 201
    changed = GOOD.replace(b"A Good Book", b"A Changed Book")
    r = svc.client.post("/manifests?name=b", content=changed, headers={**AUTH, **YAML})
    assert r.status_code == 409 and "overwrite=true" in error_of(r)
    r = svc.client.post("/manifests?name=b", files={"manifest": ("b.yaml", changed)}, headers=AUTH)
    assert r.status_code == 409
    assert (svc.config.manifests_dir / "b.yaml").read_bytes() == GOOD
    r = svc.client.post("/manifests?name=b&overwrite=true", content=changed, headers={**AUTH, **YAML})
    assert r.status_code == 201 and (svc.config.manifests_dir / "b.yaml").read_bytes() == changed
    assert len(svc.runs.started) == 2
    # A book that exists only as output counts as existing too.
    add_rendered_book(svc.config, "done")
    before = snapshot(svc.config)
    assert svc.client.post("/manifests?name=done", content=GOOD, headers={**AUTH, **YAML}).status_code == 409
    assert snapshot(svc.config) == before


def test_a_render_that_cannot_start_leaves_no_manifest(svc: Service) -> None:
    svc.runs.fail_start = RuntimeError("Prefect is down")
    r = svc.client.post("/manifests?name=x", content=GOOD, headers={**AUTH, **YAML})
    assert r.status_code == 503 and "Prefect is down" in error_of(r)
    assert list(svc.config.manifests_dir.iterdir()) == []


# -- authorisation --------------------------------------------------------------------------------------


def test_submission_needs_the_token(svc: Service) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": TOKEN}):
        r = svc.client.post("/manifests?name=x", content=GOOD, headers={**headers, **YAML})
        assert r.status_code == 401, headers
        assert "token" in error_of(r)
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert list(svc.config.manifests_dir.iterdir()) == [] and svc.runs.started == []


def test_without_a_token_only_loopback_clients_may_submit(service_factory: Any) -> None:
    svc: Service = service_factory(token=None)
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 (a local reverse proxy): the client is then remote.
    r = svc.client.post("/manifests?name=x", content=GOOD, headers={**YAML, "X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 403 and "AUDIOBOOK_TOKEN" in error_of(r)
    assert list(svc.config.manifests_dir.iterdir()) == []
    r = svc.client.get("/books/x/download/x.m4b", headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 403
    r = svc.client.post("/manifests?name=x", content=GOOD, headers=YAML)
    assert r.status_code == 201, r.text


def test_downloads_need_the_token_unless_public(service_factory: Any) -> None:
    svc: Service = service_factory()
    files = add_rendered_book(svc.config)
    url = "/books/done/download/done.m4b"
    assert svc.client.get(url).status_code == 401
    assert svc.client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert svc.client.get(url, cookies={"audiobook_token": "nope"}).status_code == 401
    assert svc.client.get(url, headers=AUTH).content == files["done.m4b"]
    with httpx.Client(base_url=svc.base, cookies={"audiobook_token": session_value(TOKEN)}) as browser:
        assert browser.get(url).status_code == 200
    assert svc.client.get(url, cookies={"audiobook_token": TOKEN}).status_code == 401  # the cookie is not the token
    public: Service = service_factory(public_downloads=True)
    assert public.client.get(url).content == files["done.m4b"]
    # Public downloads do not open submissions.
    assert public.client.post("/manifests?name=z", content=GOOD, headers=YAML).status_code == 401


# -- size -----------------------------------------------------------------------------------------------


def test_oversize_uploads_are_refused_and_nothing_is_written(service_factory: Any) -> None:
    svc: Service = service_factory(max_upload_bytes=1000)
    big = GOOD + b"description: " + b"x" * 2000 + b"\n"
    r = svc.client.post("/manifests?name=big", content=big, headers={**AUTH, **YAML})
    assert r.status_code == 413 and "1000 byte" in error_of(r)

    def stream() -> Iterator[bytes]:  # chunked: no Content-Length, the limit is enforced while reading
        for _ in range(100):
            yield b"# " + b"y" * 98 + b"\n"

    r = svc.client.post("/manifests?name=big", content=stream(), headers={**AUTH, **YAML})
    assert "content-length" not in r.request.headers
    assert r.status_code == 413
    r = svc.client.post("/manifests?name=big", files={"manifest": ("big.yaml", big)}, headers=AUTH)
    assert r.status_code == 413
    assert list(svc.config.manifests_dir.iterdir()) == [] and svc.runs.started == []
    # Just under the limit is fine.
    assert svc.client.post("/manifests?name=ok", content=GOOD, headers={**AUTH, **YAML}).status_code == 201


# -- malicious input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "../x", "..", "%2e%2e", "..%2fx", "/etc/passwd", "a/b", "a\\b", ".hidden", "-dash", "x.yaml.yaml",
    "a..b", "n" * 65, "sp ace", "nul\x00", "ü",
])
def test_bad_names_are_refused(svc: Service, name: str) -> None:
    add_rendered_book(svc.config)
    before = snapshot(svc.config)
    query = "name=" + urllib.parse.quote(name, safe="%")  # "%2e%2e" goes as sent: decoded once -> ".."
    r = svc.client.post(f"/manifests?{query}", content=GOOD, headers={**AUTH, **YAML})
    assert r.status_code == 400, (name, r.text)
    assert "name" in error_of(r)
    assert snapshot(svc.config) == before and svc.runs.started == []


@pytest.mark.parametrize("filename", ["../evil.yaml", "/etc/cron.d/evil.yaml", "..\\evil.yaml", ".evil.yaml",
                                      "a..yaml.yaml"])
def test_bad_multipart_file_names_are_refused(svc: Service, filename: str) -> None:
    before = snapshot(svc.config)
    r = svc.client.post("/manifests", files={"manifest": (filename, GOOD)}, headers=AUTH)
    assert r.status_code == 400, (filename, r.text)
    error_of(r)
    assert snapshot(svc.config) == before and svc.runs.started == []


BOMB = b"""title: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
author: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
description: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
"""

BAD_MANIFESTS = {
    "source escapes": (b"title: T\nauthor: A\nsource: ../../etc/passwd\n", "leaves the manifest's folder"),
    "absolute source": (b"title: T\nauthor: A\nsource: /etc/passwd\n", "absolute path"),
    "chapter file escapes": (b"title: T\nauthor: A\nchapters:\n  - {title: x, file: ../secret.txt}\n",
                             "leaves the manifest's folder"),
    "cover escapes": (b"title: T\nauthor: A\ncover: ../../cover.jpg\nsource: x.txt\n", "leaves"),
    "alias bomb": (BOMB, "aliases"),
    "deep nesting": (b"title: T\nauthor: A\ndescription: " + b"[" * 40 + b"]" * 40 + b"\n", "nesting"),
    "wrong types": (b"title: [1, 2]\nauthor: A\nchapters: 3\n", "title"),
    "not a mapping": (b"- just\n- a list\n", "mapping"),
    "empty": (b"", "empty"),
    "binary garbage": (bytes(range(256)) * 4, "UTF-8"),
    "invalid yaml": (b"title: [unclosed\nauthor: A\n", "invalid YAML"),
    "unknown key": (b"title: T\nauthor: A\nvoise: joe\nsource: a.txt\n", "did you mean 'voice'"),
    "python tag": (b"title: !!python/object/apply:os.system ['touch /tmp/pwned']\nauthor: A\n", "YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_bad_manifests_are_refused_with_the_reason(svc: Service, case: str) -> None:
    (svc.config.manifests_dir / "x.txt").write_text("Some text.")
    body, expected = BAD_MANIFESTS[case]
    before = snapshot(svc.config)
    for kwargs in ({"content": body, "headers": {**AUTH, **YAML}},
                   {"files": {"manifest": ("evil.yaml", body)}, "headers": AUTH}):
        r = svc.client.post("/manifests?name=evil", **kwargs)
        assert r.status_code == 422, (case, r.text)
        assert expected in error_of(r), (case, r.text)
    assert snapshot(svc.config) == before and svc.runs.started == []


def test_unsupported_content_types_and_malformed_multipart(svc: Service) -> None:
    before = snapshot(svc.config)
    for ctype in ("application/json", "application/x-www-form-urlencoded", "image/png"):
        r = svc.client.post("/manifests?name=x", content=GOOD, headers={**AUTH, "Content-Type": ctype})
        assert r.status_code == 415 and "application/yaml" in error_of(r)
    r = svc.client.post("/manifests?name=x", content=GOOD, headers={**AUTH, "Content-Type": "multipart/form-data"})
    assert r.status_code == 400
    error_of(r)
    r = svc.client.post("/manifests?name=x", files={"other": ("x.yaml", GOOD)}, headers=AUTH)
    assert r.status_code == 400 and "'manifest'" in error_of(r)
    r = svc.client.post("/manifests?name=x&overwrite=maybe", content=GOOD, headers={**AUTH, **YAML})
    assert r.status_code == 400
    error_of(r)
    assert snapshot(svc.config) == before and svc.runs.started == []


# -- books and downloads --------------------------------------------------------------------------------


def test_books_list_status_and_report(svc: Service) -> None:
    add_rendered_book(svc.config)
    svc.client.post("/manifests?name=queued-one", content=GOOD, headers={**AUTH, **YAML})
    (svc.config.output_dir / ".runs.json").write_text("{}")  # hidden entries are not books
    listing = svc.client.get("/books").json()
    assert [b["name"] for b in listing] == ["done", "queued-one"]
    done = listing[0]
    assert done["title"] == "Done Book" and done["status"] == "completed"
    assert done["files"] == [
        "/books/done/download/done.m4b",
        "/books/done/download/mp3/01-the-storm.mp3",
        "/books/done/download/mp3/02-after.mp3",
        "/books/done/download/report.json",
    ]
    assert listing[1]["status"] == "queued" and listing[1]["title"] == "A Good Book"
    detail = svc.client.get("/books/done").json()
    assert detail["report"]["chunks_total"] == 3 and detail["report"]["chapters"][0]["title"] == "The Storm"
    assert detail["run_id"] is None and detail["ui_url"] is None
    r = svc.client.get("/books/nothing-here")
    assert r.status_code == 404 and "nothing-here" in error_of(r)
    assert svc.client.get("/books/%2e%2e").status_code == 400
    assert svc.client.get("/no/such/route").status_code == 404


def test_downloads_have_the_right_bytes_and_types(svc: Service) -> None:
    files = add_rendered_book(svc.config)
    for rel, ctype in (("done.m4b", "audio/mp4"), ("mp3/01-the-storm.mp3", "audio/mpeg"),
                       ("report.json", "application/json")):
        r = svc.client.get(f"/books/done/download/{rel}", headers=AUTH)
        assert r.status_code == 200, rel
        assert r.content == files[rel]
        assert r.headers["content-type"].startswith(ctype)
        assert r.headers["accept-ranges"] == "bytes"


def test_range_requests(svc: Service) -> None:
    files = add_rendered_book(svc.config)
    url = "/books/done/download/done.m4b"
    data = files["done.m4b"]
    r = svc.client.get(url, headers={**AUTH, "Range": "bytes=100-199"})
    assert r.status_code == 206
    assert r.content == data[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(data)}"
    r = svc.client.get(url, headers={**AUTH, "Range": "bytes=-16"})
    assert r.status_code == 206 and r.content == data[-16:]
    r = svc.client.get(url, headers={**AUTH, "Range": f"bytes={len(data) + 10}-"})
    assert r.status_code == 416


@pytest.mark.parametrize("target", [
    "/books/done/download/%2e%2e/%2e%2e/manifests/secret.yaml",
    "/books/done/download/..%2f..%2fmanifests%2fsecret.yaml",
    "/books/done/download/mp3/../../../manifests/secret.yaml",
    "/books/done/download/%2Fetc%2Fpasswd",
    "/books/done/download//etc/passwd",
    "/books/done/download/.render-state.json",
    "/books/done/download/.lock",
    "/books/done/download/mp3/.01-the-storm.partial.mp3",
    "/books/done/download/escape.mp3",
    "/books/done/download/linked/secret.mp3",
    "/books/done/download/other.json",
    "/books/done/download/report.json%00.mp3",
    "/books/%2e%2e/download/manifests/secret.yaml",
    "/books/linkbook/download/secret.mp3",
    "/books/done/download/nothere.mp3",
])
def test_download_paths_outside_the_book_are_refused(svc: Service, target: str) -> None:
    add_rendered_book(svc.config)
    secret = svc.config.manifests_dir / "secret.yaml"
    secret.write_text("top secret")
    outside = svc.config.manifests_dir.parent / "secret.mp3"
    outside.write_bytes(b"top secret")
    (svc.config.output_dir / "done" / "escape.mp3").symlink_to(outside)
    (svc.config.output_dir / "done" / "linked").symlink_to(svc.config.manifests_dir.parent, target_is_directory=True)
    (svc.config.output_dir / "linkbook").symlink_to(svc.config.manifests_dir.parent, target_is_directory=True)
    status, body = svc.raw(target, AUTH)
    assert status in (400, 404), (target, status, body)
    assert b"top secret" not in body
    assert set(json.loads(body)) == {"error"}


# -- health and the page --------------------------------------------------------------------------------


def test_healthcheck_shape(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # nothing listens on the discard port
    r = svc.client.get("/healthcheck", timeout=60)  # the first call may import Prefect's settings
    assert r.status_code == 200
    body = r.json()
    assert body["state"] in ("healthy", "degraded")
    assert set(body["engines"]) == {"piper", "tortoise"}  # the offered engines (tasks.engines.ENGINES)
    for status in body["engines"].values():
        assert {"installed", "ready", "reason", "device", "voices", "default_voice", "qualities"} <= set(status)
        assert isinstance(status["ready"], bool) and isinstance(status["installed"], bool)
    assert body["engines"]["piper"]["default_voice"] == "joe" and body["engines"]["piper"]["device"] == "cpu"
    assert isinstance(body["ffmpeg"], bool)
    assert isinstance(body["gpu"], bool)
    assert body["prefect"]["reachable"] is False  # no server in this test: degraded, not an error
    assert body["state"] == "degraded"
    assert body["workers"] == {"cluster": None, "list": []}  # no resident workers in this test's service


def test_index_page_escapes_user_text(svc: Service) -> None:
    add_rendered_book(svc.config, "xss", title="<script>alert('x')</script> & Co")
    page = svc.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in page.text
    assert 'href="/books/xss/download/xss.m4b"' in page.text


def test_the_upload_form_offers_every_reader_and_what_the_checks_take(svc: Service) -> None:
    import re

    from tasks.documents import READERS

    page = svc.client.get("/").text
    pickers = dict(re.findall(r'id="(document|cover|clips)" accept="([^"]*)"', page))
    assert set(pickers["document"].split(",")) == {*READERS, ".yaml", ".yml", ".zip"}
    assert set(pickers["cover"].split(",")) == {".jpg", ".jpeg", ".png"}
    assert set(pickers["clips"].split(",")) == {".wav", ".mp3", ".flac", ".ogg"}


def test_state_mapping() -> None:
    expected = {"SCHEDULED": "queued", "PENDING": "queued", "RUNNING": "running", "COMPLETED": "completed",
                "FAILED": "failed", "CRASHED": "failed", "CANCELLED": "failed"}
    for prefect_state, ours in expected.items():
        assert map_prefect_state(prefect_state) == ours


def test_config_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    monkeypatch.delenv("AUDIOBOOK_TOKEN", raising=False)
    monkeypatch.setenv("AUDIOBOOK_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AUDIOBOOK_PUBLIC_DOWNLOADS", "1")
    monkeypatch.setenv("AUDIOBOOK_MAX_UPLOAD_BYTES", "5000")
    monkeypatch.setenv("AUDIOBOOK_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    monkeypatch.delenv("PREFECT_UI_URL", raising=False)
    config = ServiceConfig.from_env()
    assert config.token == "from-file" and config.public_downloads and config.max_upload_bytes == 5000
    assert config.output_dir == tmp_path / "out" and config.prefect_ui_url == "http://127.0.0.1:4200"
    monkeypatch.setenv("AUDIOBOOK_TOKEN", "from-env")
    assert ServiceConfig.from_env().token == "from-env"


# -- the real Prefect backend ---------------------------------------------------------------------------


@pytest.mark.server
def test_prefect_backend_starts_the_deployment_and_maps_states(prefect_harness: None, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Crashed, Failed, Running

    from flows.render import render_book

    deployment: Any = render_book.to_deployment(name="render-book")
    deployment.apply()
    config = make_config(tmp_path, prefect_ui_url="http://127.0.0.1:4200")
    backend = PrefectRunBackend(config)
    with ServerThread(create_app(config, backend)) as server, httpx.Client(base_url=server.url) as client:
        r = client.post("/manifests?name=real", content=GOOD, headers={**AUTH, **YAML})
        assert r.status_code == 201, r.text
        run_id = r.json()["run_id"]
        assert r.json()["ui_url"] == f"http://127.0.0.1:4200/runs/flow-run/{run_id}"
        assert json.loads((config.output_dir / ".runs.json").read_text()) == {"real": run_id}
        with get_client(sync_client=True) as prefect:
            flow_run = prefect.read_flow_run(run_id)
            assert flow_run.state is not None and flow_run.state.type.value == "SCHEDULED"
            assert flow_run.parameters == {"manifest": str((config.manifests_dir / "real.yaml").absolute())}
            registered = prefect.read_deployment(flow_run.deployment_id)  # type: ignore[arg-type]
            assert registered.name == "render-book"
            status = client.get("/books/real").json()
            assert (status["status"], status["run_id"]) == ("queued", run_id)
            transitions: list[tuple[Any, str]] = [(Running(), "running"), (Failed(message="boom"), "failed"),
                                                  (Crashed(), "failed"), (Completed(), "completed")]
            for state, ours in transitions:
                prefect.set_flow_run_state(run_id, state, force=True)  # type: ignore[arg-type]
                status = client.get("/books/real").json()
                assert status["status"] == ours, (state, status)
            prefect.set_flow_run_state(run_id, Failed(message="chapter 2 failed"), force=True)  # type: ignore[arg-type]
            assert client.get("/books/real").json()["message"] == "chapter 2 failed"
    # No run recorded, a report on disk: completed; nothing at all: unknown to the backend.
    add_rendered_book(config, "old")
    old = backend.status("old")
    assert old is not None and old.state == "completed"
    assert backend.status("never") is None


@pytest.mark.server
def test_listing_500_books_asks_prefect_a_bounded_number_of_times(prefect_harness: None, tmp_path: Path) -> None:
    """/books over 500 books recorded in Prefect: one filtered query (in pages of Prefect's 200-row
    limit) for every state and one for the progress of those running; not one per book."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Failed, Running

    from flows.render import render_book

    deployment_id = cast_any(render_book.to_deployment(name="listing")).apply()
    config = make_config(tmp_path)
    runs: dict[str, str] = {}
    with get_client(sync_client=True) as prefect:
        for i in range(500):
            flow_run = prefect.create_flow_run_from_deployment(deployment_id, name=f"book{i:03d}", parameters={"manifest": "x"})
            runs[f"book{i:03d}"] = str(flow_run.id)
            if i % 5 == 1:
                prefect.set_flow_run_state(flow_run.id, Completed(), force=True)
            elif i % 5 == 2:
                prefect.set_flow_run_state(flow_run.id, Failed(message="chapter 2 failed\nTraceback..."), force=True)
            elif i % 5 == 3:
                prefect.set_flow_run_state(flow_run.id, Running(), force=True)
        running = runs["book003"]
    (config.output_dir / ".runs.json").write_text(json.dumps(runs))
    for name in runs:
        (config.manifests_dir / f"{name}.yaml").write_text(f"title: Title {name}\nauthor: A\nsource: x.txt\n")
    from uuid import UUID

    from prefect.client.schemas.actions import ArtifactCreate

    with get_client(sync_client=True) as prefect:  # what render-book's progress artifact holds
        prefect.create_artifact(ArtifactCreate(type="progress", data=25.0, flow_run_id=UUID(running),
                                               description="Synthesising 80 chunks of 'Title book003' (0 cached)"))
    backend = PrefectRunBackend(config)
    with ServerThread(create_app(config, backend)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        client.get("/books")  # warm: Prefect's client and settings
        backend.requests = 0
        started = time.perf_counter()
        listing = client.get("/books").json()
        seconds = time.perf_counter() - started
    assert len(listing) == 500
    assert backend.requests == 4, backend.requests  # 3 pages of runs + 1 of progress artifacts
    states = {b["name"]: b for b in listing}
    assert states["book000"]["status"] == "queued" and states["book001"]["status"] == "completed"
    assert states["book002"]["status"] == "failed" and states["book002"]["message"] == "chapter 2 failed"
    assert states["book003"]["progress"]["chunks_total"] == 80 and states["book003"]["progress"]["chunks_done"] == 20
    assert UUID(states["book003"]["run_id"])
    print(f"\nGET /books, 500 books: {seconds * 1000:.0f} ms, {backend.requests} Prefect requests")


def cast_any(value: Any) -> Any:
    return value
