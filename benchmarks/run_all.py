"""`make bench`: run every benchmark, print their tables, write output/bench/results.json.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only NAME ...] [--no-tortoise]

Each benchmark runs in its own process (Prefect's settings and AUDIOBOOK_WORKERS are read at import)
and prints its own table; this script then prints a summary against the targets and writes the
headline figures, the sizes used, each benchmark's full result, the hardware and the date.
Default sizes: 1 h and 10 h (10 x 1 h) books for post-processing, 5,000 chunks for the overhead,
~2.5 min of Piper speech end to end, ~4.8 min for scaling, a whole render's peak memory at 1 h and
10 h, 40 chunks with planted faults for the take check (10 also by transcription), and a 100,000-word
book on 1 to 32 simulated GPU workers. --quick: 0.1 h / 1 h, 1,000 chunks, ~50 s, ~3.3 min, 0.1 h / 1 h,
12 (4) chunks, 2,000 words on 1 and 2 workers. bench_tortoise.py runs at --size small on the CPU when
torch is importable (stock vs our per-chunk engine vs the batched one; the GPU figures come from
benchmarks/gpu_check.sh).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

BENCHES = {
    "postprocess": "bench_postprocess.py",
    "overhead": "bench_overhead.py",
    "pipeline_cpu": "bench_pipeline_cpu.py",
    "scaling": "bench_scaling.py",
    "memory": "bench_memory.py",
    "verify": "bench_verify.py",
    "scaling_gpu": "bench_scaling.py --simulated-gpu",
}
# key -> (bench, target description, passes?)
TARGETS: dict[str, tuple[str, str, Any]] = {
    "postprocess_ratio_vs_ffmpeg": ("postprocess", "<= 1.5", lambda v: v <= 1.5),
    "postprocess_peak_rss_mib_1h": ("postprocess", "< 1024 MiB", lambda v: v < 1024),
    "postprocess_peak_rss_mib_10h": ("postprocess", "< 1024 MiB and within 20% of 1 h", None),
    "overhead_ms_per_chunk": ("overhead", "<= 20 ms", lambda v: v <= 20),
    "cached_rerender_fraction": ("overhead", "<= 0.05", lambda v: v <= 0.05),
    "ship_audio_overhead_vs_paths": ("overhead", "<= 0.05", lambda v: v is not None and v <= 0.05),
    "pipeline_overhead_vs_piper": ("pipeline_cpu", "<= 0.25", lambda v: v <= 0.25),
    "speedup_2_workers": ("scaling", "(no target; ideal 2.0)", None),
    "simulated_gpu_efficiency_min_upto_16": ("scaling_gpu", ">= 0.9 x linear", lambda v: v >= 0.9),
    "renderer_ceiling_chunks_per_s": ("scaling_gpu", ">= 200 chunks/s", lambda v: v >= 200),
    "render_peak_rss_mib_1h": ("memory", "< 1024 MiB", lambda v: v < 1024),
    "render_peak_rss_mib_10h": ("memory", "< 1024 MiB and within 20% of 1 h", None),
    "verify_caught_fraction": ("verify", ">= 0.90", lambda v: v >= 0.9),
    "verify_clean_flagged_fraction": ("verify", "<= 0.02", lambda v: v <= 0.02),
    "verify_cost_vs_synth": ("verify", "<= 0.15", lambda v: v <= 0.15),
}
# Tortoise's targets are for a GPU (benchmarks/gpu_check.sh); on a CPU its figures are reported only.
TORTOISE_TARGETS: dict[str, tuple[str, str, Any]] = {
    "tortoise_speedup_batched_vs_per_chunk": ("tortoise", ">= 4 at draft on a GPU (CPU: reported)", None),
    "tortoise_speedup_batched_vs_stock": ("tortoise", ">= 8 at draft on a GPU (CPU: reported)", None),
}


def headline(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if post := results.get("postprocess"):
        out["postprocess_ratio_vs_ffmpeg"] = post["postprocess_ratio_vs_ffmpeg"]
        out["postprocess_ratio_vs_ffmpeg_large"] = post["postprocess_ratio_vs_ffmpeg_large"]
        out["postprocess_ratio_large_vs_scaled_ffmpeg"] = post["postprocess_ratio_large_vs_scaled_ffmpeg"]
        # the keys name the default sizes (1 h, 10 h); "postprocess_sizes" says what was really run
        out["postprocess_peak_rss_mib_1h"] = post["postprocess_peak_rss_mib_small"]
        out["postprocess_peak_rss_mib_10h"] = post["postprocess_peak_rss_mib_large"]
        out["postprocess_rss_10h_over_1h"] = post["postprocess_rss_large_over_small"]
        out["postprocess_sizes"] = post["sizes"]
    if over := results.get("overhead"):
        for key in ("overhead_ms_per_chunk", "total_ms_per_chunk", "cached_rerender_fraction",
                    "ship_audio_overhead_vs_paths", "definition", "sizes"):
            out[key if key not in ("definition", "sizes") else f"overhead_{key}"] = over[key]
    if pipe := results.get("pipeline_cpu"):
        for key in ("pipeline_overhead_vs_piper", "pipeline_overhead_vs_piper_engine", "noise_ms_per_chunk",
                    "adapter_overhead_vs_stock_piper", "pipeline_cpu_overhead_vs_piper"):
            out[key] = pipe[key]
        out["pipeline_sizes"] = pipe["sizes"]
    if scal := results.get("scaling"):
        out["speedup_2_workers"] = scal["speedup_2_workers"]
        out["speedup_2_workers_dask"] = scal.get("speedup_2_workers_dask")
        out["speedup_2_workers_runner"] = scal["runner"]
        out["speedup_2_processes_vs_stock_2_threads"] = scal.get("speedup_2_processes_vs_stock_2_threads")
        out["scaling_sizes"] = scal["sizes"]
    if gpu := results.get("scaling_gpu"):
        for key in ("simulated_gpu_efficiency_min_upto_16", "simulated_gpu_speedup", "renderer_ceiling_chunks_per_s",
                    "renderer_chunks_per_cpu_s", "workers_rss_mib_at_max"):
            out[key] = gpu[key]
        out["simulated_gpu_sizes"] = gpu["sizes"]
    if mem := results.get("memory"):
        # the keys name the default sizes (1 h, 10 h); "render_memory_sizes" says what was really run
        out["render_peak_rss_mib_1h"] = mem["peak_rss_mib_small"]
        out["render_peak_rss_mib_10h"] = mem["peak_rss_mib_large"]
        out["render_rss_10h_over_1h"] = mem["rss_large_over_small"]
        out["render_memory_sizes"] = mem["sizes"]
    if ver := results.get("verify"):
        out["verify_caught_fraction"] = ver["caught_fraction"]
        out["verify_clean_flagged_fraction"] = ver["clean_flagged_fraction"]
        out["verify_cost_vs_synth"] = ver["check_cost_vs_synth"]  # CPU seconds (bench_verify.py says why)
        out["verify_cost_vs_synth_wall"] = ver.get("check_cost_vs_synth_wall")
        out["verify_transcription_method"] = ver["transcription_method"]
        out["verify_sizes"] = ver["sizes"]
    if tort := results.get("tortoise"):
        out["tortoise_cpu"] = {k: v for k, v in tort.items() if not isinstance(v, dict | list)}
        for key in ("speedup_batched_vs_per_chunk", "speedup_batched_vs_stock"):
            if key in tort:
                out[f"tortoise_{key}"] = tort[key]
    return out


def verdicts(head: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, (_, target, ok) in {**TARGETS, **TORTOISE_TARGETS}.items():
        if key not in head:
            continue
        value = head[key]
        if key == "postprocess_peak_rss_mib_10h":
            passed: bool | None = value < 1024 and head["postprocess_rss_10h_over_1h"] <= 1.2
        elif key == "render_peak_rss_mib_10h":
            passed = value < 1024 and head["render_rss_10h_over_1h"] <= 1.2
        else:
            passed = ok(value) if ok else None
        mark = "" if passed is None else ("  MET" if passed else "  MISSED")
        rows.append((key, f"{value}   target {target}{mark}"))
    return rows


def run_tortoise(quick: bool) -> dict[str, Any] | None:
    if importlib.util.find_spec("torch") is None:
        print("bench_tortoise: torch is not installed; skipped", flush=True)
        return None
    import json
    import subprocess

    started = time.perf_counter()
    # The small size (6 x 256 AR): the smallest where batching shows on two cores. Stock, our per-chunk
    # engine and the batched one on the same 16 chunks (--quick: 8 chunks, fewer codes).
    size_args = ["--chunks", "8", "--tokens", "16"] if quick else ["--chunks", "16", "--tokens", "30"]
    proc = subprocess.run([sys.executable, str(common.REPO / "benchmarks" / "bench_tortoise.py"), "--size", "small",
                           "--device", "cpu", "--quality", "draft", "--steps", "2", "--no-table", *size_args],
                          cwd=str(common.REPO), timeout=1800)
    path = common.RESULTS_DIR / "tortoise.json"
    if proc.returncode != 0 or not path.exists():
        print(f"bench_tortoise failed (exit {proc.returncode}); skipped", flush=True)
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    data["bench_wall_s"] = round(time.perf_counter() - started, 1)
    return data


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes (see the module docstring)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES),
                        help="run only these benchmarks (their results replace theirs in --output; the rest stay)")
    parser.add_argument("--no-tortoise", action="store_true", help="skip bench_tortoise.py --size small")
    parser.add_argument("--output", type=Path, default=common.RESULTS_DIR / "results.json")
    args = parser.parse_args(argv)
    extra = ["--quick"] if args.quick else []
    results: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    for name in args.only or BENCHES:
        started = time.perf_counter()
        script, *options = BENCHES[name].split()
        results[name] = common.run_bench(script, [*options, *extra])
        seconds[name] = round(time.perf_counter() - started, 1)
    if not args.no_tortoise and not args.only:
        started = time.perf_counter()
        if (tort := run_tortoise(args.quick)) is not None:
            results["tortoise"] = tort
            seconds["tortoise"] = round(time.perf_counter() - started, 1)
    if args.only:  # the other benchmarks' figures in the file stay (each result records its own sizes)
        import json

        with contextlib.suppress(OSError, ValueError, AttributeError):
            earlier = json.loads(args.output.read_text())
            results = {**earlier.get("results", {}), **results}
            seconds = {**earlier.get("bench_wall_s", {}), **seconds}
    head = headline(results)
    document = {**head, "quick": args.quick, "bench_wall_s": seconds, "hardware": common.hardware(),
                "results": results}
    common.atomic_write_json(args.output, document)
    print(common.table("summary against the targets", verdicts(head)
                       + [("benchmark wall s", seconds), ("written", str(args.output))]), flush=True)
    return document


if __name__ == "__main__":
    main()
