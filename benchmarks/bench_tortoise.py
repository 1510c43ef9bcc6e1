"""Stock Tortoise (`TextToSpeech.tts_with_preset`) against our resident engine, same weights, same chunks.

    .venv/bin/python benchmarks/bench_tortoise.py [--size tiny|full] [--device cpu|cuda] [--preset ultra_fast]

Both sides get identical random weights (no download): we build the real classes at `--size`, write them
as a local Hugging Face cache folder, and
  - stock: swap size-overridden classes into `tortoise.api` so the unmodified `TextToSpeech.__init__`
    loads that folder; each chunk calls `tts_with_preset(voice_samples=...)` as `do_tts.py` does
    (latents recomputed per call, models shuttled CPU<->GPU by `temporary_cuda`);
  - ours: `load_pretrained` from the same folder; latents once per voice (timed apart), models resident.
Random weights never emit the stop token, so every candidate runs to `--tokens` codes on both sides.

Prints realtime factors (seconds of compute per second of audio), seconds per stage, peak GPU memory and
the speed-up stock/ours; writes output/bench/tortoise.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHUNKS = [
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "The hallway smelt of boiled cabbage and old rag mats.",
    "At one end of it a coloured poster, too large for indoor display, had been tacked to the wall.",
]
PRESET_TO_QUALITY = {"ultra_fast": "draft", "fast": "standard", "standard": "high"}


def write_voice(folder: Path) -> None:
    """Two synthetic reference clips (noise and a tone): no recognisable person's voice is needed."""
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sf.write(folder / "1.wav", (0.1 * rng.standard_normal(44100 * 8)).astype(np.float32), 44100)
    tone = 0.3 * np.sin(2 * np.pi * 200 * np.arange(22050 * 6) / 22050)
    sf.write(folder / "2.flac", tone.astype(np.float32), 22050)


def write_checkpoints(models_dir: Path, size: str, seed: int) -> None:
    """Random weights at `size`, laid out as the Hugging Face cache of Manmay/tortoise-tts."""
    import torch

    from tasks.engines import tortoise_models as tm

    torch.manual_seed(seed)
    ar, diffusion, clvp, vocoder, _ = tm._construct(size, "cpu", kv_cache=True, half=False)
    commit = "0" * 40
    snapshot = models_dir / tm.HF_CACHE_FOLDER / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (models_dir / tm.HF_CACHE_FOLDER / "refs").mkdir()
    (models_dir / tm.HF_CACHE_FOLDER / "refs" / "main").write_text(commit)
    torch.save(ar.state_dict(), snapshot / "autoregressive.pth")
    torch.save(diffusion.state_dict(), snapshot / "diffusion_decoder.pth")
    torch.save(clvp.state_dict(), snapshot / "clvp2.pth")
    torch.save({"model_g": vocoder.state_dict()}, snapshot / "vocoder.pth")


class Stages:
    """Accumulates wall seconds per stage by wrapping callables."""

    def __init__(self, device: str) -> None:
        self.seconds: dict[str, float] = {}
        self.device = device

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._sync()
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._sync()
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
        return timed

    def _sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()


def _gpu_reset(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _gpu_peak_gib(device: str) -> float | None:
    if device == "cuda":
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return None


def run_stock(models_dir: Path, clips: list[Any], args: argparse.Namespace, chunks: list[str]) -> dict[str, Any]:
    from tasks.engines import tortoise_models as tm

    api = tm._tortoise()
    sizes = tm.SIZES[args.size]
    originals = {name: getattr(api, name) for name in ("UnifiedVoice", "DiffusionTts", "CLVP", "UnivNetGenerator")}
    keys = {"UnifiedVoice": "autoregressive", "DiffusionTts": "diffusion", "CLVP": "clvp", "UnivNetGenerator": "vocoder"}

    def sized(name: str) -> Callable[..., Any]:
        return lambda *a, **kw: originals[name](*a, **{**kw, **sizes[keys[name]]})

    _gpu_reset(args.device)
    stages = Stages(args.device)
    try:
        for name in originals:
            setattr(api, name, sized(name))
        t = time.perf_counter()
        tts = api.TextToSpeech(autoregressive_batch_size=args.batch, models_dir=str(models_dir),
                               enable_redaction=False, kv_cache=True, half=args.device == "cuda")
        load_s = time.perf_counter() - t
    finally:
        for name, cls in originals.items():
            setattr(api, name, cls)
    tts.get_conditioning_latents = stages.wrap("latents_s", tts.get_conditioning_latents)
    tts.autoregressive.inference_speech = stages.wrap("autoregressive_s", tts.autoregressive.inference_speech)
    tts.vocoder.inference = stages.wrap("vocoder_s", tts.vocoder.inference)
    original_diffusion = api.do_spectrogram_diffusion
    api.do_spectrogram_diffusion = stages.wrap("diffusion_s", original_diffusion)
    audio_s, total = 0.0, 0.0
    try:
        for text in chunks:
            t = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # stock prints "No stop tokens found" per candidate
                wav = tts.tts_with_preset(
                    text, preset=args.preset, voice_samples=clips, use_deterministic_seed=args.seed, verbose=False,
                    num_autoregressive_samples=args.samples, diffusion_iterations=args.steps,
                    max_mel_tokens=args.tokens)
            total += time.perf_counter() - t
            audio_s += wav.shape[-1] / 24000
    finally:
        api.do_spectrogram_diffusion = original_diffusion
    stages.seconds["other_s"] = total - sum(stages.seconds.values())  # CLVP, AR latents, CPU<->GPU moves
    return {"load_s": round(load_s, 3), "total_s": round(total, 3), "audio_s": round(audio_s, 3),
            "rtf": round(total / audio_s, 3), "stages": {k: round(v, 3) for k, v in stages.seconds.items()},
            "gpu_peak_gib": _gpu_peak_gib(args.device)}


def run_ours(models_dir: Path, voices: Path, cache: Path, args: argparse.Namespace,
             chunks: list[str]) -> dict[str, Any]:
    from tasks.engines import tortoise as tt
    from tasks.engines import tortoise_models as tm

    _gpu_reset(args.device)
    half = args.device == "cuda"
    t = time.perf_counter()
    models = tm.load_pretrained(models_dir, args.device, size=args.size, half=half)
    engine = tt.TortoiseEngine(models=models, device=args.device, half=half, cache_dir=cache)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    engine.latents_path("bench", voices)
    latents_s = time.perf_counter() - t
    settings = {**engine.settings_for(PRESET_TO_QUALITY[args.preset]), "num_autoregressive_samples": args.samples,
                "diffusion_iterations": args.steps, "max_mel_tokens": args.tokens,
                "autoregressive_batch_size": args.batch}
    stages: dict[str, float] = {}
    audio_s, total = 0.0, 0.0
    for text in chunks:
        t = time.perf_counter()
        clip = engine.synthesize(text, "bench", settings, args.seed, voices_dir=str(voices))
        total += time.perf_counter() - t
        audio_s += clip.duration_s
        for key, value in engine.last_timings.items():
            if key not in ("total_s", "audio_s", "load_s"):
                stages[key] = stages.get(key, 0.0) + value
    return {"load_s": round(load_s, 3), "voice_latents_once_s": round(latents_s, 3), "total_s": round(total, 3),
            "audio_s": round(audio_s, 3), "rtf": round(total / audio_s, 3),
            "stages": {k: round(v, 3) for k, v in stages.items()}, "gpu_peak_gib": _gpu_peak_gib(args.device),
            "precision": engine.precision}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=("tiny", "full"), default="tiny")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--preset", choices=tuple(PRESET_TO_QUALITY), default="ultra_fast")
    p.add_argument("--chunks", type=int, default=None, help=f"how many of the {len(CHUNKS)} chunks (2 tiny, 3 full)")
    p.add_argument("--samples", type=int, default=None, help="AR candidates (default: 2 tiny, preset's on full)")
    p.add_argument("--steps", type=int, default=None, help="diffusion steps (default: 4 tiny, preset's on full)")
    p.add_argument("--tokens", type=int, default=80, help="AR codes per candidate (random weights never stop)")
    p.add_argument("--batch", type=int, default=None, help="AR batch size (default: min(samples, 16))")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "output" / "bench" / "tortoise.json")
    args = p.parse_args(argv)
    preset = {"ultra_fast": (16, 30), "fast": (96, 80), "standard": (256, 200)}[args.preset]
    args.chunks = args.chunks or (2 if args.size == "tiny" else 3)
    args.samples = args.samples or (2 if args.size == "tiny" else preset[0])
    args.steps = args.steps or (4 if args.size == "tiny" else preset[1])
    args.batch = args.batch or min(args.samples, 16)
    if args.samples % args.batch:
        p.error("--samples must be a multiple of --batch (stock drops the remainder)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)  # inside tortoise
    args = parse_args(argv)
    import torch

    from tasks.engines import tortoise as tt

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device == "cpu" and torch.cuda.is_available():
        print("note: stock TextToSpeech always picks cuda when present; pass --device cuda", file=sys.stderr)
    chunks = (CHUNKS * args.chunks)[: args.chunks]
    with tempfile.TemporaryDirectory(prefix="bench-tortoise-") as tmp_name:
        tmp = Path(tmp_name)
        t = time.perf_counter()
        write_checkpoints(tmp / "models", args.size, args.seed)
        write_s = time.perf_counter() - t
        write_voice(tmp / "voices" / "bench")
        clips = [__import__("torch").from_numpy(tt.load_clip_22k(p)).unsqueeze(0)
                 for p in tt.voice_clips("bench", tmp / "voices")]
        stock = run_stock(tmp / "models", clips, args, chunks)
        ours = run_ours(tmp / "models", tmp / "voices", tmp / "cache", args, chunks)
    result = {
        "size": args.size, "device": args.device, "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        "preset": args.preset, "chunks": len(chunks), "samples": args.samples, "steps": args.steps,
        "tokens": args.tokens, "batch": args.batch, "seed": args.seed, "write_checkpoints_s": round(write_s, 2),
        "stock": stock, "ours": ours, "speedup": round(stock["total_s"] / ours["total_s"], 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"tortoise bench: size={args.size} device={args.device} preset={args.preset} chunks={len(chunks)} "
          f"samples={args.samples} steps={args.steps} tokens={args.tokens} batch={args.batch}")
    for side in ("stock", "ours"):
        r = result[side]
        stages = " ".join(f"{k}={v:.2f}" for k, v in r["stages"].items())
        gpu = f" gpu_peak={r['gpu_peak_gib']} GiB" if r["gpu_peak_gib"] is not None else ""
        print(f"  {side:5s} load={r['load_s']:.2f}s total={r['total_s']:.2f}s audio={r['audio_s']:.2f}s "
              f"rtf={r['rtf']:.3f}{gpu}  [{stages}]")
    print(f"  ours computed voice latents once in {ours['voice_latents_once_s']:.2f}s (cached after)")
    print(f"  speedup stock/ours = {result['speedup']:.2f}x  -> {args.out}")
    return result


if __name__ == "__main__":
    main()
