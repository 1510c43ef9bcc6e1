"""Scaling on simulated GPUs (`bench_scaling.py --simulated-gpu`): a 100,000-word book's chunks through the
render flow's synthesis on 1, 2, 4, 8, 16 and 32 Dask workers over loopback.

The engine ("simgpu") renders a batch of up to --batch chunks in one call that costs a fixed --latency-s
(time.sleep: a stand-in for a GPU decode, no CPU burned) and returns cheap precomputed audio (24 kHz,
a third of the text's expected duration, as bench_overhead's instant engine). The topology is the one
of many machines: a `dask scheduler` process and N `dask worker --no-nanny --nthreads 1` processes (one
per simulated GPU), each with its own AUDIOBOOK_CACHE_DIR, on 127.0.0.1; this process is the renderer
(real Prefect server, real `flows.render.synthesize_all`: Prefect tasks on a DaskTaskRunner, the audio
sent back as FLAC bytes and stored in the renderer's cache). Each worker count gets a fresh cluster and a
fresh cache; a warm-up flow (one task per worker) runs before the timed one.

Timed: the synthesis phase only (chapter assembly and encoding run on the renderer whatever the number
of workers). speedup_N = wall(1 worker) / wall(N workers); efficiency_N = speedup_N / N (target >= 0.9
up to 16 workers). The renderer's ceiling: the same book with --latency-s 0 (an instant engine) on
the --ceiling-workers cluster (after its timed run): chunks per second of wall, and chunks per CPU second of this (the renderer's)
process, what one free core would give it. Memory: the sum of the workers' resident memory (VmRSS,
after the run) at each count.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import common

WORDS = 100_000
_PLAN: Any = None  # the plan the benchmark flow synthesises (a global: a flow parameter would be serialised)


def register_sim_engine() -> None:
    from tasks.engines import register_engine

    engine = make_sim_engine()
    register_engine("simgpu", lambda: engine)


def make_sim_engine() -> Any:
    from collections.abc import Mapping, Sequence

    from tasks.engines.base import Clip, EngineInfo, SynthRequest
    from tasks.engines.fake import FakeEngine
    from tasks.errors import EngineError
    from tasks.plan import CHARS_PER_SECOND

    class SimGpuEngine(FakeEngine):
        """A batch costs `latency_s` (from the job's settings) of sleep, whatever its size."""

        def __init__(self) -> None:
            super().__init__(max_chars=200, sample_rate_hz=24000)
            self.info = EngineInfo(name="simgpu", version="simgpu-1", max_chars=200, sample_rate_hz=24000,
                                   supports_prompts=False, device="simulated-gpu")
            self.base = self._speak(" ".join(["harbour lantern"] * 12), seed=3)[2400:]

        def settings_for(self, quality: str) -> dict[str, Any]:
            return {"quality": quality, "latency_s": float(os.environ.get("BENCH_SIM_LATENCY_S", "1.0")),
                    "batch": int(os.environ.get("BENCH_SIM_BATCH", "64"))}

        def batch_capacity(self, settings: Mapping[str, Any]) -> int:
            return int(settings.get("batch", 64))

        def synthesize_many(self, requests: Sequence[SynthRequest]) -> list[Clip | EngineError]:
            if requests and (latency := float(requests[0].settings.get("latency_s", 0))):
                time.sleep(latency)
            return [self._clip(r.text) for r in requests]

        def synthesize(self, text: str, voice: str, settings: Mapping[str, Any], seed: int, *,
                       voices_dir: str | None = None) -> Clip:
            time.sleep(float(settings.get("latency_s", 0)))
            return self._clip(text)

        def _clip(self, text: str) -> Clip:
            expected = max(len(text) / CHARS_PER_SECOND, 0.3)
            return Clip(self.base[: int(max(0.2, expected / 3.0) * 24000)], 24000)

    return SimGpuEngine()


def rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


@contextlib.contextmanager
def loopback_cluster(n: int, work: Path) -> Iterator[dict[str, Any]]:
    """A `dask scheduler` and `n` single-thread workers (no nanny) on 127.0.0.1, in their own processes."""
    from distributed import Client

    dask_bin = str(Path(sys.executable).with_name("dask"))
    port = common._free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(common.REPO), "AUDIOBOOK_CACHE_DIR": str(work / f"worker-cache-{n}")}
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with open(logs / f"scheduler-{n}.log", "wb") as out:
            procs.append(subprocess.Popen([dask_bin, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                           "--no-dashboard"], env=env, stdout=out, stderr=subprocess.STDOUT))
        started = time.perf_counter()
        for i in range(n):
            with open(logs / f"worker-{n}-{i}.log", "wb") as out:
                procs.append(subprocess.Popen(
                    [dask_bin, "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
                     "--no-dashboard", "--memory-limit", "0", "--name", f"gpu{i}",
                     "--preload", "benchmarks.bench_scaling"],
                    env=env, stdout=out, stderr=subprocess.STDOUT, cwd=str(common.REPO)))
        deadline = time.monotonic() + 300
        while True:  # the scheduler may accept a connection before it can answer one
            try:
                with Client(address, timeout=60) as client:
                    client.wait_for_workers(n, timeout=900)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        yield {"address": address, "worker_pids": [p.pid for p in procs[1:]], "scheduler_pid": procs[0].pid,
               "start_s": round(time.perf_counter() - started, 1)}
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def cpu_seconds(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each group of processes, and (but for "flow", the
    parent of all the others) by their children."""
    import psutil

    out: dict[str, float] = {}
    for group, pids in groups.items():
        total = 0.0
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                for p in (proc, *(proc.children(recursive=True) if group != "flow" else ())):
                    with contextlib.suppress(psutil.Error):
                        times = p.cpu_times()
                        total += times.user + times.system
        out[group] = total
    return out


def machine_busy() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, all processes, ours and others'; wall clock now)."""
    import psutil

    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0), time.perf_counter()


@contextlib.contextmanager
def accounted(groups: dict[str, list[int]], into: dict[str, Any]) -> Iterator[None]:
    """Fill `into` with where the CPU went during the block: CPU seconds per group (the renderer's flow
    process, the Prefect server, the Dask scheduler, the workers), the machine's busy fraction of all its
    cores (other work included) and its 1-minute load average at the end."""
    before, (busy0, t0) = cpu_seconds(groups), machine_busy()
    yield
    after, (busy1, t1) = cpu_seconds(groups), machine_busy()
    into["cpu_s"] = {k: round(after[k] - before[k], 2) for k in groups}
    into["machine_busy_fraction"] = round((busy1 - busy0) / max((t1 - t0) * (os.cpu_count() or 1), 1e-9), 3)
    into["load_1m"] = round(os.getloadavg()[0], 2)


def synthesis_flow() -> Any:
    from prefect import flow

    from flows.render import synthesize_all

    @flow(name="bench-simulated-gpu", log_prints=False)
    def synthesise() -> dict[str, Any]:
        cpu0, t0 = time.process_time(), time.perf_counter()
        stats: dict[str, int] = {}
        results = synthesize_all(_PLAN, stats)
        return {"wall_s": time.perf_counter() - t0, "renderer_cpu_s": time.process_time() - cpu0,
                "chunks": len(results), "chunks_run_twice": stats.get("chunks_run_twice", 0)}

    return synthesise


def plan_for(manifest: Path, cache: Path, work: Path, latency_s: float, batch: int | None = None) -> Any:
    """The book's plan for the simulated engine at `latency_s` a batch, `batch` chunks a task (default:
    the benchmark's --batch)."""
    from tasks.manifest import load_manifest
    from tasks.plan import make_plan

    saved = os.environ["BENCH_SIM_BATCH"]
    os.environ["BENCH_SIM_LATENCY_S"] = str(latency_s)
    os.environ["BENCH_SIM_BATCH"] = str(batch or saved)
    try:
        return make_plan(load_manifest(manifest), engine_name="simgpu", cache_dir=cache, voices_dir=work / "voices")
    finally:
        os.environ["BENCH_SIM_BATCH"] = saved


def run_on(n: int, manifest: Path, warm: Path, work: Path, latency_s: float, tag: str,
           ceiling: dict[str, Any] | None = None, server_pid: int | None = None) -> dict[str, Any]:
    """Warm up `n` fresh workers (2n one-chunk tasks: each worker's first task sets up Prefect there),
    then time the book's synthesis on them; with `ceiling`
    (a dict to fill), the same book again on the same workers with an instant engine, fresh cache."""
    global _PLAN
    from prefect_dask import DaskTaskRunner

    flow = synthesis_flow()
    timed: dict[str, Any] = {}
    with loopback_cluster(n, work) as cluster:
        groups = {"flow": [os.getpid()], "prefect_server": [server_pid] if server_pid else [],
                  "scheduler": [cluster["scheduler_pid"]], "workers": cluster["worker_pids"]}
        _PLAN = plan_for(warm, work / f"cache-warm-{tag}", work, latency_s, batch=1)  # one chunk a task
        flow.with_options(task_runner=DaskTaskRunner(address=cluster["address"]))()
        _PLAN = plan_for(manifest, work / f"cache-{tag}", work, latency_s)
        with accounted(groups, timed):
            out = flow.with_options(task_runner=DaskTaskRunner(address=cluster["address"]))()
        workers_rss = [rss_mib(pid) for pid in cluster["worker_pids"]]
        if ceiling is not None:
            _PLAN = plan_for(manifest, work / f"cache-{tag}-instant", work, 0.0)
            with accounted(groups, ceiling):
                fast = flow.with_options(task_runner=DaskTaskRunner(address=cluster["address"]))()
            # the flow's own CPU inside the flow function (the outer figure also holds the flow run's and the
            # task runner's start and end, once per render), with the server's and the scheduler's
            renderer_side = fast["renderer_cpu_s"] + ceiling["cpu_s"]["prefect_server"] + ceiling["cpu_s"]["scheduler"]
            ceiling.update(workers=n, wall_s=round(fast["wall_s"], 3), chunks=fast["chunks"],
                           renderer_cpu_s=round(fast["renderer_cpu_s"], 3),
                           chunks_per_s=round(fast["chunks"] / fast["wall_s"], 1),
                           renderer_side_ms_per_chunk=round(1000 * renderer_side / fast["chunks"], 3),
                           worker_ms_per_chunk=round(1000 * ceiling["cpu_s"]["workers"] / fast["chunks"], 3))
    _PLAN = None
    return {"workers": n, "wall_s": round(out["wall_s"], 3), "renderer_cpu_s": round(out["renderer_cpu_s"], 3),
            "chunks": out["chunks"], "chunks_per_s": round(out["chunks"] / out["wall_s"], 1),
            "chunks_run_twice": out["chunks_run_twice"], "cluster_start_s": cluster["start_s"],
            "workers_rss_mib_total": round(sum(workers_rss)), "worker_rss_mib_max": round(max(workers_rss)),
            **timed}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 words on 1 and 2 workers, 0.2 s a batch")
    parser.add_argument("--words", type=int, default=None, help=f"book length (default {WORDS:,})")
    parser.add_argument("--latency-s", type=float, default=None, help="one batch's cost (default 2.0 s)")
    parser.add_argument("--batch", type=int, default=64, help="chunks per batch (the engine's capacity)")
    parser.add_argument("--workers", type=int, nargs="+", default=None)
    parser.add_argument("--ceiling-workers", type=int, default=None,
                        help="the worker count whose cluster also runs the instant engine (default 4; --quick 2)")
    args = parser.parse_args(argv)
    words = args.words or (2_000 if args.quick else WORDS)
    latency = args.latency_s if args.latency_s is not None else (0.2 if args.quick else 2.0)
    counts = args.workers or ([1, 2] if args.quick else [1, 2, 4, 8, 16, 32])
    args.ceiling_workers = args.ceiling_workers or (2 if args.quick else 4)
    if args.ceiling_workers not in counts:
        parser.error("--ceiling-workers must be one of --workers")
    os.environ["BENCH_SIM_BATCH"] = str(args.batch)

    with common.workdir("bench-scaling-gpu-") as work:
        common.bench_folders(work, cache=False)
        register_sim_engine()
        # ~5.6 characters a word, spaces included; every sentence numbered, so that no two chunks share a
        # text (the pipeline speaks a repeated chunk once) and the book has its full count of chunks
        paragraphs = [". ".join(f"{s} on page {i}" for s in p.rstrip(".").split(". ")) + "."
                      for i, p in enumerate(common.prose(int(words * 5.6 * 0.76), seed=1))]
        header = "title: Sim\nauthor: Bench\nengine: simgpu\nvoice: v\ncredits: false\nspeak_titles: false\n"
        manifest = common.write_chapters(work / "book", "sim", paragraphs, 20, header)
        n_words = sum(len(p.split()) for p in paragraphs)
        warm_paras = [f"Warm-up paragraph {i}." for i in range(2 * max(counts))]
        runs: dict[str, dict[str, Any]] = {}
        with common.prefect_server(work) as server:
            ceiling: dict[str, Any] = {}
            for n in counts:
                warm = common.write_chapters(work / f"warm-{n}", "warm", warm_paras[: 2 * n], 1, header)
                runs[str(n)] = run_on(n, manifest, warm, work, latency, f"n{n}",
                                      ceiling if n == args.ceiling_workers else None, server.get("pid"))
                print(f"  {n} workers: {runs[str(n)]}", flush=True)
    one = runs[str(counts[0])]["wall_s"] * counts[0]
    tasks = -(-runs[str(counts[0])]["chunks"] // args.batch)
    for run in runs.values():
        run["speedup"] = round(one / run["wall_s"], 2)
        run["efficiency"] = round(run["speedup"] / run["workers"], 3)
        # the best a whole number of equal tasks allows: the last round runs with idle workers
        run["efficiency_whole_tasks"] = round(tasks / (run["workers"] * -(-tasks // run["workers"])), 3)
    chunks = runs[str(counts[0])]["chunks"]
    if any(r["chunks"] != chunks for r in runs.values()):
        raise RuntimeError(f"the runs synthesised different chunk counts: {runs}")
    upto16 = [r["efficiency"] for r in runs.values() if r["workers"] <= 16]
    result: dict[str, Any] = {
        "simulated_gpu_efficiency_min_upto_16": min(upto16) if upto16 else None,
        "simulated_gpu_speedup": {k: r["speedup"] for k, r in runs.items()},
        "renderer_ceiling_chunks_per_s": ceiling["chunks_per_s"],
        "renderer_chunks_per_cpu_s": round(ceiling["chunks"] / max(ceiling["renderer_cpu_s"], 1e-9), 1),
        "renderer_side_chunks_per_cpu_s": round(1000 / max(ceiling["renderer_side_ms_per_chunk"], 1e-9), 1),
        "workers_rss_mib_at_max": runs[str(counts[-1])]["workers_rss_mib_total"],
        "runner": "prefect-dask DaskTaskRunner on a `dask scheduler` process and N `dask worker --no-nanny "
                  "--nthreads 1` processes over 127.0.0.1 (one process per simulated GPU)",
        "definition": "speedup_N = synthesis wall(1 worker) / wall(N); efficiency = speedup / N "
                      "(efficiency_whole_tasks: the most that whole tasks allow); ceiling: chunks / synthesis wall "
                      "with an instant engine; renderer_chunks_per_cpu_s: chunks per CPU second of the flow "
                      "process; renderer_side: the flow, the Prefect server and the Dask scheduler together; "
                      "cpu_s: CPU seconds per group of processes during the timed flow; machine_busy_fraction: "
                      "busy share of all the machine's cores (other work included)",
        "sizes": {"words": n_words, "chunks": chunks, "batch": args.batch, "tasks": -(-chunks // args.batch),
                  "latency_s": latency, "workers": counts, "ceiling_workers": args.ceiling_workers,
                  "cpus": os.cpu_count()},
        "prefect_server_startup_s": server["startup_s"],
        "runs": runs,
        "ceiling": ceiling,
    }
    rows: list[tuple[str, Any]] = [
        ("words / chunks / tasks", f"{n_words} / {chunks} / {result['sizes']['tasks']} "
                                   f"({args.batch} a batch, {latency} s each)"),
        ("workers: wall s, speed-up, x linear (whole tasks' best); CPU s flow/server/scheduler/workers; busy",
         ""),
        *((f"  {r['workers']}", f"{r['wall_s']}  {r['speedup']}x  {r['efficiency']} ({r['efficiency_whole_tasks']}); "
                               f"{'/'.join(str(v) for v in r['cpu_s'].values())}; {r['machine_busy_fraction']:.0%}")
          for r in runs.values()),
        ("workers' memory at the most workers (MiB, sum / max)",
         f"{runs[str(counts[-1])]['workers_rss_mib_total']} / {runs[str(counts[-1])]['worker_rss_mib_max']}"),
        ("renderer ceiling, instant engine (chunks/s wall)", ceiling["chunks_per_s"]),
        ("renderer chunks per CPU second (flow / flow+server+scheduler)",
         f"{result['renderer_chunks_per_cpu_s']} / {result['renderer_side_chunks_per_cpu_s']}"),
        ("instant run: worker CPU ms per chunk; machine busy", f"{ceiling['worker_ms_per_chunk']}; "
                                                              f"{ceiling['machine_busy_fraction']:.0%}"),
    ]
    print(common.table("scaling on simulated GPUs (sleep per batch), loopback Dask", rows), flush=True)
    return result
