"""The GPU check's record (benchmarks/check_record.py): one JSON file, rewritten whole after each step,
a first line that says what is missing, and a summary that reads partial results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import check_record as cr

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "check_record.py"


def test_merge_keeps_what_is_there_and_leaves_no_temp_file(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    cr.merge(out, ["environment"], {"gpu": "X"})
    cr.merge(out, ["steps", "draft"], {"status": "running"})
    cr.merge(out, ["steps", "draft"], {"status": "ok", "seconds": 3.0})
    cr.merge(out, ["draft"], {"batched": {"total_s": 2.0}})
    doc = json.loads(out.read_text())
    assert doc["environment"] == {"gpu": "X"} and doc["steps"] == {"draft": {"status": "ok", "seconds": 3.0}}
    assert doc["draft"]["batched"]["total_s"] == 2.0
    assert [p.name for p in tmp_path.iterdir()] == ["check.json"]


def test_first_line_names_the_python_without_torch(tmp_path: Path) -> None:
    """A Python whose torch cannot be imported: one line saying so and how to point at another, exit 3,
    and the reason in the JSON."""
    out = tmp_path / "check.json"
    code = ("import sys, runpy; sys.modules['torch'] = None; "
            f"sys.argv = ['check_record.py', 'env', '--device', 'cuda', '--out', {str(out)!r}]; "
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == cr.NO_TORCH
    first = proc.stdout.splitlines()[0]
    assert first.startswith("gpu_check: ") and "cannot import torch" in first and "PYTHON=" in first
    assert json.loads(out.read_text())["environment"]["error"] == first


def test_first_line_says_there_is_no_cuda_device(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "env", "--device", "cuda", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == cr.NO_CUDA
    assert "sees no CUDA device" in proc.stdout.splitlines()[0] and "--device cpu" in proc.stdout
    env = json.loads(out.read_text())["environment"]
    assert env["torch"] == torch.__version__ and env["cuda_available"] is False


def test_summary_reads_a_level_cut_short() -> None:
    """A level whose stock side never finished still yields its batched and per-chunk figures."""
    side = {"total_s": 10.0, "audio_s": 20.0, "rtf": 0.5, "gpu_peak_gib": 3.2, "rows_per_decode": 64.0,
            "stages": {"autoregressive_s": 4.0, "diffusion_s": 5.0}}
    doc = {"environment": {"gpu": "H100", "torch": "2.11"},
           "draft": {"complete": False, "chunks": 16, "batched": side, "per_chunk": {**side, "total_s": 40.0},
                     "speedup_batched_vs_per_chunk": 4.0},
           "checks": {"batch_invariance_fp16": {"rows": 24, "rows_equal": 20}},
           "steps": {"draft": {"status": "timed out after 170 s (finished parts kept)"}}}
    s = cr.summary(doc)
    assert s["draft"]["complete"] is False and set(s["draft"]["sides"]) == {"batched", "per_chunk"}
    assert s["draft"]["sides"]["batched"]["diffusion_share"] == 0.5
    assert s["draft"]["sides"]["batched"]["rows_per_decode"] == 64.0
    assert s["draft"]["ratios"] == {"speedup_batched_vs_per_chunk": 4.0}
    assert s["batch_invariance_fp16"] == {"rows": 24, "rows_equal": 20}
    assert "standard" not in s and s["environment"]["gpu"] == "H100"
