# ruff: noqa: F811  (the fixtures svc and service_factory come from tests.test_service)
"""The service against a hostile web page, a careless or hostile upload and a token guesser: each
probe gets a 4xx with a one-line reason and stores nothing. Real HTTP (uvicorn on loopback), forged
browser headers; tests/test_browser.py does the same from a real page on another origin."""

from __future__ import annotations

import io
import os
import random
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service import ServiceConfig
from service.auth import session_value
from service.config import parse_hosts
from service.library import public_message
from tests.test_service import (  # noqa: F401 - fixtures
    AUTH,
    GOOD,
    TOKEN,
    YAML,
    Service,
    add_rendered_book,
    service_factory,
    snapshot,
    svc,
)
from tests.test_service_uploads import STORY, make_zip, post_book, refused

DOC = [("file", ("s.txt", STORY.encode()))]
FIELDS = {"title": "T", "author": "A"}
CROSS = [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://localhost:1"},  # another port of this machine is another origin
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
]


@pytest.fixture
def open_svc(service_factory: Any) -> Service:
    """The default no-token mode: loopback clients only, no sign-in."""
    service: Service = service_factory(token=None, validate_plan=False)  # refusals here come before the plan
    return service


# -- cross-site writes and reads ------------------------------------------------------------------------


@pytest.mark.parametrize("headers", CROSS, ids=lambda h: "-".join(f"{k}={v}" for k, v in h.items()))
def test_no_token_mode_refuses_writes_from_another_site(open_svc: Service, headers: dict[str, str]) -> None:
    svc = open_svc
    assert post_book(svc, DOC, {**FIELDS, "name": "mine"}, headers={}).status_code == 202
    before, started = snapshot(svc.config), list(svc.runs.started)
    refused(svc, post_book(svc, DOC, {**FIELDS, "name": "mine", "overwrite": "true"}, headers=headers),
            403, "another site")
    refused(svc, svc.client.post("/manifests?name=mine&overwrite=true", content=GOOD, headers={**YAML, **headers}),
            403, "another site")
    refused(svc, svc.client.post("/books/mine/retry", headers=headers), 403, "another site")
    refused(svc, svc.client.post("/session", data={"token": "x"}, headers=headers), 403, "another site")
    refused(svc, svc.client.delete("/session", headers=headers), 403, "another site")
    assert snapshot(svc.config) == before and svc.runs.started == started


def test_no_token_mode_refuses_a_script_reading_a_download_from_another_site(open_svc: Service) -> None:
    svc = open_svc
    files = add_rendered_book(svc.config)
    url = "/books/done/download/done.m4b"
    for headers in CROSS:
        for mode in ("cors", "no-cors"):
            refused(svc, svc.client.get(url, headers={**headers, "Sec-Fetch-Mode": mode}), 403, "another site")
    refused(svc, svc.client.get("/books/done/manifest", headers={"Sec-Fetch-Site": "cross-site",
                                                                 "Sec-Fetch-Mode": "cors"}), 403, "another site")
    # The service's own page, a link followed from elsewhere, and clients that are not browsers still work.
    assert svc.client.get(url, headers={"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}).content \
        == files["done.m4b"]
    assert svc.client.get(url, headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}).status_code == 200
    assert svc.client.get(url).content == files["done.m4b"]


def test_the_same_origin_page_may_write(open_svc: Service) -> None:
    svc = open_svc
    own = {"Origin": svc.base, "Sec-Fetch-Site": "same-origin"}
    r = post_book(svc, DOC, {**FIELDS, "name": "own"}, headers=own)
    assert r.status_code == 202, r.text


def test_token_mode_refuses_cross_site_writes_even_with_the_token(svc: Service) -> None:
    before = snapshot(svc.config)
    refused(svc, post_book(svc, DOC, FIELDS, headers={**AUTH, "Origin": "http://evil.example"}), 403, "another site")
    refused(svc, post_book(svc, DOC, FIELDS, headers={**AUTH, "Sec-Fetch-Site": "cross-site"}), 403, "another site")
    assert snapshot(svc.config) == before and svc.runs.started == []


# -- the Host allow-list (DNS rebinding) ----------------------------------------------------------------


def test_no_token_mode_answers_only_to_loopback_host_names(open_svc: Service) -> None:
    svc = open_svc
    add_rendered_book(svc.config)
    port = svc.base.rsplit(":", 1)[1]
    evil = {"Host": f"rebind.evil.example:{port}"}
    before = snapshot(svc.config)
    for method, path in (("GET", "/books"), ("GET", "/books/done/download/done.m4b"), ("GET", "/"),
                         ("GET", "/books/done/download/report.json")):
        refused(svc, svc.client.request(method, path, headers=evil), 400, "AUDIOBOOK_ALLOWED_HOSTS")
    refused(svc, post_book(svc, DOC, FIELDS, headers=evil), 400, "rebind.evil.example")
    assert snapshot(svc.config) == before and svc.runs.started == []
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        assert svc.client.get("/books", headers={"Host": host}).status_code == 200


def test_allowed_hosts_for_a_reverse_proxy(service_factory: Any) -> None:
    svc: Service = service_factory(allowed_hosts=("books.example.com",))
    assert svc.client.get("/books", headers={"Host": "books.example.com"}).status_code == 200
    refused(svc, svc.client.get("/books", headers={"Host": "other.example.com"}), 400, "AUDIOBOOK_ALLOWED_HOSTS")
    # Behind the proxy the page's Origin is the public name, the Host the proxy's: listed, so same-site.
    r = post_book(svc, DOC, {**FIELDS, "name": "proxied"},
                  headers={**AUTH, "Origin": "https://books.example.com", "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 202, r.text
    assert parse_hosts(" Books.Example.com:443, 10.0.0.5 ,") == ("books.example.com", "10.0.0.5")
    assert parse_hosts("") is None and parse_hosts("*") == ("*",)


def test_allowed_hosts_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOBOOK_MANIFESTS_DIR", str(tmp_path))
    monkeypatch.setenv("AUDIOBOOK_ALLOWED_HOSTS", "books.example.com")
    assert ServiceConfig.from_env().allowed_hosts == ("books.example.com",)


# -- the page's headers, the cookie, token guesses -----------------------------------------------------


def test_security_headers_on_pages_and_errors(svc: Service) -> None:
    for r in (svc.client.get("/"), svc.client.get("/books/nope"), svc.client.get("/static/app.js")):
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "object-src 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"


def test_the_cookie_holds_a_session_value_not_the_token(svc: Service) -> None:
    r = svc.client.post("/session", data={"token": TOKEN})
    value = r.cookies["audiobook_token"]
    assert value == session_value(TOKEN) and TOKEN not in r.headers["set-cookie"]
    assert session_value(TOKEN) != session_value(TOKEN + "x")
    svc.client.cookies.clear()
    url = "/books/done/download/done.m4b"
    add_rendered_book(svc.config)
    assert svc.client.get(url, cookies={"audiobook_token": value}).status_code == 200
    refused(svc, svc.client.get(url, cookies={"audiobook_token": TOKEN}), 401, "sign in again")


def test_token_guesses_are_limited(svc: Service) -> None:
    for i in range(10):
        refused(svc, svc.client.post("/session", data={"token": f"guess-{i}"}), 401, "wrong token")
    r = svc.client.post("/session", data={"token": "guess-11"})
    refused(svc, r, 429, "too many wrong tokens")
    assert int(r.headers["retry-after"]) > 0
    # Even the right token waits, on the page and with the bearer header.
    refused(svc, svc.client.post("/session", data={"token": TOKEN}), 429, "wait")
    refused(svc, svc.client.post("/books", files=DOC, data=FIELDS, headers={"Authorization": "Bearer nope"}),
            429, "wait")


# -- uploads that used to fail with 500 ----------------------------------------------------------------


def test_a_file_name_too_long_in_bytes_is_refused(svc: Service) -> None:
    before = snapshot(svc.config)
    name = "書" * 190 + ".txt"  # 190 characters, 574 bytes in UTF-8: over the file system's 255
    refused(svc, post_book(svc, [("file", (name, STORY.encode()))], FIELDS), 400, "over 255 bytes", "shorter name")
    archive = make_zip({"book/book.yaml": b"title: T\nauthor: A\nsource: s.txt\n", "book/s.txt": STORY.encode(),
                        f"book/{'書' * 100}.txt": b"x"})
    refused(svc, post_book(svc, [("file", ("book.zip", archive))]), 422, "over 255 bytes")
    assert snapshot(svc.config) == before and svc.runs.started == []


def _duplicate_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr("book.yaml", "title: T\nauthor: A\nsource: s.txt\n")
        z.writestr("s.txt", STORY)
        z.writestr("s.txt", "another story")
    return buf.getvalue()


@pytest.mark.parametrize(("members", "words"), [
    ("duplicate", ("'s.txt'", "twice")),
    ("file-and-folder", ("member 'a/b.txt'", "both a file and a folder")),
    ("folder-then-file", ("'a'", "both a file and a folder")),
])
def test_zip_members_that_clash_are_refused(svc: Service, members: str, words: tuple[str, ...]) -> None:
    yaml = b"title: T\nauthor: A\nsource: s.txt\n"
    archive = {
        "duplicate": _duplicate_zip,
        "file-and-folder": lambda: make_zip({"book.yaml": yaml, "s.txt": STORY.encode(), "a": b"x", "a/b.txt": b"y"}),
        "folder-then-file": lambda: make_zip({"book.yaml": yaml, "s.txt": STORY.encode(), "a/b.txt": b"y", "a": b"x"}),
    }[members]()
    before = snapshot(svc.config)
    refused(svc, post_book(svc, [("file", ("book.zip", archive))]), 422, "book.zip", *words)
    assert snapshot(svc.config) == before and svc.runs.started == []


def _deep_yaml(depth: int = 5000) -> bytes:
    return b"title: T\nauthor: A\nsource: s.txt\nx: " + b"[" * depth + b"]" * depth + b"\n"


def test_yaml_nested_5000_deep_is_refused(svc: Service) -> None:
    before = snapshot(svc.config)
    deep = _deep_yaml()
    refused(svc, post_book(svc, [("manifest", ("deep.yaml", deep)), *DOC]), 422, "nesting deeper than")
    refused(svc, post_book(svc, DOC, {"manifest": deep.decode(), "name": "deep"}), 422, "nesting deeper than")
    refused(svc, post_book(svc, [("file", ("deep.zip", make_zip({"deep.yaml": deep, "s.txt": STORY.encode()})))]),
            422, "nesting deeper than")
    refused(svc, svc.client.post("/manifests?name=deep", content=deep, headers={**AUTH, **YAML}), 422, "nesting")
    assert snapshot(svc.config) == before and svc.runs.started == []


def test_an_oversized_yaml_in_a_zip_is_refused_before_parsing(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    from service import uploads

    parsed: list[int] = []
    real_parse = uploads.parse_yaml
    monkeypatch.setattr(uploads, "parse_yaml", lambda text, file: parsed.append(len(text)) or real_parse(text, file))
    rng = random.Random(7)
    lines = [f"k{i}: {rng.getrandbits(128):032x}\n" for i in range(60_000)]  # about 2.7 MB: over 1 MiB
    big = ("title: T\nauthor: A\nsource: s.txt\n" + "".join(lines)).encode()
    before = snapshot(svc.config)
    archive = make_zip({"big.yaml": big, "s.txt": STORY.encode()})
    refused(svc, post_book(svc, [("file", ("big.zip", archive))]), 413, "big.yaml", "byte limit for a manifest")
    refused(svc, post_book(svc, [("file", ("big.yaml", big)), *DOC]), 413, "byte limit")
    assert parsed == []  # refused on its size alone
    assert snapshot(svc.config) == before and svc.runs.started == []


def test_too_many_files_is_413_as_the_docs_say(svc: Service) -> None:
    before = snapshot(svc.config)
    files = [("file", (f"c{i}.txt", b"x")) for i in range(201)]
    refused(svc, post_book(svc, files, FIELDS), 413, "Too many files", "at most 200 files")
    assert snapshot(svc.config) == before
    readme = (Path(__file__).parent.parent / "docs" / "service.md").read_text()
    assert "at most 200 files (413)" in readme


# -- what the listing shows, staging left behind ----------------------------------------------------------


def test_the_listing_shows_failures_without_server_paths(svc: Service, caplog: pytest.LogCaptureFixture) -> None:
    assert post_book(svc, DOC, {**FIELDS, "name": "bad"}).status_code == 202
    full = ("'The Harbour', chapter 2, chunk 1 could not be rendered: Error opening "
            "'/srv/audiobook/cache/chunks/ab/abcdef.flac': Format not recognised.")
    svc.runs.set_state("bad", "failed", full)
    with caplog.at_level("INFO", logger="audiobook.service"):
        shown = {b["name"]: b["message"] for b in svc.client.get("/books").json()}["bad"]
        detail = svc.client.get("/books/bad").json()["message"]
    assert shown == detail == ("'The Harbour', chapter 2, chunk 1 could not be rendered: Error opening "
                               "'abcdef.flac': Format not recognised.")
    assert "/srv/audiobook/cache/chunks/ab/abcdef.flac" in caplog.text
    assert public_message("see https://example.com/a/b and manifests/x.yaml") == \
        "see https://example.com/a/b and manifests/x.yaml"


def test_staging_folders_left_by_a_killed_upload_are_removed_at_start(service_factory: Any, tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    left = manifests / ".incoming-abc123"
    (left / "spool").mkdir(parents=True)
    (left / "spool" / "half.epub").write_bytes(os.urandom(1000))
    (manifests / "kept").mkdir()
    (manifests / "kept" / "kept.yaml").write_bytes(GOOD)
    service_factory()
    assert sorted(p.name for p in manifests.iterdir()) == ["kept"]


# -- fuzzing the upload endpoint -----------------------------------------------------------------------


_names = st.sampled_from(["book.yaml", "s.txt", "a.epub", "c.jpg", "v.wav", "b.zip", "x.docx", "p.png", "../e.txt",
                          ".hidden", "書" * 90 + ".txt", "a\x00b.txt", "", "n.html", "x.bin"])
_bodies = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"title: T\nauthor: A\nsource: s.txt\n", STORY.encode(), b"PK\x03\x04", b"\x89PNG\r\n\x1a\n",
                     b"x: " + b"[" * 200, b"title: [\n", b"RIFF\x00\x00\x00\x00WAVE"]),
    st.lists(st.tuples(st.sampled_from(["a", "a/b.txt", "book.yaml", "s.txt", "../x", "/abs", "d/", ".h"]),
                       st.binary(max_size=60)), max_size=4).map(lambda ms: _zip_of(ms)),
)
_fields = st.dictionaries(st.sampled_from(["name", "title", "author", "engine", "voice", "quality", "overwrite",
                                           "manifest", "bogus"]),
                          st.text(max_size=40), max_size=4)


def _zip_of(members: list[tuple[str, bytes]]) -> bytes:
    import warnings

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are one of the probes
        for name, data in members:
            info = zipfile.ZipInfo(name)
            z.writestr(info, data)
    return buf.getvalue()


# The server's threads touch the global `random` state while examples are drawn (not the strategies).
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_fuzzed_multipart_uploads_never_get_a_5xx(svc: Service) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(files=st.lists(st.tuples(st.sampled_from(["file", "manifest", "cover"]), _names, _bodies), max_size=4),
           fields=_fields)
    def probe(files: list[tuple[str, str, bytes]], fields: dict[str, str]) -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                r = svc.client.post("/books", files=[(k, (n, b)) for k, n, b in files], data=fields, headers=AUTH)
            except httpx.HTTPError:  # a body the client itself cannot encode
                return
        assert r.status_code < 500, (r.status_code, r.text)
        if r.status_code >= 400:
            body = r.json()
            assert set(body) == {"error"} and "\n" not in body["error"]

    probe()
    assert not [p for p in svc.config.manifests_dir.iterdir() if p.name.startswith(".incoming-")]


def test_undeclared_xhtml_entities_are_not_read_aloud(tmp_path: Path) -> None:
    from tasks.documents import read_document

    page = ('<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
            '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>T</title></head><body><h1>The Quay</h1>'
            "<p>Tom &amp; Jerry &xxe;went home &eacute;arly.</p></body></html>")
    path = tmp_path / "quay.xhtml"
    path.write_text(page)
    assert read_document(path).chapters[0].paragraphs == ("Tom & Jerry went home \u00e9arly.",)
