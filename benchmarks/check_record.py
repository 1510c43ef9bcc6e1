"""The GPU check's one JSON file, updated in place (temp file + rename) as each step, level and side ends,
so that a step killed by its budget keeps what it had finished. Standard library only: it must run (and
say why) where torch is missing.

    python benchmarks/check_record.py env --device cuda --out F      environment; exit 3 without torch/CUDA
    python benchmarks/check_record.py step --out F NAME STATUS [SECONDS]
    python benchmarks/check_record.py summary --out F                 the figures, per level, in one place

bench_tortoise.py and gpu_checks.py write into the same file with `merge` (their --into option).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

NO_TORCH, NO_CUDA = 3, 4  # exit codes of `env`


def read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def write(path: Path, doc: dict[str, Any]) -> None:
    """Write `doc` to `path` atomically: readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2, default=str)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def merge(path: Path, keys: list[str], value: Any) -> None:
    """Set doc[keys[0]][keys[1]]... = value in the file at `path` (one writer at a time: the steps run in turn)."""
    doc = read(path)
    node = doc
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value
    doc["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write(path, doc)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(device: str) -> tuple[dict[str, Any], str, int]:
    """(record, first line to print, exit code): what this Python, torch and GPU are."""
    env: dict[str, Any] = {"python": sys.executable, "python_version": platform.python_version(),
                           "machine": platform.machine(), "cpus": os.cpu_count(),
                           "transformers": _version("transformers"), "tortoise": _version("tortoise-tts")}
    try:
        import torch
    except Exception as exc:  # ImportError, or a torch that fails to load its libraries
        line = (f"gpu_check: {sys.executable} cannot import torch ({type(exc).__name__}: {exc}); "
                "run with PYTHON=/path/to/python that has torch")
        return {**env, "torch": None, "error": line}, line, NO_TORCH
    env.update(torch=torch.__version__, cuda_build=torch.version.cuda, cuda_available=torch.cuda.is_available())
    if device != "cuda":
        return env, f"gpu_check: torch {torch.__version__} on {device} (a rehearsal: no GPU figures)", 0
    if not torch.cuda.is_available():
        line = (f"gpu_check: torch {torch.__version__} (CUDA build {torch.version.cuda}) sees no CUDA device; "
                "rehearse with --device cpu --size tiny")
        return {**env, "error": line}, line, NO_CUDA
    props = torch.cuda.get_device_properties(0)
    env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
               gpu_capability=f"{props.major}.{props.minor}", gpus=torch.cuda.device_count(),
               cudnn=torch.backends.cudnn.version(), driver_cuda=_driver_cuda(torch))
    return env, f"gpu_check: {props.name}, {env['gpu_memory_gib']} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}", 0


def _driver_cuda(torch: Any) -> str | None:
    try:
        version = torch.cuda.driver_version() if hasattr(torch.cuda, "driver_version") else None
    except Exception:
        return None
    return str(version) if version else None


def _side_figures(side: dict[str, Any]) -> dict[str, Any]:
    stages = side.get("stages") or {}
    total = side.get("total_s") or 0
    figures = {k: side.get(k) for k in ("total_s", "audio_s", "rtf", "gpu_peak_gib", "rows_per_decode",
                                        "decode_steps") if side.get(k) is not None}
    figures["stages_s"] = stages
    if total and "diffusion_s" in stages:
        figures["diffusion_share"] = round(stages["diffusion_s"] / total, 3)
    return figures


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """What a reader wants first: per level, each side's real-time factor, seconds per stage, rows per
    decode, peak memory and the diffusion share, the ratios; the fp16 batch-invariance counts."""
    out: dict[str, Any] = {"environment": {k: doc.get("environment", {}).get(k) for k in
                                           ("gpu", "gpu_memory_gib", "torch", "cuda_build", "python_version")}}
    for level in ("draft", "standard"):
        result = doc.get(level)
        if not isinstance(result, dict):
            continue
        sides = {name: _side_figures(result[name]) for name in ("batched", "per_chunk", "stock", "batched_table")
                 if isinstance(result.get(name), dict)}
        ratios = {k: v for k, v in result.items() if k.startswith("speedup")}
        out[level] = {"complete": result.get("complete", False), "chunks": result.get("chunks"),
                      "sides": sides, "ratios": ratios}
    checks = doc.get("checks")
    if isinstance(checks, dict):
        for label in ("fp32", "fp16"):
            inv = checks.get(f"batch_invariance_{label}")
            if isinstance(inv, dict):
                out[f"batch_invariance_{label}"] = {"rows": inv.get("rows"), "rows_equal": inv.get("rows_equal")}
        if isinstance(checks.get("stock_equivalence_fp32"), dict):
            out["stock_equivalence_fp32"] = checks["stock_equivalence_fp32"].get("equal")
    out["steps"] = doc.get("steps")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("env")
    e.add_argument("--device", default="cuda")
    e.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("step")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("name")
    s.add_argument("status")
    s.add_argument("seconds", type=float, nargs="?")
    m = sub.add_parser("summary")
    m.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.command == "env":
        env, line, code = environment(args.device)
        print(line, flush=True)
        merge(args.out, ["environment"], env)
        return code
    if args.command == "step":
        record: dict[str, Any] = {"status": args.status}
        if args.seconds is not None:
            record["seconds"] = round(args.seconds, 1)
        merge(args.out, ["steps", args.name], record)
        return 0
    doc = read(args.out)
    merge(args.out, ["summary"], summary(doc))
    print(json.dumps(summary(doc), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
