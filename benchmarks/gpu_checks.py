"""The Tortoise GPU checks, runnable without pytest or Prefect (the GPU machine has neither):

    python benchmarks/gpu_checks.py [--device cuda|cpu] [--size full|small|tiny] [--out checks.json]
                                    [--into gpu_check.json]   (kept there under "checks" as each check ends)

1. stock_equivalence   one chunk, 4 candidates: our sampler vs stock `inference_speech` (kv_cache=False), fp32
2. batch_invariance    6 chunks of mixed length x 4 candidates, alone vs together: fp32, and fp16 autocast
                       on cuda (codes compared by first-divergence step: fp16 batching moves logits ~1e-2)
3. engine_render       the whole engine (fp16 on cuda): 3 chunks together vs alone, samples' max difference
Random weights (the real classes at --size); codes are compared, never asserted bit-equal on a GPU (README).
Exit status 1 when a check that must hold (fp32 equality on CPU, finite audio) fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TEXTS = ["No.", "She counted the steps to the harbour wall.", "Morning came slowly.",
         "A gull landed on the railing, looked at the bread in his hand, and waited with great patience.",
         "The ferry was late again.", "He wrote three letters that evening and posted none of them."]


def first_divergence(a: Any, b: Any) -> list[int | None]:
    """Per row, the first step where the codes differ (None: identical)."""
    out: list[int | None] = []
    for ra, rb in zip(a.tolist(), b.tolist(), strict=True):
        out.append(next((i for i, (x, y) in enumerate(zip(ra, rb, strict=True)) if x != y), None))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    warnings.filterwarnings("ignore")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", default="full", choices=("tiny", "small", "full"))
    p.add_argument("--tokens", type=int, default=40)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--into", type=Path, default=None, help="the GPU check's JSON: the report so far, after each check")
    args = p.parse_args(argv)
    import torch

    from benchmarks.check_record import merge
    from tasks.engines import tortoise as tt
    from tasks.engines import tortoise_batch as tb
    from tasks.engines import tortoise_models as tm
    from tasks.engines.base import SynthRequest

    report: dict[str, Any] = {"device": args.device, "size": args.size, "torch": torch.__version__,
                              "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None}
    started = time.perf_counter()

    def keep() -> None:
        report["wall_s"] = round(time.perf_counter() - started, 1)
        if args.into:
            merge(args.into, ["checks"], report)
    models = tm._build_random(args.size, 0, args.device, False, args.device == "cuda")  # kv_cache=False: stock
    ar = models.autoregressive
    dim = ar.model_dim
    cond = torch.randn(dim, generator=torch.Generator().manual_seed(3)).to(args.device)
    toks = [(*models.tokenizer.encode(t), 0) for t in TEXTS]
    n, m = 4, args.tokens
    sampling = tb.Sampling(0.8, 0.8, 2.0, m)
    report["build_s"] = round(time.perf_counter() - started, 1)

    def ours(idx: list[int], half: bool) -> list[Any]:
        prefixes = [tb.Prefix(cond, toks[i], n, torch.Generator(device=args.device).manual_seed(50 + i)) for i in idx]
        with torch.no_grad(), torch.autocast("cuda", torch.float16, enabled=half):
            return tb.decode(ar, prefixes, sampling)

    # 1. stock equivalence (fp32)
    torch.manual_seed(51)
    with torch.no_grad():
        stock = ar.inference_speech(cond[None], torch.tensor([toks[1]], device=args.device), do_sample=True, top_p=0.8,
                                    temperature=0.8, num_return_sequences=n, length_penalty=1.0,
                                    repetition_penalty=2.0, max_generate_length=m)
    stock = torch.nn.functional.pad(stock, (0, m - stock.shape[1]), value=ar.stop_mel_token)
    div = first_divergence(ours([1], False)[0], stock)
    report["stock_equivalence_fp32"] = {"first_divergence": div, "equal": all(d is None for d in div)}
    keep()

    # 2. batch invariance
    for label, half in (("fp32", False), ("fp16", True)) if args.device == "cuda" else (("fp32", False),):
        t = time.perf_counter()
        together = ours(list(range(len(TEXTS))), half)
        batch_s = time.perf_counter() - t
        t = time.perf_counter()
        alone = [ours([i], half)[0] for i in range(len(TEXTS))]
        alone_s = time.perf_counter() - t
        divs = [d for a, b in zip(alone, together, strict=True) for d in first_divergence(a, b)]
        report[f"batch_invariance_{label}"] = {
            "rows": len(divs), "rows_equal": sum(d is None for d in divs),
            "first_divergence": divs, "decode_alone_s": round(alone_s, 2), "decode_together_s": round(batch_s, 2)}
        keep()

    # 3. the whole engine
    engine = tt.TortoiseEngine(models=models, device=args.device, half=args.device == "cuda",
                               cache_dir=Path(os.environ.get("TMPDIR", "/tmp")) / "gpu-check-cache")
    engine._prompt_mode = "dropped"
    voices = Path(os.environ.get("TMPDIR", "/tmp")) / "gpu-check-voices"
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_tortoise import write_voice

    write_voice(voices / "bench")
    settings = {**engine.settings_for("draft"), "num_autoregressive_samples": 4, "max_mel_tokens": m}
    reqs = [SynthRequest(TEXTS[i], "bench", settings, 60 + i, str(voices)) for i in (0, 3, 5)]
    together_clips = engine.synthesize_many(reqs)
    alone_clips = [engine.synthesize(r.text, r.voice, r.settings, r.seed, voices_dir=r.voices_dir) for r in reqs]
    import numpy as np

    diffs = [float(np.abs(a.samples - b.samples).max()) if a.samples.shape == b.samples.shape else None
             for a, b in zip(alone_clips, together_clips, strict=True)]  # type: ignore[union-attr]
    report["engine_render"] = {"precision": engine.precision, "max_abs_diff": diffs,
                               "durations_s": [round(c.duration_s, 2) for c in alone_clips],
                               "finite": all(bool(np.isfinite(c.samples).all()) for c in alone_clips)}
    keep()
    ok = report["engine_render"]["finite"] and (args.device == "cuda" or (
        report["stock_equivalence_fp32"]["equal"] and report["batch_invariance_fp32"]["rows_equal"]
        == report["batch_invariance_fp32"]["rows"] and all(d is not None and d < 1e-3 for d in diffs)))
    report["ok"] = bool(ok)
    keep()
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if not ok:
        raise SystemExit(1)
    return report


if __name__ == "__main__":
    main()
