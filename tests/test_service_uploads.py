# ruff: noqa: F811  (the fixtures svc and service_factory come from tests.test_service)
"""POST /books: a whole book in one request, and every way an upload can be wrong refused with a 4xx,
one line naming the field and the fix, and nothing stored or queued. Real HTTP (uvicorn on loopback);
renders are recorded by FakeRunBackend, the manifest is checked as `audiobook check` does."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_service import AUTH, TOKEN, Service, error_of, service_factory, snapshot, svc  # noqa: F401 - fixtures

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 40
STORY = "Chapter 1\n\nThe lamps of the harbour went out one by one.\n\nChapter 2\n\nMorning came slowly.\n"


def make_epub(title: str = "The Lamp Keeper", author: str = "Ada Quill", cover: bytes | None = JPEG,
              opf_extra: str = "", chapter_xhtml: str | None = None) -> bytes:
    """A small EPUB 3 by hand (zip of XHTML): our own words, the structure a real one has."""
    chapter = chapter_xhtml or (
        '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><head><title>One</title>'
        "</head><body><h1>The Harbour</h1><p>The lamps of the harbour went out one by one.</p>"
        "<p>Nobody on the quay noticed.</p></body></html>")
    cover_item = '<item id="cover" href="cover.jpg" media-type="image/jpeg" properties="cover-image"/>' if cover else ""
    opf = f"""<?xml version="1.0" encoding="utf-8"?>{opf_extra}
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">lamp-1</dc:identifier>
<dc:title>{title}</dc:title><dc:creator>{author}</dc:creator><dc:language>en</dc:language></metadata>
<manifest><item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
<item id="c1" href="one.xhtml" media-type="application/xhtml+xml"/>{cover_item}</manifest>
<spine><itemref idref="c1"/></spine></package>"""
    nav = ('<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml" '
           'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>Nav</title></head><body>'
           '<nav epub:type="toc"><ol><li><a href="one.xhtml">The Harbour</a></li></ol></nav></body></html>')
    container = ('<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                 '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
                 "</rootfiles></container>")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        z.writestr("META-INF/container.xml", container)
        z.writestr("OEBPS/content.opf", opf)
        z.writestr("OEBPS/nav.xhtml", nav)
        z.writestr("OEBPS/one.xhtml", chapter)
        if cover:
            z.writestr("OEBPS/cover.jpg", cover)
    return buf.getvalue()


def make_zip(members: dict[str, bytes], *, modes: dict[str, int] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if modes and name in modes:
                info.external_attr = modes[name] << 16
            z.writestr(info, data)
    return buf.getvalue()


def post_book(svc: Service, files: list[tuple[str, tuple[str, bytes]]], data: dict[str, str] | None = None,
              **kwargs: Any) -> httpx.Response:
    return svc.client.post("/books", files=files, data=data or {}, headers=kwargs.pop("headers", AUTH), **kwargs)


def refused(svc: Service, response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    error = error_of(response)
    for word in words:
        assert word in error, (word, error)
    assert "\n" not in error and "Traceback" not in error


# -- books that go in ---------------------------------------------------------------------------------


def test_a_text_document_alone_becomes_a_book(svc: Service) -> None:
    r = post_book(svc, [("file", ("harbour.txt", STORY.encode()))],
                  {"title": "Harbour Lights", "author": "Ada Quill", "narrator": "Joe", "quality": "draft"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["name"] == "harbour-lights" and body["run_id"] == "fake-1" and body["status_url"] == "/books/harbour-lights"
    assert body["manifest_built"] is True
    folder = svc.config.manifests_dir / "harbour-lights"
    assert sorted(p.name for p in folder.iterdir()) == ["harbour-lights.yaml", "harbour.txt"]
    assert svc.runs.started == [("harbour-lights", (folder / "harbour-lights.yaml").absolute())]
    stored = svc.client.get("/books/harbour-lights/manifest", headers=AUTH)
    assert stored.status_code == 200
    for line in ("title: Harbour Lights", "author: Ada Quill", "narrator: Joe", "engine: piper", "voice: joe",
                 "quality: draft", "source: harbour.txt"):
        assert line in stored.text
    # Nothing but the book is left: no staging folder, no spooled upload.
    assert sorted(p.name for p in svc.config.manifests_dir.iterdir()) == ["harbour-lights"]
    listing = svc.client.get("/books").json()
    assert [(b["name"], b["title"], b["author"], b["status"]) for b in listing] == [
        ("harbour-lights", "Harbour Lights", "Ada Quill", "queued")]
    # The stored manifest, edited, goes back in with overwrite.
    edited = stored.content.replace(b"quality: draft", b"quality: standard")
    r = post_book(svc, [("manifest", ("harbour-lights.yaml", edited)), ("file", ("harbour.txt", STORY.encode()))],
                  {"overwrite": "true"})
    assert r.status_code == 202, r.text
    assert b"quality: standard" in (folder / "harbour-lights.yaml").read_bytes()


def test_an_epub_alone_gives_its_title_author_and_cover(svc: Service) -> None:
    inspected = svc.client.post("/inspect", files={"file": ("lamp.epub", make_epub())}, headers=AUTH)
    assert inspected.status_code == 200, inspected.text
    assert inspected.json() | {"description": None} == {
        "title": "The Lamp Keeper", "author": "Ada Quill", "authors": ["Ada Quill"], "language": "en",
        "description": None, "has_cover": True}
    r = post_book(svc, [("file", ("lamp.epub", make_epub()))])
    assert r.status_code == 202, r.text
    name = r.json()["name"]
    assert name == "the-lamp-keeper"
    folder = svc.config.manifests_dir / name
    manifest = (folder / f"{name}.yaml").read_text()
    assert "title: The Lamp Keeper" in manifest and "author: Ada Quill" in manifest and "cover: cover.jpg" in manifest
    assert (folder / "cover.jpg").read_bytes() == JPEG
    cover = svc.client.get(f"/books/{name}/cover", headers=AUTH)
    assert cover.status_code == 200 and cover.headers["content-type"] == "image/jpeg" and cover.content == JPEG
    assert svc.client.get("/books").json()[0]["cover_url"] == f"/books/{name}/cover"
    # The form's fields win over the document's own.
    r = post_book(svc, [("file", ("lamp.epub", make_epub()))], {"name": "mine", "title": "My Title"})
    assert r.status_code == 202 and r.json()["manifest"]["title"] == "My Title"


def test_a_manifest_with_its_files(svc: Service) -> None:
    manifest = b"title: Two Rooms\nauthor: B. Wren\ncover: front.png\nchapters:\n  - {title: First, file: one.txt}\n" \
               b"  - {title: Second, file: two.txt}\n"
    r = post_book(svc, [("manifest", ("rooms.yaml", manifest)), ("file", ("one.txt", b"The first room was blue.")),
                        ("file", ("two.txt", b"The second room was green.")), ("file", ("front.png", PNG))])
    assert r.status_code == 202, r.text
    folder = svc.config.manifests_dir / "rooms"
    assert sorted(p.name for p in folder.iterdir()) == ["front.png", "one.txt", "rooms.yaml", "two.txt"]
    assert (folder / "rooms.yaml").read_bytes() == manifest
    assert r.json()["manifest_built"] is False
    # The manifest may also come as one of the files.
    r = post_book(svc, [("file", ("rooms2.yaml", manifest)), ("file", ("one.txt", b"Blue.")),
                        ("file", ("two.txt", b"Green.")), ("file", ("front.png", PNG))])
    assert r.status_code == 202 and r.json()["name"] == "rooms2", r.text


def test_a_zip_of_a_manifest_folder(svc: Service) -> None:
    manifest = b"title: Zipped\nauthor: C. Finch\nsource: text/story.md\n"
    archive = make_zip({"zipped/zipped.yaml": manifest, "zipped/text/story.md": b"# One\n\nA small story.\n"})
    r = post_book(svc, [("file", ("zipped.zip", archive))])
    assert r.status_code == 202, r.text
    folder = svc.config.manifests_dir / "zipped"
    assert (folder / "zipped.yaml").read_bytes() == manifest
    assert (folder / "text" / "story.md").read_text() == "# One\n\nA small story.\n"


def test_a_new_voice_s_clips_go_to_the_voices_folder(service_factory: Any, tmp_path: Path) -> None:
    svc: Service = service_factory(voices_dir=tmp_path / "voices")
    r = post_book(svc, [("file", ("story.txt", STORY.encode())), ("file", ("a.wav", WAV)), ("file", ("b.wav", WAV))],
                  {"title": "Voiced", "author": "D", "engine": "fake", "voice": "newvoice"})
    assert r.status_code == 202, r.text
    assert sorted(p.name for p in (tmp_path / "voices" / "newvoice").iterdir()) == ["a.wav", "b.wav"]
    assert not (svc.config.manifests_dir / "voiced" / "a.wav").exists()
    before = snapshot(svc.config)
    r = post_book(svc, [("file", ("story.txt", STORY.encode())), ("file", ("a.wav", WAV))],
                  {"name": "other", "title": "Voiced", "author": "D", "engine": "fake", "voice": "newvoice"})
    refused(svc, r, 409, "voice", "newvoice")
    assert snapshot(svc.config) == before


def test_existing_books_need_overwrite(svc: Service) -> None:
    files = [("file", ("harbour.txt", STORY.encode()))]
    fields = {"name": "h", "title": "T", "author": "A"}
    assert post_book(svc, files, fields).status_code == 202
    before = snapshot(svc.config)
    refused(svc, post_book(svc, files, fields), 409, "overwrite")
    assert snapshot(svc.config) == before and len(svc.runs.started) == 1
    assert post_book(svc, files, {**fields, "overwrite": "true"}).status_code == 202


def test_a_render_that_cannot_start_stores_nothing(svc: Service) -> None:
    svc.runs.fail_start = RuntimeError("Prefect is down")
    before = snapshot(svc.config)
    refused(svc, post_book(svc, [("file", ("s.txt", STORY.encode()))], {"title": "T", "author": "A"}), 503, "Prefect is down")
    assert snapshot(svc.config) == before


# -- the page's session cookie -----------------------------------------------------------------------


def test_the_token_cookie_is_httponly_strict_and_same_origin(svc: Service) -> None:
    assert svc.client.post("/session", data={"token": "wrong"}).status_code == 401
    r = svc.client.post("/session", data={"token": TOKEN})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("audiobook_token=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert TOKEN not in cookie  # a session value derived from the token, not the token
    with httpx.Client(base_url=svc.base, cookies={"audiobook_token": r.cookies["audiobook_token"]}) as browser:
        assert browser.get("/session").json()["signed_in"] is True
        files = [("file", ("s.txt", STORY.encode()))]
        ok = browser.post("/books", files=files, data={"title": "T", "author": "A"},
                          headers={"Origin": svc.base})
        assert ok.status_code == 202, ok.text
        cross = browser.post("/books", files=files, data={"title": "T", "author": "A", "name": "x2"},
                             headers={"Origin": "http://evil.example"})
        refused(svc, cross, 403, "another site")
    svc.client.cookies.clear()
    assert svc.client.get("/session").json() == {"token_required": True, "signed_in": False, "public_downloads": False}


def test_retry_a_failed_book(svc: Service) -> None:
    assert post_book(svc, [("file", ("s.txt", STORY.encode()))], {"name": "r", "title": "T", "author": "A"}).status_code == 202
    refused(svc, svc.client.post("/books/r/retry", headers=AUTH), 409, "queued")
    svc.runs.set_state("r", "failed", "chapter 1: the engine stopped")
    assert svc.client.get("/books/r").json()["message"] == "chapter 1: the engine stopped"
    assert svc.client.post("/books/r/retry").status_code == 401
    r = svc.client.post("/books/r/retry", headers=AUTH)
    assert r.status_code == 202 and r.json()["run_id"] == "fake-2"
    refused(svc, svc.client.post("/books/nope/retry", headers=AUTH), 404, "nope")


def test_the_listing_asks_the_backend_once(svc: Service) -> None:
    for i in range(30):
        folder = svc.config.manifests_dir / f"b{i}"
        folder.mkdir()
        (folder / f"b{i}.yaml").write_text(f"title: Book {i}\nauthor: A\nsource: x.txt\n")
        svc.runs.set_state(f"b{i}", "running", done=i, total=30, eta_s=5.0)
    svc.runs.queries = 0
    listing = svc.client.get("/books").json()
    assert len(listing) == 30 and svc.runs.queries == 1
    entry = next(b for b in listing if b["name"] == "b7")
    assert entry["progress"] == {"chunks_done": 7, "chunks_total": 30, "eta_s": 5.0}
    assert svc.client.get("/").status_code == 200 and svc.runs.queries == 2


# -- refusals: each a 4xx naming the field and the fix, and nothing stored --------------------------------

BILLION_LAUGHS = '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
XXE_CHAPTER = ('<?xml version="1.0"?><!DOCTYPE html [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
               '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>&secret;</p></body></html>')


def _bomb() -> bytes:
    return make_zip({"bomb/bomb.yaml": b"title: B\nauthor: A\nsource: big.txt\n", "bomb/big.txt": b"a" * (40 << 20)})


def _no_container_epub() -> bytes:
    data = make_zip({"OEBPS/content.opf": b"<package/>"})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        with zipfile.ZipFile(io.BytesIO(data)) as src:
            for info in src.infolist():
                z.writestr(info.filename, src.read(info))
    return buf.getvalue()


BAD_UPLOADS: dict[str, tuple[list[tuple[str, tuple[str, bytes]]], dict[str, str], int, tuple[str, ...]]] = {
    "wrong type: a PNG named .epub": ([("file", ("book.epub", PNG))], {}, 415, ("book.epub", "EPUB")),
    "wrong type: a zip named .txt": ([("file", ("book.txt", make_zip({"a.txt": b"x"})))], {"title": "T", "author": "A"},
                                     415, ("book.txt", "UTF-8 text")),
    "wrong type: text named .jpg": ([("file", ("s.txt", b"x")), ("file", ("c.jpg", b"not an image"))],
                                    {"title": "T", "author": "A"}, 415, ("c.jpg", "JPEG")),
    "unknown suffix": ([("file", ("book.pdf", b"%PDF-1.4"))], {}, 415, ("book.pdf", ".epub")),
    "zip-slip": ([("file", ("b.zip", make_zip({"b.yaml": b"title: T\nauthor: A\nsource: x.txt\n", "x.txt": b"x",
                                              "../evil.txt": b"gotcha"})))], {}, 422, ("../evil.txt", "relative")),
    "absolute member": ([("file", ("b.zip", make_zip({"/etc/evil.txt": b"x"})))], {}, 422, ("/etc/evil.txt",)),
    "zip bomb": ([("file", ("bomb.zip", _bomb()))], {}, 413, ("big.txt", "zip bomb")),
    "symlink member": ([("file", ("b.zip", make_zip({"b.yaml": b"title: T\nauthor: A\nsource: x.txt\n",
                                                     "x.txt": b"/etc/passwd"}, modes={"x.txt": stat.S_IFLNK | 0o777})))],
                       {}, 422, ("x.txt", "symbolic link")),
    "device member": ([("file", ("b.zip", make_zip({"dev": b""}, modes={"dev": stat.S_IFCHR | 0o600})))], {}, 422,
                      ("dev", "device")),
    "malformed EPUB: not a zip": ([("file", ("b.epub", b"PK\x03\x04" + b"\x00" * 100))], {}, 422, ("b.epub", "zip")),
    "malformed EPUB: no container": ([("file", ("b.epub", _no_container_epub()))], {}, 422, ("container.xml",)),
    "malformed EPUB: broken package": ([("file", ("b.epub", make_epub(title="<unclosed")))], {}, 422,
                                       ("content.opf", "well-formed")),
    "malformed EPUB: no text": ([("file", ("b.epub", make_epub(chapter_xhtml='<html xmlns="http://www.w3.org/1999/xhtml">'
                                                                             '<body></body></html>')))], {}, 422, ("b.epub",)),
    "XML entities: billion laughs": ([("file", ("b.epub", make_epub(opf_extra=BILLION_LAUGHS)))], {}, 422,
                                     ("content.opf", "entities")),
    "XML entities: external entity": ([("file", ("b.epub", make_epub(chapter_xhtml=XXE_CHAPTER)))], {}, 422,
                                      ("one.xhtml", "entities")),
    "no title anywhere": ([("file", ("s.txt", STORY.encode()))], {"author": "A"}, 422, ("title",)),
    "no author anywhere": ([("file", ("s.txt", STORY.encode()))], {"title": "T"}, 422, ("author",)),
    "two documents": ([("file", ("a.txt", b"x")), ("file", ("b.txt", b"y"))], {"title": "T", "author": "A"}, 422,
                      ("exactly one document",)),
    "manifest names a missing file": ([("manifest", ("m.yaml", b"title: T\nauthor: A\nsource: gone.txt\n"))], {}, 422,
                                      ("gone.txt",)),
    "manifest escapes its folder": ([("manifest", ("m.yaml", b"title: T\nauthor: A\nsource: ../../x.txt\n")),
                                     ("file", ("x.txt", b"x"))], {}, 422, ("leaves the manifest's folder",)),
    "bad manifest key": ([("manifest", ("m.yaml", b"title: T\nauthor: A\nvoise: joe\nsource: x.txt\n")),
                          ("file", ("x.txt", b"x"))], {}, 422, ("did you mean 'voice'",)),
    "unknown engine": ([("file", ("s.txt", STORY.encode()))], {"title": "T", "author": "A", "engine": "nope"}, 422,
                       ("engine",)),
    "bad name": ([("file", ("s.txt", STORY.encode()))], {"title": "T", "author": "A", "name": "../x"}, 400, ("name",)),
    "bad file name": ([("file", (".hidden.txt", b"x"))], {"title": "T", "author": "A"}, 400, ("file name",)),
    "unknown field": ([("file", ("s.txt", b"x"))], {"titel": "T"}, 400, ("titel",)),
    "not multipart": ([], {"title": "T"}, 415, ("multipart/form-data",)),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_uploads_are_refused_and_nothing_is_stored(svc: Service, case: str) -> None:
    files, fields, status, words = BAD_UPLOADS[case]
    before = snapshot(svc.config)
    refused(svc, post_book(svc, files, fields), status, *words)
    assert snapshot(svc.config) == before and svc.runs.started == []


def test_size_limits_per_file_and_per_request(service_factory: Any) -> None:
    svc: Service = service_factory(max_file_bytes=10_000, max_request_bytes=25_000, max_unpacked_bytes=30_000)
    before = snapshot(svc.config)
    fields = {"title": "T", "author": "A"}
    refused(svc, post_book(svc, [("file", ("s.txt", b"a " * 6000))], fields), 413, "s.txt", "10000 byte")
    three = [("file", (f"{i}.txt", b"a " * 4500)) for i in range(3)]
    refused(svc, post_book(svc, three, fields), 413, "25000 byte")
    big_zip = make_zip({"b/b.yaml": b"title: T\nauthor: A\nsource: x.txt\n",
                        **{f"b/{i}.txt": bytes(range(256)) * 36 for i in range(4)}})
    refused(svc, post_book(svc, [("file", ("b.zip", big_zip))]), 413, "30000 byte")
    assert snapshot(svc.config) == before and svc.runs.started == []
    assert post_book(svc, [("file", ("s.txt", STORY.encode()))], fields).status_code == 202


def test_uploads_need_the_token(svc: Service) -> None:
    files = [("file", ("s.txt", STORY.encode()))]
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused(svc, post_book(svc, files, {"title": "T", "author": "A"}, headers=headers), 401, "token")
        assert svc.client.post("/inspect", files={"file": ("s.txt", b"x")}, headers=headers).status_code == 401
    assert list(svc.config.manifests_dir.iterdir()) == []
    assert json.loads(svc.client.get("/engines").text)[0]["name"] == "piper"


# -- audiobook submit ---------------------------------------------------------------------------------


def run_submit(svc: Service, *args: str) -> Any:
    import os
    import subprocess
    import sys

    env = {**os.environ, "AUDIOBOOK_TOKEN": TOKEN}
    return subprocess.run([sys.executable, "-m", "cli", "submit", *args, "--server", svc.base],
                          env=env, capture_output=True, text=True, timeout=120)


def test_submit_sends_a_manifest_with_its_files_or_a_bare_document(svc: Service, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    (folder / "text").mkdir(parents=True)
    (folder / "text" / "one.txt").write_text("The first room was blue.")
    (folder / "front.png").write_bytes(PNG)
    (folder / "unrelated.txt").write_text("not named by the manifest: not sent")
    (folder / "rooms.yaml").write_text("title: Rooms\nauthor: B\ncover: front.png\n"
                                      "chapters:\n  - {title: First, file: text/one.txt}\n")
    done = run_submit(svc, str(folder / "rooms.yaml"))
    assert done.returncode == 0, done.stderr
    assert "submitted rooms: run fake-1" in done.stdout and "/books/rooms" in done.stdout
    stored = svc.config.manifests_dir / "rooms"
    assert sorted(str(p.relative_to(stored)) for p in stored.rglob("*") if p.is_file()) == [
        "front.png", "rooms.yaml", "text/one.txt"]

    epub = tmp_path / "lamp.epub"
    epub.write_bytes(make_epub())
    done = run_submit(svc, str(epub), "--quality", "draft", "--name", "lamp")
    assert done.returncode == 0, done.stderr
    assert "quality: draft" in (svc.config.manifests_dir / "lamp" / "lamp.yaml").read_text()

    again = run_submit(svc, str(epub), "--name", "lamp")
    assert again.returncode == 2 and "409" in again.stderr and "overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
