"""Smoke test of the benchmarks: each one runs at a tiny size in its own process and returns its figures.

Not a performance test (the sizes are far too small for the figures to mean anything): it keeps the
benchmark code working as the pipeline changes. One Prefect server is shared by the benchmarks here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import common, run_all  # noqa: E402

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("bench-server")
    saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME", "BENCH_PREFECT_API_URL")}
    with common.prefect_server(work) as server:
        os.environ["BENCH_PREFECT_API_URL"] = server["url"]
        try:
            yield server["url"]
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(scope="module")
def results(shared_server: str) -> dict[str, dict[str, Any]]:
    return {}


def test_postprocess(results: dict[str, dict[str, Any]]) -> None:
    out = common.run_bench("bench_postprocess.py", ["--chapter-hours", "0.004", "--chapters", "2", "--baseline-large"])
    assert out["postprocess_ratio_vs_ffmpeg"] > 0 and out["postprocess_ratio_vs_ffmpeg_large"] > 0
    assert 0 < out["postprocess_peak_rss_mib_small"] < 4096 and out["postprocess_peak_rss_mib_large"] > 0
    assert out["small"]["ours"]["acx_ok"] and out["large"]["ours"]["files_encoded"] == 8  # 2 MP3s and their captions (4), the M4B, the sample
    results["postprocess"] = out


def test_overhead(results: dict[str, dict[str, Any]]) -> None:
    out = common.run_bench("bench_overhead.py", ["--chunks", "30", "--chapters", "2"])
    assert out["first"]["chunks"] == 30 and out["first"]["chunks_synthesized"] == 30
    assert out["cached"]["chunks_synthesized"] == 0
    assert out["overhead_ms_per_chunk"] > 0 and 0 < out["cached_rerender_fraction"] < 1.5
    results["overhead"] = out


def test_pipeline_cpu(results: dict[str, dict[str, Any]]) -> None:
    out = common.run_bench("bench_pipeline_cpu.py", ["--chars", "120"])
    assert out["pipeline"]["chunks_synthesized"] >= 1 and out["piper_raw"]["audio_s"] > 1
    assert out["noise_ms_per_chunk"] > 0 and out["pipeline"]["phases_s"]["synthesize_all"] > 0 and out["pipeline_overhead_vs_piper"] > -1
    results["pipeline_cpu"] = out


def test_scaling(results: dict[str, dict[str, Any]]) -> None:
    out = common.run_bench("bench_scaling.py", ["--chars", "120", "--no-threads"])
    assert out["speedup_2_workers"] > 0 and out["runs"]["processes_2"]["chunks_synthesized"] >= 1
    assert out["speedup_2_workers_dask"] > 0 and out["runs"]["dask_2"]["chunks_synthesized"] >= 1
    results["scaling"] = out


def test_scaling_simulated_gpu(results: dict[str, dict[str, Any]]) -> None:
    out = common.run_bench("bench_scaling.py", ["--simulated-gpu", "--quick"])
    runs = out["runs"]
    assert list(runs) == ["1", "2"] and all(r["chunks"] == out["sizes"]["chunks"] > 0 for r in runs.values())
    assert runs["1"]["speedup"] == 1.0 and runs["2"]["speedup"] > 0 and out["simulated_gpu_efficiency_min_upto_16"] > 0
    assert out["renderer_ceiling_chunks_per_s"] > 0 and out["ceiling"]["chunks"] == out["sizes"]["chunks"]
    assert all(r["chunks_run_twice"] == 0 for r in runs.values())  # no worker lost
    assert 0 < runs["2"]["worker_rss_mib_max"] <= runs["2"]["workers_rss_mib_total"] == out["workers_rss_mib_at_max"]
    results["scaling_gpu"] = out


def test_memory(results: dict[str, dict[str, Any]]) -> None:
    out = common.run_bench("bench_memory.py", ["--hours", "0.01", "0.03"])
    assert list(out["runs"]) == ["0.01h", "0.03h"] and all(r["chapters"] >= 2 for r in out["runs"].values())
    assert all(r["chunks"] > 0 and r["audio_h"] > 0.005 for r in out["runs"].values())
    assert 0 < out["peak_rss_mib_small"] < 4096 and out["rss_large_over_small"] > 0
    results["memory"] = out


def test_verify(results: dict[str, dict[str, Any]]) -> None:
    """Planted faults on two Piper takes of the benchmarks' own prose (not a real book): every kind is
    planted in each take, the check and synthesis are both timed, and transcription is tried on one."""
    out = common.run_bench("bench_verify.py", ["--chunks", "2", "--compare", "1", "--repeats", "1",
                                               "--book", str(REPO / "no-such-book.yaml")])
    assert out["chunks"] == 2 and out["planted"] == {"drop": 2, "repeat": 2, "truncate": 2, "foreign": 2}
    assert sum(out["caught"].values()) == round(out["caught_fraction"] * 8) and 0 <= out["clean_flagged_fraction"] <= 1
    assert out["synth_cpu_s_per_audio_min"] > 0 and out["check_cpu_s_per_audio_min"] > 0
    assert out["check_cost_vs_synth"] > 0 and out["transcription_method"]["chunks"] == 1
    results["verify"] = out


def test_run_all_summary(results: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    if set(results) != set(run_all.BENCHES):
        pytest.skip("needs every benchmark's result from the tests above")
    head = run_all.headline(results)
    for key in ("postprocess_ratio_vs_ffmpeg", "postprocess_peak_rss_mib_1h", "postprocess_peak_rss_mib_10h",
                "overhead_ms_per_chunk", "cached_rerender_fraction", "pipeline_overhead_vs_piper",
                "speedup_2_workers", "render_peak_rss_mib_1h", "render_peak_rss_mib_10h",
                "simulated_gpu_efficiency_min_upto_16", "renderer_ceiling_chunks_per_s", "verify_caught_fraction",
                "verify_clean_flagged_fraction", "verify_cost_vs_synth"):
        assert isinstance(head[key], int | float), key
    assert len(run_all.verdicts(head)) == len(run_all.TARGETS)
    path = common.atomic_write_json(tmp_path / "results.json", head)
    assert path.read_text().startswith("{")
