"""The service's page in a real browser: Debian's Chromium driven by Selenium (chromium-driver) against
a real `audiobook serve` (Prefect, the Piper voice, ffmpeg). Sign in once (the cookie is HttpOnly),
pick an EPUB (its title and author fill in), render it, watch the list reach "completed" without a
reload, play a chapter (the audio element reports a duration), download the M4B and read its chapters.
A page served from another local origin tries to replace a book and read a download from a service
without a token: the service refuses both.

Skipped when Chromium or its driver is not installed (`make setup-browser`)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.encode import ffmpeg_exe
from tests.media_probe import read_m4b_chapters
from tests.test_operate import TOKEN, Serve
from tests.test_service_uploads import make_epub

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                       reason="Chromium and its driver are not installed (make setup-browser)"),
    pytest.mark.server,
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=390,844"):  # a phone's screen
        options.add_argument(flag)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=str(DRIVER)))
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def real_jpeg(path: Path) -> Path:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=navy:s=96x128", "-frames:v", "1",
                    str(path)], check=True, timeout=60)
    return path


def test_upload_render_play_and_download_in_chromium(browser: Any, workdirs: dict[str, Path], tmp_path: Path) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    epub = tmp_path / "lamp.epub"
    epub.write_bytes(make_epub(cover=real_jpeg(tmp_path / "cover.jpg").read_bytes()))
    server = Serve(workdirs, tmp_path).start()
    try:
        wait = WebDriverWait(browser, 60)
        browser.get(server.http + "/")
        # Sign in once: the server sets the cookie; the page's script cannot read it.
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
        wait.until(lambda d: d.get_cookie("audiobook_token") and not d.find_elements(By.ID, "sign-in"))
        cookie = browser.get_cookie("audiobook_token")
        assert cookie is not None and cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert "audiobook_token" not in browser.execute_script("return document.cookie")
        # Usable on a phone: nothing wider than the screen.
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")

        # Pick the document: its own title and author fill in.
        browser.find_element(By.ID, "document").send_keys(str(epub))
        wait.until(lambda d: d.find_element(By.ID, "title").get_attribute("value") == "The Lamp Keeper")
        assert browser.find_element(By.ID, "author").get_attribute("value") == "Ada Quill"
        engines = [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "engine")).options]
        assert "piper" in engines
        Select(browser.find_element(By.ID, "engine")).select_by_value("piper")
        Select(browser.find_element(By.ID, "quality")).select_by_value("draft")
        browser.execute_script("window.notReloaded = true")
        browser.find_element(By.ID, "submit").click()
        wait.until(lambda d: "queued the-lamp-keeper" in d.find_element(By.ID, "upload-result").text)

        # The list follows the render without a reload, to "completed", with the cover as a thumbnail.
        row = '#books li[data-book="the-lamp-keeper"]'
        # (ignored: the list is rebuilt every 2 s, so an element found may be replaced before it is read)
        WebDriverWait(browser, 300, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, f"{row} .status")
            and d.find_element(By.CSS_SELECTOR, f"{row} .status").text in ("completed", "failed"))
        assert browser.find_element(By.CSS_SELECTOR, f"{row} .status").text == "completed", server.log_text()
        assert browser.execute_script("return window.notReloaded === true")
        thumb = browser.find_element(By.CSS_SELECTOR, f"{row} img.thumb")
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", thumb) == 96)

        # The book's page: chapters, a player per chapter, the M4B.
        browser.find_element(By.CSS_SELECTOR, f"{row} a.title").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "audio.chapter"))
        titles = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".chapter-title")]
        assert titles == ["Opening Credits", "The Harbour", "End Credits"]
        duration = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const audio = document.querySelector("audio.chapter");
            audio.muted = true;
            audio.play().then(() => setTimeout(() => done([audio.duration, audio.currentTime, audio.paused]), 700),
                              (e) => done(["play failed: " + e]));
        """)
        assert isinstance(duration[0], float) and duration[0] > 1.0, duration
        assert duration[1] > 0 and duration[2] is False  # it is playing
        m4b_duration = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const audio = document.getElementById("m4b");
            if (audio.readyState >= 1) done(audio.duration);
            else audio.addEventListener("loadedmetadata", () => done(audio.duration));
        """)
        assert m4b_duration > 1.0

        # Download the M4B through the page (the cookie goes with it) and read its chapters.
        browser.find_element(By.LINK_TEXT, "Download the M4B").click()
        target = browser.downloads / "the-lamp-keeper.m4b"
        deadline = time.monotonic() + 60
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert target.exists(), list(browser.downloads.iterdir())
        chapters = read_m4b_chapters(target)
        assert [t for t, _ in chapters] == ["Opening Credits", "The Harbour", "End Credits"]
        assert target.read_bytes() == (workdirs["output"] / "the-lamp-keeper" / "the-lamp-keeper.m4b").read_bytes()
    finally:
        server.kill()


ATTACK_PAGE = """<!doctype html><html><head><title>a page on another origin</title></head><body><script>
async function attack(target) {
  const form = new FormData();
  form.append("file", new Blob(["Chapter 1\\n\\nReplaced by another site.\\n"], {type: "text/plain"}), "s.txt");
  for (const [k, v] of [["name", "mine"], ["overwrite", "true"], ["title", "Pwned"], ["author", "X"]]) form.append(k, v);
  const outcome = (p) => p.then(async (r) => r.type + " " + r.status + " " + (r.type === "opaque" ? "" : await r.text()),
                                (e) => "refused: " + e.name);
  return {
    post: await outcome(fetch(target + "/books", {method: "POST", body: form, mode: "no-cors"})),
    read: await outcome(fetch(target + "/books/done/download/report.json")),
    readNoCors: await outcome(fetch(target + "/books/done/download/report.json", {mode: "no-cors"})),
  };
}
</script></body></html>"""


class Recorder:
    """An ASGI wrapper that records each request's method, path and answer status."""

    def __init__(self, app: Any) -> None:
        self.app, self.seen = app, []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def record(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope["method"], scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, record)


@pytest.mark.parametrize("page_host", ["localhost", "127.0.0.1"])  # another site; the same site, another port
def test_a_page_on_another_origin_cannot_submit_or_read_in_no_token_mode(
        browser: Any, tmp_path: Path, page_host: str) -> None:
    import http.server
    import threading

    from service import FakeRunBackend, ServerThread, create_app
    from tests.test_service import add_rendered_book, make_config, snapshot

    config = make_config(tmp_path, token=None, validate_plan=False)
    (config.manifests_dir / "mine").mkdir()
    (config.manifests_dir / "mine" / "mine.yaml").write_text("title: Mine\nauthor: Me\nsource: s.txt\n")
    (config.manifests_dir / "mine" / "s.txt").write_text("My own story.\n")
    add_rendered_book(config)
    before = snapshot(config)
    runs = FakeRunBackend(config.output_dir)
    app = Recorder(create_app(config, runs))

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            body = ATTACK_PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    page = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    try:
        with ServerThread(app) as service:
            browser.set_script_timeout(60)
            browser.get(f"http://{page_host}:{page.server_address[1]}/")
            result = browser.execute_async_script(
                "attack(arguments[0]).then(arguments[arguments.length - 1])", service.url)
    finally:
        page.shutdown()
    # The browser could not read the answers (no CORS), and the service refused both requests itself.
    assert result["post"] == "opaque 0 " and result["readNoCors"] == "opaque 0 ", result
    assert result["read"].startswith("refused: TypeError"), result
    assert ("POST", "/books", 403) in app.seen, app.seen
    assert [s for m, p, s in app.seen if p == "/books/done/download/report.json"] == [403, 403], app.seen
    assert snapshot(config) == before and runs.started == []


def test_the_page_works_under_its_security_headers(browser: Any, tmp_path: Path) -> None:
    """Sign in, fill the form from an EPUB, submit: the page's own script under the Content-Security-
    Policy, the HMAC cookie and the same-origin checks (a fake render backend; no Prefect)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from service import FakeRunBackend, ServerThread, create_app
    from service.auth import session_value
    from tests.test_service import TOKEN as SERVICE_TOKEN
    from tests.test_service import make_config

    epub = tmp_path / "lamp.epub"
    epub.write_bytes(make_epub())
    config = make_config(tmp_path, validate_plan=False)
    runs = FakeRunBackend(config.output_dir)
    with ServerThread(create_app(config, runs)) as service:
        wait = WebDriverWait(browser, 60)
        browser.get(service.url + "/")
        browser.find_element(By.ID, "token").send_keys(SERVICE_TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
        wait.until(lambda d: d.get_cookie("audiobook_token") and not d.find_elements(By.ID, "sign-in"))
        assert browser.get_cookie("audiobook_token")["value"] == session_value(SERVICE_TOKEN)
        browser.find_element(By.ID, "document").send_keys(str(epub))
        wait.until(lambda d: d.find_element(By.ID, "title").get_attribute("value") == "The Lamp Keeper")
        browser.find_element(By.ID, "submit").click()
        wait.until(lambda d: "queued the-lamp-keeper" in d.find_element(By.ID, "upload-result").text)
        assert [name for name, _ in runs.started] == ["the-lamp-keeper"]
        errors = [e for e in browser.get_log("browser") if "Content Security Policy" in e.get("message", "")]
        assert errors == []
