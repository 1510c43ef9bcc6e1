"""Operating the pipeline: the nightly flow, `audiobook serve` with a real Prefect server and its
deployments, and a render on a local Dask cluster of two worker processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_manifest
from tests.media_probe import read_m4b_chapters

ROOT = Path(__file__).resolve().parent.parent

BOOK = """
title: Served Book
author: Test Author
engine: {engine}
voice: {voice}
quality: draft
credits: false
speak_titles: false
chapters:
  - {{title: Only Chapter, text: "A short line, read aloud. And one more."}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.usefixtures("prefect_harness")
def test_nightly_renders_changed_books_and_skips_unchanged(workdirs: dict[str, Path]) -> None:
    from flows.nightly import nightly

    manifests = workdirs["book"]
    (manifests / "a.txt").write_text("Alpha text. It is short.")
    (manifests / "b.txt").write_text("Beta text. Also short.")
    for name in ("a", "b"):
        write_manifest(manifests, f"title: {name}\nauthor: X\nengine: fake\nvoice: v\nsource: {name}.txt\n",
                       name=f"{name}.yaml")
    (manifests / "c").mkdir()  # a book in its own folder, as POST /books stores it
    (manifests / "c" / "c.txt").write_text("Gamma text. Short too.")
    write_manifest(manifests / "c", "title: c\nauthor: X\nengine: fake\nvoice: v\nsource: c.txt\n", name="c.yaml")
    first = nightly(manifests_dir=str(manifests))
    assert sorted(first["rendered"]) == ["a", "b", "c"] and first["skipped"] == []
    second = nightly(manifests_dir=str(manifests))
    assert second["rendered"] == [] and sorted(second["skipped"]) == ["a", "b", "c"]
    (manifests / "b.txt").write_text("Beta text, edited. Also short.")
    third = nightly(manifests_dir=str(manifests))
    assert third["rendered"] == ["b"] and third["skipped"] == ["a", "c"]
    report = json.loads((workdirs["output"] / "b" / "report.json").read_text())
    assert report["chunks_synthesized"] == 1  # only the edited text


class Serve:
    """`audiobook serve` in its own process group, on free ports, with private folders; `kill()` ends
    it the hard way (SIGKILL to the group: the server, its Prefect server and its renders)."""

    def __init__(self, workdirs: dict[str, Path], tmp_path: Path, *args: str, **env: str) -> None:
        self.http_port, self.prefect_port = free_port(), free_port()
        self.log_path = tmp_path / f"serve-{self.http_port}.log"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
            "AUDIOBOOK_MANIFESTS_DIR": str(workdirs["book"]),
            "AUDIOBOOK_TOKEN": TOKEN,
            "PREFECT_RUNNER_POLL_FREQUENCY": "2",  # queued runs start within 2 s (default 10)
            **env,
        }
        self.env.pop("PREFECT_API_URL", None)
        self.args = args
        self.http = f"http://127.0.0.1:{self.http_port}"
        self.api = f"http://127.0.0.1:{self.prefect_port}/api"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Serve:
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--port", str(self.http_port), "--prefect-port",
             str(self.prefect_port), "--cron", "0 3 * * *", *self.args],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_text()
            try:
                with urllib.request.urlopen(f"{self.http}/healthcheck", timeout=2):
                    return self
            except OSError:
                time.sleep(1)
        pytest.fail("serve did not come up:\n" + self.log_text())

    def log_text(self) -> str:
        return self.log_path.read_text()[-4000:]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None
        self.log.close()

    def get(self, path: str) -> Any:
        request = urllib.request.Request(f"{self.http}{path}", headers=AUTH)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def wait_for(self, name: str, states: tuple[str, ...] = ("completed", "failed"), timeout_s: float = 300) -> Any:
        deadline = time.monotonic() + timeout_s
        status: Any = {}
        while time.monotonic() < deadline:
            status = self.get(f"/books/{name}")
            if status["status"] in states:
                return status
            time.sleep(1)
        pytest.fail(f"{name} did not reach {states}: {status}\n{self.log_text()}")


TOKEN = "secret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def served(workdirs: dict[str, Path], tmp_path: Path) -> Iterator[dict[str, str]]:
    server = Serve(workdirs, tmp_path, AUDIOBOOK_FAKE_DELAY_S="0.15").start()
    try:
        assert server.proc is not None
        yield {"http": server.http, "api": server.api, "log": str(server.log_path), "pid": str(server.proc.pid)}
    finally:
        server.kill(signal.SIGTERM)


@pytest.mark.server
def test_serve_registers_deployments_and_renders_a_submitted_book(
    served: dict[str, str], workdirs: dict[str, Path], tmp_path: Path
) -> None:
    env = {**os.environ, "PREFECT_API_URL": served["api"], "AUDIOBOOK_TOKEN": "secret-token"}
    script = """
import json, sys
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:
    out = {}
    for name in ("render-book/render-book", "nightly/nightly"):
        d = client.read_deployment_by_name(name)
        out[name] = [s.schedule.cron for s in d.schedules if hasattr(s.schedule, "cron")]
    print(json.dumps(out))
"""
    found = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    deployments = json.loads(found.stdout.strip().splitlines()[-1])
    assert deployments == {"render-book/render-book": [], "nightly/nightly": ["0 3 * * *"]}
    # One Prefect API: the server serve started. A client in serve that had not seen PREFECT_API_URL
    # when Prefect was imported would start a private one on the same database (a uvicorn child).
    import psutil

    children = [" ".join(c.cmdline()) for c in psutil.Process(int(served["pid"])).children(recursive=True)]
    assert sum("prefect.server.api.server" in c or "prefect server start" in c for c in children) == 1, children

    manifest = write_manifest(tmp_path, BOOK.format(engine="piper", voice="joe"), name="served.yaml")
    submitted = subprocess.run(
        [sys.executable, "-m", "cli", "submit", str(manifest), "--server", served["http"]],
        env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert submitted.returncode == 0, submitted.stderr
    assert "/runs/flow-run/" in submitted.stdout

    headers = {"Authorization": "Bearer secret-token"}
    deadline = time.monotonic() + 300
    status: dict[str, object] = {}
    while time.monotonic() < deadline:
        request = urllib.request.Request(f"{served['http']}/books/served", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            status = json.loads(response.read())
        if status["status"] in ("completed", "failed"):
            break
        time.sleep(2)
    assert status.get("status") == "completed", (status, Path(served["log"]).read_text()[-3000:])
    m4b = workdirs["output"] / "served" / "served.m4b"
    assert [t for t, _ in read_m4b_chapters(m4b)] == ["Only Chapter"]
    download = urllib.request.Request(f"{served['http']}/books/served/download/served.m4b", headers=headers)
    with urllib.request.urlopen(download, timeout=30) as response:
        assert response.read() == m4b.read_bytes()

    # Load: 50 requests at once (status and ranged downloads) while another book renders.
    load = load_while_rendering(served["http"], m4b, workdirs)
    print(f"\nload check: {json.dumps(load)}")
    assert load["errors"] == 0, load


def submit_text(http: str, name: str, text: str, **fields: str) -> dict[str, Any]:
    import httpx

    data = {"name": name, "title": name.title(), "author": "Test Author", "engine": "fake", "voice": "v",
            "quality": "draft", **fields}
    r = httpx.post(f"{http}/books", files=[("file", (f"{name}.txt", text.encode()))], data=data, headers=AUTH,
                   timeout=60)
    assert r.status_code == 202, r.text
    answer: dict[str, Any] = r.json()
    return answer


def paragraphs(n: int, tag: str) -> str:
    return "\n\n".join(f"Paragraph {i} of the {tag} book begins here. It has two sentences." for i in range(n))


def load_while_rendering(http: str, m4b: Path, workdirs: dict[str, Path], requests: int = 50) -> dict[str, Any]:
    """`requests` concurrent clients on loopback: half ask a rendering book's status, half fetch a
    random byte range of a finished M4B (checked against the file). Error count and latency percentiles."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    submit_text(http, "loaded", paragraphs(60, "loaded"))
    data = m4b.read_bytes()
    download = f"{http}/books/served/download/served.m4b"
    deadline = time.monotonic() + 120
    with httpx.Client(headers=AUTH, timeout=30) as probe:
        while probe.get(f"{http}/books/loaded").json()["status"] != "running":
            assert time.monotonic() < deadline, "the loaded book never started"
            time.sleep(0.5)

    def one(i: int) -> tuple[float, bool]:
        started = time.perf_counter()
        try:
            with httpx.Client(headers=AUTH, timeout=30) as client:
                if i % 2:
                    r = client.get(f"{http}/books/loaded")
                    ok = r.status_code == 200 and r.json()["status"] in ("running", "completed")
                else:
                    a = random.randrange(len(data) - 1)
                    b = min(len(data) - 1, a + random.randrange(1, 65536))
                    r = client.get(download, headers={"Range": f"bytes={a}-{b}"})
                    ok = r.status_code == 206 and r.content == data[a:b + 1]
        except httpx.HTTPError:
            ok = False
        return time.perf_counter() - started, ok

    with ThreadPoolExecutor(max_workers=requests) as pool:
        results = list(pool.map(one, range(requests)))
    with httpx.Client(headers=AUTH, timeout=30) as probe:
        rendering = probe.get(f"{http}/books/loaded").json()["status"]
    latencies = sorted(t * 1000 for t, _ in results)

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))], 1)

    return {"requests": requests, "errors": sum(1 for _, ok in results if not ok), "p50_ms": pct(50),
            "p95_ms": pct(95), "p99_ms": pct(99), "max_ms": round(latencies[-1], 1),
            "book_status_after": rendering}


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    for name in ("AUDIOBOOK_TOKEN", "AUDIOBOOK_TOKEN_FILE", "PREFECT_API_URL"):
        env.pop(name, None)
    for host in ("0.0.0.0", "::"):
        result = subprocess.run([sys.executable, "-m", "cli", "serve", "--host", host, "--port", str(free_port())],
                                env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "--host" in lines[0] and "AUDIOBOOK_TOKEN" in lines[0] and host in lines[0]
    assert not (tmp_path / "prefect-home" / "server.log").exists()  # refused before a Prefect server started


@pytest.mark.server
def test_restart_mid_render_resumes_and_the_queued_book_finishes(workdirs: dict[str, Path], tmp_path: Path) -> None:
    """Two books submitted at once: one renders, one waits in Prefect's queue. `serve` is killed mid-render
    (SIGKILL to its whole process group) and started again: both finish, the first from its cache, both
    on the server's resident engine worker, taking turns."""
    first = Serve(workdirs, tmp_path, "--concurrent-books", "1", AUDIOBOOK_FAKE_DELAY_S="0.3").start()
    try:
        a = submit_text(first.http, "alpha", paragraphs(60, "alpha"))
        b = submit_text(first.http, "beta", paragraphs(4, "beta"))
        assert a["status"] == b["status"] == "queued"
        first.wait_for("alpha", ("running",), timeout_s=120)
        chunks = workdirs["cache"] / "chunks"
        deadline = time.monotonic() + 120
        while len(list(chunks.rglob("*.json"))) < 8:
            assert time.monotonic() < deadline, first.log_text()
            time.sleep(0.3)
        assert first.get("/books/beta")["status"] == "queued"  # one book at a time: beta waits its turn
        listing = {book["name"]: book for book in first.get("/books")}
        # 60 paragraphs, the spoken title and five credit lines
        assert listing["alpha"]["progress"] is None or listing["alpha"]["progress"]["chunks_total"] == 66
    finally:
        first.kill()
    cached_at_kill = len(list((workdirs["cache"] / "chunks").rglob("*.json")))
    assert cached_at_kill < 60 and not (workdirs["output"] / "alpha" / "report.json").exists()

    # Started again with room for both at once: they share the one resident worker batch by batch, so
    # beta (one batch) does not wait behind the rest of alpha (four batches).
    second = Serve(workdirs, tmp_path, "--concurrent-books", "2", AUDIOBOOK_FAKE_DELAY_S="0.3").start()
    try:
        alpha = second.wait_for("alpha")
        beta = second.wait_for("beta")
        assert alpha["status"] == beta["status"] == "completed", (alpha, beta, second.log_text())
        assert "Requeued after a restart: alpha" in second.log_text()
    finally:
        second.kill(signal.SIGTERM)
    report = json.loads((workdirs["output"] / "alpha" / "report.json").read_text())
    assert report["chunks_total"] == 66 and report["chunks_cached"] >= cached_at_kill - 1 > 0
    # Resident engines: every chunk, of both books, was synthesised by the server's one long-lived worker
    # process per start (its model loaded once per server), never in a render's own process.
    pids = [json.loads(p.read_text())["worker_pid"] for p in (workdirs["cache"] / "chunks").rglob("*.json")]
    # every chunk of both books (their paragraphs, titles and credit lines; credit lines the books share are
    # stored once) came from one worker before the kill and one after
    assert len(pids) >= 64 + 2 and len(set(pids)) == 2, set(pids)
    finished = {n: (workdirs["output"] / n / "report.json").stat().st_mtime for n in ("alpha", "beta")}
    print(f"\nbeta finished {finished['alpha'] - finished['beta']:.1f} s before alpha")
    assert finished["beta"] + 5 < finished["alpha"], finished  # taking turns (first come, first served: ~2 s)
    assert alpha["run_id"] == a["run_id"]  # the same Prefect run, picked up again
    for name in ("alpha", "beta"):
        chapters = [t for t, _ in read_m4b_chapters(workdirs["output"] / name / f"{name}.m4b")]
        assert chapters == ["Opening Credits", name.title(), "End Credits"]


@pytest.mark.usefixtures("prefect_harness")
def test_render_on_a_local_dask_cluster_of_two_workers(
    workdirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks run in two Dask worker processes, routed by the GPU resource annotation."""
    from prefect.settings import PREFECT_API_URL
    from prefect_dask import DaskTaskRunner

    from flows.render import render_book

    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))  # the workers report to it too
    monkeypatch.setenv("AUDIOBOOK_TTS_RESOURCE", "GPU")
    monkeypatch.setenv("AUDIOBOOK_FAKE_DELAY_S", "0.1")  # so both workers get batches
    text = "\n\n".join(f"Paragraph {i} begins here. It has two sentences." for i in range(40))
    (workdirs["book"] / "long.txt").write_text(text)
    manifest = write_manifest(workdirs["book"], "title: D\nauthor: X\nengine: fake\nvoice: v\ncredits: false\n"
                                                  "speak_titles: false\nsource: long.txt\n")
    runner = DaskTaskRunner(cluster_kwargs={
        "n_workers": 2, "threads_per_worker": 1, "processes": True, "resources": {"GPU": 1},
        "dashboard_address": ":0",  # a free port: another cluster on this machine may hold 8787
    })
    report = render_book.with_options(task_runner=runner)(str(manifest)).to_dict()
    assert report["chunks_synthesized"] == report["chunks_total"] == 40
    assert (workdirs["output"] / "book" / "book.m4b").exists()
    pids = {json.loads(p.read_text())["worker_pid"] for p in (workdirs["cache"] / "chunks").rglob("*.json")}
    assert len(pids) == 2 and os.getpid() not in pids, pids
    again = render_book.with_options(task_runner=DaskTaskRunner(cluster_kwargs={
        "n_workers": 2, "threads_per_worker": 1, "processes": True, "resources": {"GPU": 1},
        "dashboard_address": ":0",  # a free port: another cluster on this machine may hold 8787
    }))(str(manifest)).to_dict()
    assert again["chunks_synthesized"] == 0
