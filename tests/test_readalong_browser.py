"""The book page's read-along in a real browser: Debian's Chromium driven by Selenium against the real
HTTP service (uvicorn on a loopback port). A chapter with a real MP3 and its WebVTT captions: play it
and the marked sentence moves on with the audio; seek and the mark follows at once.

Skipped when Chromium or its driver is not installed (`make setup-browser`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from service import FakeRunBackend, ServerThread, ServiceConfig, create_app
from tasks.captions import TimedSentence, vtt_text
from tasks.encode import BookTags, encode_mp3
from tests.test_browser import CHROMIUM, DRIVER

needs_chromium = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                    reason="Chromium and its driver are not installed (make setup-browser)")

SENTENCES = [("The tide turned.", 0.5, 1.6), ("Gulls came in low over the water.", 1.9, 3.4),
             ("Nobody spoke.", 3.7, 4.6), ("Then the bell rang twice.", 4.9, 6.2)]


def rendered_book(output_dir: Path) -> None:
    """A book folder as a render leaves it: one chapter MP3 (a tone where each sentence is), its
    captions and report.json."""
    folder = output_dir / "tide"
    (folder / "mp3").mkdir(parents=True)
    sr = 44100
    x = np.zeros(int(sr * 7.0), dtype=np.float32)
    for _, a, b in SENTENCES:
        t = np.arange(int(sr * (b - a))) / sr
        x[int(sr * a):int(sr * a) + t.size] = 0.2 * np.sin(2 * np.pi * 220 * t)
    wav = output_dir / "tide.wav"
    sf.write(wav, x, sr, subtype="PCM_16")
    encode_mp3(wav, folder / "mp3" / "01-tide.mp3", tags=BookTags(title="Tide", author="A"), chapter_title="Tide",
               track=1, total_tracks=1)
    timed = [TimedSentence(i + 1, text, a, b, i) for i, (text, a, b) in enumerate(SENTENCES)]
    (folder / "mp3" / "01-tide.vtt").write_text(vtt_text(timed), encoding="utf-8")
    (folder / "report.json").write_text(json.dumps({"title": "Tide", "author": "A",
                                                    "chapters": [{"title": "Tide", "duration_s": 7.0}]}))


@pytest.fixture
def page(tmp_path: Path) -> Iterator[str]:
    config = ServiceConfig(manifests_dir=tmp_path / "manifests", output_dir=tmp_path / "output")
    config.manifests_dir.mkdir()
    config.output_dir.mkdir()
    rendered_book(config.output_dir)
    with ServerThread(create_app(config, FakeRunBackend(config.output_dir))) as server:
        yield f"{server.url}/book/tide"


@pytest.fixture
def browser() -> Iterator[Any]:  # as tests/test_browser.py's, without downloads
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--window-size=390,844"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=str(DRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def test_captions_are_downloads_and_the_page_links_them(page: str) -> None:
    import httpx

    base = page.removesuffix("/book/tide")
    files = httpx.get(f"{base}/books/tide").json()["files"]
    assert "/books/tide/download/mp3/01-tide.vtt" in files
    r = httpx.get(f"{base}/books/tide/download/mp3/01-tide.vtt")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/vtt")
    assert r.text.startswith("WEBVTT") and r.text.count(" --> ") == len(SENTENCES)
    html = httpx.get(page).text
    assert '<track kind="captions" src="/books/tide/download/mp3/01-tide.vtt"' in html
    assert httpx.get(f"{base}/books/tide/download/mp3/01-tide.txt").status_code == 404  # still a closed list


@needs_chromium
def test_page_marks_the_sentence_being_read(browser: Any, page: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30, poll_frequency=0.05)
    browser.get(page)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".read-along .sentence")) == len(SENTENCES))
    shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".read-along .sentence")]
    assert shown == [text for text, _, _ in SENTENCES]

    def speaking(d: Any) -> str | None:
        marked = d.find_elements(By.CSS_SELECTOR, ".read-along .speaking")
        assert len(marked) <= 1
        return marked[0].get_attribute("data-cue") if marked else None

    assert speaking(browser) is None  # before the first sentence starts
    browser.execute_script("document.querySelector('audio.chapter').play()")
    wait.until(lambda d: speaking(d) == "s1")
    wait.until(lambda d: speaking(d) == "s2")  # playing on, the mark moves to the next sentence
    assert browser.execute_script("return document.querySelector('audio.chapter').currentTime") >= 1.9
    browser.execute_script("const a = document.querySelector('audio.chapter'); a.pause(); a.currentTime = 5.5;")
    wait.until(lambda d: speaking(d) == "s4")  # seeking forward moves it
    browser.execute_script("document.querySelector('audio.chapter').currentTime = 4.0;")
    wait.until(lambda d: speaking(d) == "s3")  # and back
    browser.execute_script("document.querySelector('audio.chapter').currentTime = 4.75;")  # the pause after s3
    wait.until(lambda d: browser.execute_script("return document.querySelector('audio.chapter').seeking") is False)
    assert speaking(browser) == "s3"
