"""Lose a machine, lose nothing: a render across hosts (network namespaces) survives a worker killed
mid-render.

A Dask scheduler and two Dask workers run as three hosts on a private /24 (tests/hosts.py); each worker
has its own AUDIOBOOK_CACHE_DIR, and the renderer's cache and output folders are hidden from them (tmpfs
over those paths in their mount namespaces): no shared disk. The renderer (`audiobook render --cluster`,
this machine) and a Prefect server bound to the bridge address stay in the root namespace. One worker
is killed with SIGKILL while it speaks a batch; the book completes with every chunk, and the report
says how many chunks ran twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import hosts as nshosts
from tests.conftest import write_manifest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PARAGRAPHS = 56  # per chapter; one chunk each: 7 tasks of 16 chunks
DELAY_S = "0.3"  # the fake engine's time per chunk: about 5 s a task, about 30 s a render

pytestmark = pytest.mark.hosts


@pytest.fixture(scope="module")
def can_make_hosts() -> None:
    if reason := nshosts.unavailable():
        pytest.skip(reason)


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(check: object, what: str, timeout_s: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.3)
    pytest.fail(f"{what} within {timeout_s:.0f} s" + (f":\n{log.read_text()[-3000:]}" if log else ""))


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDIOBOOK_", "PREFECT_"))}
    return {**env, "PYTHONPATH": str(ROOT), "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            **extra}


def sidecars(folder: Path) -> list[Path]:
    return list(folder.rglob("*.json")) if folder.exists() else []


def spoken_by_pid(folder: Path) -> list[int]:
    """The worker process that spoke each chunk stored so far (a sidecar being replaced is skipped)."""
    pids = []
    for path in sidecars(folder):
        with contextlib.suppress(OSError, ValueError, KeyError):
            pids.append(int(json.loads(path.read_text())["worker_pid"]))
    return pids


@pytest.mark.usefixtures("can_make_hosts")
def test_a_worker_killed_mid_render_loses_nothing(tmp_path: Path) -> None:
    renderer = {name: tmp_path / "renderer" / name for name in ("cache", "output", "voices", "book")}
    for path in renderer.values():
        path.mkdir(parents=True)
    logs = tmp_path / "logs"
    logs.mkdir()
    hosts = nshosts.Hosts(hide=(renderer["cache"], renderer["output"]))
    server: subprocess.Popen[bytes] | None = None
    try:
        # The Prefect server, on this machine's bridge address so that the hosts reach it.
        port = free_port(hosts.address)
        api = f"http://{hosts.address}:{port}/api"
        with open(logs / "prefect.log", "wb") as out:
            server = subprocess.Popen(
                [str(BIN / "prefect"), "server", "start", "--host", hosts.address, "--port", str(port)],
                env=base_env(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_UI_ENABLED="false"),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

        sched_ns, sched_ip = hosts.add("sched")
        scheduler = f"tcp://{sched_ip}:8786"
        hosts.start(sched_ns, [str(BIN / "dask"), "scheduler", "--host", sched_ip, "--port", "8786",
                               "--no-dashboard"], base_env(), logs / "scheduler.log", ROOT)
        workers = {}
        for name in ("w1", "w2"):
            ns, ip = hosts.add(name)
            own = tmp_path / f"{name}-cache"  # the worker's own cache: voice latents, engine files
            env = base_env(AUDIOBOOK_CACHE_DIR=str(own), AUDIOBOOK_FAKE_DELAY_S=DELAY_S, PREFECT_API_URL=api,
                           PREFECT_HOME=str(tmp_path / f"{name}-prefect-home"))
            workers[name] = hosts.start(ns, [str(BIN / "dask"), "worker", scheduler, "--host", ip, "--name", name,
                                             "--nthreads", "1", "--no-nanny", "--no-dashboard"],
                                        env, logs / f"{name}.log", ROOT)
        wait_until(lambda: urllib.request.urlopen(f"{api}/health", timeout=2).status == 200,
                   "the Prefect server answers", 180, logs / "prefect.log")
        from distributed import Client

        with Client(scheduler, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)

        for n, title in enumerate(("One", "Two")):
            text = "\n\n".join(f"Chapter {title}, paragraph {i}, begins here. It has two sentences."
                               for i in range(PARAGRAPHS))
            (renderer["book"] / f"{n}.txt").write_text(text)
        manifest = write_manifest(renderer["book"], "title: Hosts\nauthor: X\nengine: fake\nvoice: v\n"
                                  "credits: false\nspeak_titles: false\nchapters:\n"
                                  "  - {title: One, file: 0.txt}\n  - {title: Two, file: 1.txt}\n")
        env = base_env(PREFECT_API_URL=api, PREFECT_HOME=str(tmp_path / "renderer-prefect-home"),
                       AUDIOBOOK_CACHE_DIR=str(renderer["cache"]), AUDIOBOOK_OUTPUT_DIR=str(renderer["output"]),
                       AUDIOBOOK_VOICES_DIR=str(renderer["voices"]))
        started = time.monotonic()
        with open(logs / "render.log", "wb") as out:
            render = subprocess.Popen([sys.executable, "-m", "cli", "render", str(manifest), "--cluster",
                                       scheduler], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            # Mid-render: the victim's first batch is in the renderer's cache and it speaks its next.
            chunks_dir = renderer["cache"] / "chunks"
            victim = workers["w1"].pid
            wait_until(lambda: render.poll() is None and spoken_by_pid(chunks_dir).count(victim) >= 16,
                       "the first batch of w1 reaches the renderer", 240, logs / "render.log")
            time.sleep(2.0)
            at_kill = len(sidecars(chunks_dir))
            hosts.kill(workers["w1"])
            killed_at = time.monotonic() - started
            assert render.wait(timeout=300) == 0, (logs / "render.log").read_text()[-4000:]
        finally:
            if render.poll() is None:
                render.kill()
                render.wait()
        wall = time.monotonic() - started

        report = json.loads((renderer["output"] / "book" / "report.json").read_text())
        total = 2 * PARAGRAPHS
        assert report["chunks_total"] == report["chunks_synthesized"] == total
        assert [c["title"] for c in report["chapters"]] == ["One", "Two"]
        assert all(c["chunks"] == PARAGRAPHS and c["duration_s"] > PARAGRAPHS * 2 for c in report["chapters"])
        from tasks.cache import AudioCache
        from tests.media_probe import read_m4b_chapters

        assert [t for t, _ in read_m4b_chapters(renderer["output"] / "book" / "book.m4b")] == ["One", "Two"]
        records = sidecars(chunks_dir)
        cache = AudioCache(chunks_dir, ".flac")
        assert len(records) == total and all(cache.lookup(p.stem) for p in records)  # every chunk, intact
        spoken_by = spoken_by_pid(chunks_dir)
        survivor = workers["w2"].pid
        assert set(spoken_by) == {victim, survivor}, set(spoken_by)
        # What the lost worker had sent before it died is kept; the task it was speaking ran again elsewhere.
        assert spoken_by.count(victim) <= at_kill < total
        assert 1 <= report["chunks_run_twice"] <= 16, report["chunks_run_twice"]
        for name in ("w1", "w2"):  # the workers wrote no audio of their own
            assert not [p for p in (tmp_path / f"{name}-cache").rglob("*") if p.suffix in (".flac", ".wav")]
        print(f"\nlost worker: killed at {killed_at:.1f} s with {at_kill}/{total} chunks stored; render "
              f"{wall:.1f} s; chunks run twice {report['chunks_run_twice']}; spoken by the lost worker "
              f"{spoken_by.count(victim)}, by the other {spoken_by.count(survivor)}")
    finally:
        if server is not None and server.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, 9)
            server.wait(timeout=30)
        hosts.close()
