"""The shipped images, built and run as a user would (podman here; Docker elsewhere, same files).

Builds the `service` and `worker-cpu` targets of the Containerfile on a local Debian base image, renders
the quickstart book inside the service image, then brings up compose.yaml (a Prefect server, the HTTP
service, a Dask scheduler and a CPU worker) with podman-compose and sends a book over HTTP: the book's
chunks are synthesised on the worker container and the M4B comes back with its chapters.

Slow (the image build installs every package of the pipeline: 5 to 10 minutes on two cores, each
container start copies the image under vfs storage), so these run with `make test-containers`
(AUDIOBOOK_CONTAINER_TESTS=1), not in `make test`; skipped, with the reason, where podman, buildah or
podman-compose is missing (`make setup-containers` installs them as root).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.media_probe import read_m4b_chapters
from tests.test_operate import free_port

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "localhost/debian-python:bookworm"
SERVICE_IMAGE = "localhost/audiobook-service:latest"
WORKER_IMAGE = "localhost/audiobook-worker-cpu:latest"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
TOKEN = "container-test-token"

# podman-compose from the test extra (1.2+: host networking works); Debian's 1.0.3 adds a bridge network beside it
COMPOSE = shutil.which("podman-compose", path=str(Path(sys.executable).parent)) or shutil.which("podman-compose")
missing = [tool for tool in ("podman", "buildah") if shutil.which(tool) is None] + ([] if COMPOSE else ["podman-compose"])
pytestmark = [
    pytest.mark.container,
    pytest.mark.skipif(os.environ.get("AUDIOBOOK_CONTAINER_TESTS") != "1",
                       reason="image builds take minutes: run them with make test-containers"),
    pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed (make setup-containers, as root)"),
]


def run(*cmd: str, timeout: float = 1200, check: bool = True, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done  # type: ignore[no-any-return]


def image_exists(name: str) -> bool:
    return run("podman", "image", "exists", name, check=False).returncode == 0


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The local base image (Debian's Python 3.11 from its packages: no registry is reachable here),
    then the service and worker-cpu targets, built with the layer cache so the second reuses the first."""
    if not image_exists(BASE_IMAGE):
        tar = tmp_path_factory.mktemp("base") / "base.tar"
        run("mmdebstrap", "--variant=minbase", "--include=python3,python3-venv,python3-pip,ca-certificates",
            "bookworm", str(tar))
        run("podman", "import", str(tar), BASE_IMAGE)
    secret = ["--secret", f"id=ca,src={CA_BUNDLE}"] if CA_BUNDLE.is_file() else []
    for target, tag in (("service", SERVICE_IMAGE), ("worker-cpu", WORKER_IMAGE)):
        run("buildah", "bud", "--layers", "--isolation", "chroot", "--network", "host", *secret,
            "--build-arg", f"BASE={BASE_IMAGE}", "--target", target, "-t", tag, "-f", "Containerfile", ".",
            cwd=ROOT, timeout=1800)
    yield
    run("podman", "image", "prune", "-f", check=False)  # dangling layers of earlier builds


def test_service_image_renders_the_quickstart(images: None, tmp_path: Path) -> None:
    out = tmp_path / "output"
    out.mkdir()
    run("podman", "run", "--rm", "--network", "none", "-v", f"{out}:/data/output",
        SERVICE_IMAGE, "audiobook", "render", "quickstart", timeout=900)
    book = out / "quickstart"
    chapters = read_m4b_chapters(next(book.glob("*.m4b")))
    titles = [title for title, _ in chapters]
    assert titles[0] == "Opening Credits" and titles[-1] == "End Credits"
    assert len(titles) >= 4  # the quickstart's two chapters between the credits
    assert len(list((book / "mp3").glob("*.mp3"))) == len(titles)
    report = json.loads((book / "report.json").read_text())
    assert report["engine"] == "piper" and report["duration_s"] > 20


def _book_zip() -> bytes:
    manifest = (
        "title: Compose Book\nauthor: Test Author\nengine: piper\nvoice: joe\nquality: draft\n"
        "credits: false\nspeak_titles: false\nsource: book.txt\n"
    )
    text = "Chapter One\n\nThe first line is read on a worker. It is short.\n\nChapter Two\n\nThe second one as well.\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("compose-book/compose-book.yaml", manifest)
        archive.writestr("compose-book/book.txt", text)
    return buffer.getvalue()


def test_compose_stack_renders_a_submitted_book_on_its_worker(images: None, tmp_path: Path) -> None:
    import httpx

    ports = {"PREFECT_PORT": free_port(), "DASK_PORT": free_port(), "DASK_DASHBOARD_PORT": free_port(),
             "AUDIOBOOK_PORT": free_port()}
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "AUDIOBOOK_TOKEN": TOKEN,
           "PREFECT_API_URL": f"http://127.0.0.1:{ports['PREFECT_PORT']}/api",
           "DASK_SCHEDULER": f"tcp://127.0.0.1:{ports['DASK_PORT']}"}
    # Host networking: this machine's sandbox has no container bridge; each service gets its own port.
    override = tmp_path / "host-network.yaml"
    override.write_text("services:\n" + "".join(
        f"  {name}: {{network_mode: host}}\n" for name in ("prefect", "scheduler", "service", "worker")))
    project = f"audiobooktest{ports['AUDIOBOOK_PORT']}"
    compose = [str(COMPOSE), "-p", project, "-f", str(ROOT / "compose.yaml"), "-f", str(override)]
    run(*compose, "up", "-d", "prefect", "scheduler", "service", "worker", env=env, cwd=ROOT, timeout=600)
    server = f"http://127.0.0.1:{ports['AUDIOBOOK_PORT']}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(f"{server}/healthcheck", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, run(*compose, "logs", env=env, cwd=ROOT, check=False).stdout[-4000:]
            time.sleep(2)
        sent = httpx.post(f"{server}/books", files=[("file", ("compose-book.zip", _book_zip(), "application/zip"))],
                          headers=headers, timeout=120)
        assert sent.status_code == 202, sent.text
        deadline = time.monotonic() + 600
        while (status := httpx.get(f"{server}/books/compose-book", timeout=10).json())["status"] != "completed":
            assert status["status"] != "failed", status
            assert time.monotonic() < deadline, status
            time.sleep(3)
        m4b = tmp_path / "book.m4b"
        m4b.write_bytes(httpx.get(f"{server}/books/compose-book/download/compose-book.m4b", headers=headers,
                                  timeout=60).content)
        assert [title for title, _ in read_m4b_chapters(m4b)] == ["Chapter One", "Chapter Two"]
        # The scheduler's only worker is the worker container: every chunk was synthesised there.
        report = httpx.get(f"{server}/books/compose-book/download/report.json", headers=headers, timeout=30).json()
        assert report["chunks_synthesized"] >= 2
    finally:
        run(*compose, "down", "-v", env=env, cwd=ROOT, check=False, timeout=300)
