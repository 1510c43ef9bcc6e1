"""Scaling: the same Piper book on 1 and on 2 worker processes, fresh cache each run; or (--simulated-gpu)
a 100,000-word book's chunks on 1 to 32 simulated GPU workers.

    .venv/bin/python benchmarks/bench_scaling.py [--quick] [--chars N] [--no-threads]
    .venv/bin/python benchmarks/bench_scaling.py --simulated-gpu [--quick] [--words N] [--latency-s S]
        [--batch N] [--workers 1 2 4 ...]

--simulated-gpu: see benchmarks/scaling_gpu.py.

Worker processes come from Prefect's own `ProcessPoolTaskRunner`
(`render_book.with_options(task_runner=ProcessPoolTaskRunner(max_workers=N, initializer=...))`): every
synthesis and assembly task runs in a pool process, which loads its own Piper voice. For fairness each
worker's onnxruntime session uses ONE intra-op thread (the initializer registers such an engine), so
N workers use N cores. speedup_2_workers = wall(1 process) / wall(2 processes), whole render wall
(plan, synthesis, assembly, encodes; pool start and per-process voice load included). The same book
also runs on the distributed engine (prefect-dask, a temporary local cluster of 1 and 2 worker
processes): speedup_2_workers_dask.

The flow synthesises in batches of at most 16 chunks / 2,400 characters (`tasks.synth.batch_chunks`),
one Prefect task each, so a book needs at least two batches for two workers to help: the default
text (~4,000 characters, ~4.5 min of speech) makes two batches; --quick (~2,800) makes two uneven ones.

For reference (unless --no-threads) the flow's shipped runner is measured too: ThreadPoolTaskRunner
with 2 threads (AUDIOBOOK_WORKERS' default) and the stock engine (onnxruntime's default threads, one
synthesis at a time behind the engine's lock): this is how `audiobook render` runs today.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402


def render_once(manifest: Path, cache: Path, runner: Any) -> dict[str, Any]:
    from flows.render import render_book
    from tasks.engines import reset_engines

    reset_engines()
    os.environ["AUDIOBOOK_CACHE_DIR"] = str(cache)
    t0 = time.perf_counter()
    report = render_book.with_options(task_runner=runner)(str(manifest))
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 3), "chunks_synthesized": report.chunks_synthesized,
            "engine_seconds": report.engine_seconds, "duration_s": report.duration_s}


def dask_setup(worker: Any) -> None:
    """Dask worker preload (--simulated-gpu): this worker has the simulated GPU engine."""
    from benchmarks.scaling_gpu import register_sim_engine

    register_sim_engine()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    if argv is None:
        argv = sys.argv[1:]
    if "--simulated-gpu" in argv:
        from benchmarks.scaling_gpu import main as simulated

        return simulated([a for a in argv if a != "--simulated-gpu"])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="about 3.3 min of speech instead of 4.8 min")
    parser.add_argument("--chars", type=int, default=None)
    parser.add_argument("--no-threads", action="store_true", help="skip the thread-runner reference runs")
    args = parser.parse_args(argv)
    n_chars = args.chars or (2800 if args.quick else 4000)

    with common.workdir("bench-scaling-") as work:
        common.bench_folders(work, cache=False)  # each run gets its own cache
        manifest = common.write_piper_book(work / "book", n_chars, chapters=2)
        from tasks.engines import get_engine, reset_engines
        from tasks.manifest import load_manifest
        from tasks.plan import make_plan
        from tasks.synth import batch_chunks

        plan = make_plan(load_manifest(manifest), engine_name=None, cache_dir=work / "plan", voices_dir=work / "voices")
        batches = [len(b) for b in batch_chunks(plan.chunks)]
        get_engine("piper").synthesize("Warm up.", "joe", {}, 0)  # writes the noise-input model file once
        reset_engines()
        runs: dict[str, dict[str, Any]] = {}
        with common.prefect_server(work) as server:
            from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

            from benchmarks.bench_overhead import write_book
            from flows.render import render_book

            os.environ["AUDIOBOOK_CACHE_DIR"] = str(work / "cache-warm")
            render_book(str(write_book(work / "warm", 2, 1, name="warmup")))  # warms Prefect (fake engine)
            for n in (1, 2):
                runner = ProcessPoolTaskRunner(max_workers=n, initializer=common.init_single_thread_piper)
                runs[f"processes_{n}"] = render_once(manifest, work / f"cache-p{n}", runner)
            from prefect_dask import DaskTaskRunner

            for n in (1, 2):  # the distributed engine: a temporary local Dask cluster of n worker processes
                runner = DaskTaskRunner(cluster_kwargs={"n_workers": n, "threads_per_worker": 1, "processes": True})
                runs[f"dask_{n}"] = render_once(manifest, work / f"cache-d{n}", runner)
            if not args.no_threads:
                runs["threads_2"] = render_once(manifest, work / "cache-t2", ThreadPoolTaskRunner(max_workers=2))
    p1, p2 = runs["processes_1"]["wall_s"], runs["processes_2"]["wall_s"]
    result: dict[str, Any] = {
        "speedup_2_workers": round(p1 / p2, 3),
        "speedup_2_workers_dask": round(runs["dask_1"]["wall_s"] / runs["dask_2"]["wall_s"], 3),
        "runner": "prefect.task_runners.ProcessPoolTaskRunner with onnxruntime intra_op_num_threads=1 per "
                  "worker process; and prefect-dask DaskTaskRunner (local cluster, default onnxruntime threads)",
        "sizes": {"chars": n_chars, "speech_s": runs["processes_1"]["duration_s"], "cpus": os.cpu_count(),
                  "chunks": len(plan.chunks), "chunks_per_batch": batches},
        "prefect_server_startup_s": server["startup_s"],
        "runs": runs,
    }
    rows: list[tuple[str, Any]] = [
        ("speech s / cpus", f"{runs['processes_1']['duration_s']} / {os.cpu_count()}"),
        ("chunks per batch (one task each)", batches),
        ("1 process (1 ORT thread) wall s", p1),
        ("2 processes (1 ORT thread each) wall s", p2),
        ("speedup 2 workers", result["speedup_2_workers"]),
        ("Dask: 1 worker / 2 workers wall s", f"{runs['dask_1']['wall_s']} / {runs['dask_2']['wall_s']}"),
        ("speedup 2 Dask workers", result["speedup_2_workers_dask"]),
    ]
    if "threads_2" in runs:
        t2 = runs["threads_2"]["wall_s"]
        result["speedup_2_processes_vs_stock_2_threads"] = round(t2 / p2, 3)
        rows += [("stock: 2 threads (ORT default threads) s", t2),
                 ("2 processes vs stock 2 threads (speedup)", result["speedup_2_processes_vs_stock_2_threads"])]
    print(common.table("scaling: 1 vs 2 workers (Piper, CPU)", rows), flush=True)
    return result


if __name__ == "__main__":
    common.cli_entry(main)
