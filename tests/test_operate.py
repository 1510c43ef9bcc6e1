"""Operating the pipeline: the nightly flow, `audiobook serve` with a real Prefect server and its
deployments, and a render on a local Dask cluster of two worker processes."""

from __future__ import annotations

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

import pytest

from tasks.encode import read_m4b_chapters
from tests.conftest import write_manifest

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
    first = nightly(manifests_dir=str(manifests))
    assert sorted(first["rendered"]) == ["a", "b"] and first["skipped"] == []
    second = nightly(manifests_dir=str(manifests))
    assert second["rendered"] == [] and sorted(second["skipped"]) == ["a", "b"]
    (manifests / "b.txt").write_text("Beta text, edited. Also short.")
    third = nightly(manifests_dir=str(manifests))
    assert third["rendered"] == ["b"] and third["skipped"] == ["a"]
    report = json.loads((workdirs["output"] / "b" / "report.json").read_text())
    assert report["chunks_synthesized"] == 1  # only the edited text


@pytest.fixture
def served(workdirs: dict[str, Path], tmp_path: Path) -> Iterator[dict[str, str]]:
    """`audiobook serve` in its own process group, on free ports, with private folders."""
    http_port, prefect_port = free_port(), free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "AUDIOBOOK_MANIFESTS_DIR": str(workdirs["book"]),
        "AUDIOBOOK_TOKEN": "secret-token",
    }
    env.pop("PREFECT_API_URL", None)
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "serve", "--port", str(http_port), "--prefect-port", str(prefect_port),
         "--cron", "0 3 * * *"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                with urllib.request.urlopen(f"{base}/healthcheck", timeout=2):
                    break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("serve did not come up:\n" + (tmp_path / "serve.log").read_text())
        yield {"http": base, "api": f"http://127.0.0.1:{prefect_port}/api", "log": str(tmp_path / "serve.log")}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


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

    manifest = write_manifest(tmp_path, BOOK.format(engine="piper", voice="joe"), name="served.yaml")
    submitted = subprocess.run(
        [sys.executable, "-m", "flows.cli", "submit", str(manifest), "--server", served["http"]],
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
    })
    report = render_book.with_options(task_runner=runner)(str(manifest))
    assert report["chunks_synthesized"] == report["chunks_total"] == 40
    assert (workdirs["output"] / "book" / "book.m4b").exists()
    pids = {json.loads(p.read_text())["worker_pid"] for p in (workdirs["cache"] / "chunks").rglob("*.json")}
    assert len(pids) == 2 and os.getpid() not in pids, pids
    again = render_book.with_options(task_runner=DaskTaskRunner(cluster_kwargs={
        "n_workers": 2, "threads_per_worker": 1, "processes": True, "resources": {"GPU": 1},
    }))(str(manifest))
    assert again["chunks_synthesized"] == 0
