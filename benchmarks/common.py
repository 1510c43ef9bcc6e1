"""Shared helpers of the benchmarks: environment, a real Prefect server, timers, peak memory, tables.

Every benchmark script puts the repository root on sys.path and imports this module as
`benchmarks.common`, so process-pool children can import it too.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RESULTS_DIR = REPO / "output" / "bench"


def quiet_prefect_env(prefect_home: Path | None = None) -> None:
    """Telemetry off, Prefect's console logs quiet, Prefect's home private. Call before importing Prefect."""
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
        os.environ[f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL"] = "CRITICAL"
    if prefect_home is not None:
        os.environ["PREFECT_HOME"] = str(prefect_home)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1.0) as response:  # noqa: S310
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def prefect_server(workdir: Path, timeout_s: float = 120.0) -> Iterator[dict[str, Any]]:
    """A real `prefect server start` (SQLite, UI off) on a free port, with PREFECT_API_URL pointing at it.

    A real server rather than ephemeral mode: ephemeral mode drops task-run records still in flight at
    exit and every process-pool child would start its own throwaway server (DESIGN.md). Yields
    {"url": ..., "startup_s": ...}. The environment is restored afterwards. When BENCH_PREFECT_API_URL
    names a healthy server (the smoke test shares one), that server is used instead.
    """
    shared = os.environ.get("BENCH_PREFECT_API_URL")
    if shared and _healthy(shared):
        saved_url = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = shared
        try:
            yield {"url": shared, "startup_s": 0.0, "shared": True}
        finally:
            if saved_url is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = saved_url
        return
    home = workdir / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "false",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    env.pop("PREFECT_API_URL", None)
    prefect_bin = Path(sys.executable).with_name("prefect")
    log = open(workdir / "prefect-server.log", "wb")  # noqa: SIM115 (closed below)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(prefect_bin), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME")}
    try:
        while not _healthy(url):
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited early; see {workdir / 'prefect-server.log'}")
            if time.perf_counter() - started > timeout_s:
                raise RuntimeError(f"prefect server not healthy after {timeout_s:.0f} s")
            time.sleep(0.2)
        startup = time.perf_counter() - started
        os.environ["PREFECT_API_URL"] = url
        os.environ["PREFECT_HOME"] = str(home)
        yield {"url": url, "startup_s": round(startup, 2), "pid": proc.pid}
    finally:
        if "prefect.logging.handlers" in sys.modules:  # send queued run logs before the server goes
            with contextlib.suppress(Exception):
                from prefect.logging.handlers import APILogWorker

                APILogWorker.drain_all(timeout=10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class Intervals:
    """Thread-safe record of (start, end) wall intervals per label: summed time and covered wall time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans: dict[str, list[tuple[float, float]]] = {}

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                end = time.perf_counter()
                with self._lock:
                    self.spans.setdefault(label, []).append((start, end))

        timed.__wrapped__ = fn  # type: ignore[attr-defined]
        return timed

    def total(self, label: str) -> float:
        """Seconds summed over calls (threads overlapping count twice)."""
        return sum(e - s for s, e in self.spans.get(label, []))

    def covered(self, label: str) -> float:
        """Wall seconds during which at least one call of `label` ran (the union of the intervals)."""
        spans = sorted(self.spans.get(label, []))
        total, cur_s, cur_e = 0.0, None, None
        for s, e in spans:
            if cur_e is None or s > cur_e:
                if cur_e is not None and cur_s is not None:
                    total += cur_e - cur_s
                cur_s, cur_e = s, e
            else:
                cur_e = max(cur_e, e)
        if cur_e is not None and cur_s is not None:
            total += cur_e - cur_s
        return total

    def count(self, label: str) -> int:
        return len(self.spans.get(label, []))


@contextlib.contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def peak_rss_mib() -> dict[str, float]:
    """Peak resident memory of this process (VmHWM), MiB; `children_max` is ru_maxrss of waited-for
    children, which on Linux also counts a forked child's pre-exec copy of this process (an upper bound)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                own = int(line.split()[1]) / 1024.0
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {"self": round(own, 1), "children_max": round(children, 1)}


def run_polling_rss(cmd: list[str], interval_s: float = 0.05) -> float:
    """Run `cmd` to completion (raising on failure) while sampling its VmHWM; returns the peak in MiB."""
    proc = subprocess.Popen(cmd)
    peak = 0.0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024.0)
        time.sleep(interval_s)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return peak


def run_child_json(args: list[str], *, env: dict[str, str] | None = None, timeout_s: float | None = None) -> Any:
    """Run `python args...` in a fresh process; its last stdout line is JSON, returned parsed."""
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout_s,
                          cwd=str(REPO))
    if proc.returncode != 0:
        raise RuntimeError(f"child {args[:3]} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return json.loads(lines[-1])


def hardware() -> dict[str, Any]:
    from tasks.encode import ffmpeg_exe

    try:
        version = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    except Exception as exc:  # noqa: BLE001 (informational only)
        version = f"unknown ({exc})"
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(), "cpu": cpu, "memory_gib": mem_gib, "python": platform.python_version(),
        "platform": platform.platform(), "ffmpeg": version, "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def atomic_write_json(path: Path, data: Any) -> Path:
    from tasks.atomic import write_text

    return write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def table(title: str, rows: list[tuple[str, Any]]) -> str:
    """A two-column text table."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.1f}"
        return str(v)

    width = max([len(k) for k, _ in rows] + [10])
    lines = [f"== {title} ==", *(f"  {k:<{width}}  {fmt(v)}" for k, v in rows)]
    return "\n".join(lines)


@contextlib.contextmanager
def workdir(prefix: str, keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def prose(n_chars: int, seed: int = 0) -> list[str]:
    """Unique English paragraphs (3-4 sentences each) totalling about `n_chars` characters."""
    import random

    rng = random.Random(seed)
    sentences = [
        "The lighthouse stood at the end of the long grey spit of land.",
        "Every evening the keeper climbed the narrow stairs with a lamp in one hand.",
        "Below him the sea rolled in slow heavy waves against the rocks.",
        "He kept a notebook of the ships that passed and the weather that came with them.",
        "Some nights the fog was so thick that the beam seemed to stop a few yards from the glass.",
        "In the morning the gulls gathered on the railing and waited for bread.",
        "His sister wrote to him once a month from the town across the bay.",
        "She asked whether he was lonely, and he always answered that he was not.",
        "The truth was that he liked the silence more than he could explain.",
        "On clear days he could see the hills of the mainland, blue and very far away.",
        "A fishing boat came by on Thursdays with flour, coffee and the newspapers.",
        "The skipper, a quiet man called Tom, rarely said more than a dozen words.",
        "In winter the storms came from the north and shook the whole tower.",
        "The keeper checked the clockwork twice each night and wound it by hand.",
        "Once, years ago, a schooner had run aground on the reef to the east.",
        "He still remembered the shouting in the dark and the cold of the water.",
        "Since then he had never missed a single night of duty.",
        "When spring returned the light changed, and the sea turned from grey to green.",
        "He planted a few potatoes in the thin soil behind the cottage.",
        "Most of them failed, but he planted them again every year all the same.",
        "Visitors sometimes walked out along the spit to look at the tower.",
        "He showed them the lens and told them how far its light could reach.",
        "They always asked the same questions, and he did not mind answering them.",
        "At dusk he lit the lamp, and the long arm of light swept across the water.",
    ]
    paragraphs: list[str] = []
    total = 0
    while total < n_chars:
        para = " ".join(rng.sample(sentences, rng.choice((3, 4))))
        if para in paragraphs:
            continue
        paragraphs.append(para)
        total += len(para)
    return paragraphs


def cli_entry(main: Callable[[list[str] | None], dict[str, Any]]) -> None:
    """Run a benchmark's main() from the command line; `--json PATH` also writes its result dict there."""
    argv = sys.argv[1:]
    out: Path | None = None
    if "--json" in argv:
        i = argv.index("--json")
        out = Path(argv[i + 1])
        del argv[i : i + 2]
    result = main(argv)
    if out is not None:
        atomic_write_json(out, result)


def run_bench(script: str, args: list[str], timeout_s: float | None = None) -> dict[str, Any]:
    """Run benchmarks/<script> in a fresh process (its table goes to our stdout); returns its result dict."""
    with workdir("bench-result-") as tmp:
        out = tmp / "result.json"
        subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args, "--json", str(out)],
                       check=True, cwd=str(REPO), timeout=timeout_s)
        return json.loads(out.read_text())  # type: ignore[no-any-return]


def init_single_thread_piper() -> None:
    """Process-pool initializer: this worker's Piper engine runs onnxruntime on one intra-op thread."""
    from tasks.engines import register_engine

    register_engine("piper", single_thread_piper)


def single_thread_piper() -> Any:
    """A PiperEngine whose ONNX session uses one intra-op and one inter-op thread."""
    from tasks.engines.piper import PiperEngine

    class SingleThreadPiper(PiperEngine):
        def session_options(self) -> Any:
            options = super().session_options()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            return options

    return SingleThreadPiper()


def write_chapters(folder: Path, name: str, paragraphs: list[str], chapters: int, header: str) -> Path:
    """A manifest `folder/name.yaml` (`header` + a chapters list) over `paragraphs` split evenly into
    at most `chapters` text files."""
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-len(paragraphs) // chapters)
    specs = []
    for c in range(chapters):
        part = paragraphs[c * per : (c + 1) * per]
        if not part:
            break
        (folder / f"{name}-{c}.txt").write_text("\n\n".join(part) + "\n")
        specs.append(f"  - {{title: Part {c + 1}, file: {name}-{c}.txt}}")
    manifest = folder / f"{name}.yaml"
    manifest.write_text(header + "chapters:\n" + "\n".join(specs) + "\n")
    return manifest


def write_piper_book(folder: Path, n_chars: int, chapters: int = 2, name: str = "piperbench", seed: int = 0) -> Path:
    """A manifest for the Piper voice over `n_chars` of unique prose split into `chapters`."""
    return write_chapters(folder, name, prose(n_chars, seed=seed), chapters,
                          "title: Piper Bench\nauthor: Bench\nengine: piper\nvoice: joe\nseed: 5\n"
                          "credits: false\nspeak_titles: false\n")  # the same text as Piper alone reads


def bench_folders(work: Path, *, cache: bool = True) -> None:
    """Point Prefect, the cache, the output and the voices of this process (and its children) into `work`."""
    quiet_prefect_env(work / "prefect-home")
    if cache:
        os.environ["AUDIOBOOK_CACHE_DIR"] = str(work / "cache")
    os.environ["AUDIOBOOK_OUTPUT_DIR"] = str(work / "output")
    os.environ["AUDIOBOOK_VOICES_DIR"] = str(work / "voices")
    (work / "voices").mkdir(exist_ok=True)
