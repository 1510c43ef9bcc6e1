"""The service's page in a real browser: Debian's headless Chromium loads `/` from uvicorn on a loopback
port and must show each book, its status and its download links; the links serve a real M4B and MP3.

Skipped when Chromium is not installed (`apt-get install -y chromium`; `make test` installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from flows.service import FakeRunBackend, ServerThread, ServiceConfig, create_app
from tasks.audio import write_wav_atomic
from tasks.encode import BookTags, encode_m4b, encode_mp3

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium)")

TOKEN = "browser-token"
TITLE = "The <Quiet> Village & Co"


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.rows: dict[str, str] = {}
        self._row: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.hrefs.append(str(a["href"]))
        if tag == "tr" and a.get("data-book"):
            self._row, self._text = str(a["data-book"]), []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row is not None:
            self.rows[self._row] = " ".join(t.strip() for t in self._text if t.strip())
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None:
            self._text.append(data)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceConfig, FakeRunBackend]]:
    root = tmp_path_factory.mktemp("service")
    config = ServiceConfig(manifests_dir=root / "manifests", output_dir=root / "output", token=TOKEN)
    config.manifests_dir.mkdir()
    book = config.output_dir / "quiet"
    sr = 44_100
    t = np.arange(int(sr * 1.5)) / sr
    wav = write_wav_atomic(root / "tone.wav", (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    tags = BookTags(title=TITLE, author="Jane Doe")
    encode_mp3(wav, book / "mp3" / "01-the-storm.mp3", tags=tags, chapter_title="The Storm", track=1, total_tracks=1)
    encode_m4b([wav], ["The Storm"], book / "quiet.m4b", tags=tags)
    (book / "report.json").write_text(f'{{"title": "{TITLE}", "engine": "piper", "chunks_total": 1}}')
    (config.manifests_dir / "pending.yaml").write_text("title: Pending Book\nauthor: A\nsource: x.txt\n")
    runs = FakeRunBackend(config.output_dir)
    runs.set_state("pending", "running")
    yield config, runs


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": profile},
        )


def test_the_page_lists_books_status_and_downloads(library: tuple[ServiceConfig, FakeRunBackend],
                                                   tmp_path: Path) -> None:
    config, runs = library
    with ServerThread(create_app(config, runs)) as server:
        result = chromium("--dump-dom", f"{server.url}/")
        assert result.returncode == 0, result.stderr[-2000:]
        dom = result.stdout
        page = Links()
        page.feed(dom)
        assert set(page.rows) == {"quiet", "pending"}, dom[:2000]
        assert TITLE in page.rows["quiet"] and "completed" in page.rows["quiet"]
        assert "Pending Book" in page.rows["pending"] and "running" in page.rows["pending"]
        assert "<Quiet>" not in dom.split("<body", 1)[1].replace("&lt;Quiet&gt;", "")  # escaped, not markup
        downloads = [h for h in page.hrefs if "/download/" in h]
        assert downloads == [
            "/books/quiet/download/quiet.m4b",
            "/books/quiet/download/mp3/01-the-storm.mp3",
            "/books/quiet/download/report.json",
        ]

        shot = tmp_path / "page.png"
        result = chromium("--screenshot=" + str(shot), "--window-size=1100,700", f"{server.url}/")
        assert result.returncode == 0, result.stderr[-2000:]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 1000

        # The links serve the real files, whole and in ranges, to a client with the token.
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            for href, rel, ctype in ((downloads[0], "quiet.m4b", "audio/mp4"),
                                     (downloads[1], "mp3/01-the-storm.mp3", "audio/mpeg")):
                data = (config.output_dir / "quiet" / rel).read_bytes()
                r = client.get(href)
                assert r.status_code == 200 and r.content == data and r.headers["content-type"] == ctype
                r = client.get(href, headers={"Range": "bytes=4-11"})
                assert r.status_code == 206 and r.content == data[4:12]
            assert client.get(downloads[0], headers={"Authorization": ""}).status_code == 401
        from mutagen.mp4 import MP4

        info: Any = MP4(str(config.output_dir / "quiet" / "quiet.m4b")).info
        assert info.length > 1.0
