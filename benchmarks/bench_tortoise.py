"""Stock Tortoise against our engine, per chunk and batched: same weights, same chunks, same settings.

    .venv/bin/python benchmarks/bench_tortoise.py [--size tiny|small|full] [--device cpu|cuda]
                     [--preset ultra_fast|fast|standard] [--chunks 16] [--tokens 80] [--rows N]

Every side gets identical random weights (no download): the real classes at `--size`, seeded alike.
  - batched: our engine's default path, all chunks handed over in one `synthesize_many` call;
  - per_chunk: our engine with `decoder: per-chunk` (adapter 1's path: stock's sampler, models resident);
  - stock: the weights written as a local Hugging Face cache folder and size-overridden classes swapped
    into `tortoise.api`, so the unmodified `TextToSpeech.__init__` loads them; each chunk calls
    `tts_with_preset(voice_samples=...)` as `do_tts.py` does (latents recomputed per call, models
    shuttled CPU<->GPU by `temporary_cuda`).
All three run the preset's candidates, DDPM steps and conditioning-free setting. `batched_table` then
runs the batched engine at the quality table's own diffusion (DDIM for draft and standard), for the
record. Random weights never emit the stop token, so every candidate runs to `--tokens` codes. Our two
engine sides share one model bundle, built once; the checkpoints are written only when stock runs.

Sides run in that order, and the JSON (`--out`, and `--into FILE` under `--key`) is rewritten as each
side ends, so a run cut short keeps its finished sides. Prints seconds per stage, realtime factors, peak
GPU memory, AR rows per decode, the diffusion share and the ratios (one run, same chunks and settings).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.check_record import merge, write  # noqa: E402 - standard library only

# Sixteen chunks of mixed length (our own wording), 2 to 150 characters.
CHUNKS = [
    "The lamp was lit before the rain began, and the room smelt of wet wool and coal smoke.",
    "No.",
    "She counted the steps to the harbour wall.",
    "A gull landed on the railing, looked at the bread in his hand, and waited with great patience.",
    "Morning came slowly.",
    "Nobody in the village remembered who had planted the row of pear trees along the lane, but everyone "
    "ate the pears.",
    "The ferry was late again.",
    "He wrote three letters that evening and posted none of them.",
    "Wait here.",
    "The map showed a road where there was only a field of barley and a gate tied shut with string.",
    "Her brother laughed at the idea, then spent the whole afternoon trying it himself.",
    "It rained.",
    "By the time the kettle boiled, the argument had been forgotten by everyone except the cat.",
    "The train stopped at every station, even the ones with no names.",
    "Somewhere below, a door closed, and the house settled back into its quiet.",
    "They walked home along the beach, carrying their shoes, while the tide came in behind them and "
    "smoothed their footprints away.",
]
PRESET_TO_QUALITY = {"ultra_fast": "draft", "fast": "standard", "standard": "high"}
PRESETS = {"ultra_fast": (16, 30, False), "fast": (96, 80, True), "standard": (256, 200, True)}


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
        for i, text in enumerate(chunks):
            t = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # stock prints "No stop tokens found" per candidate
                wav = tts.tts_with_preset(
                    text, preset=args.preset, voice_samples=clips, use_deterministic_seed=args.seed + i,
                    verbose=False, num_autoregressive_samples=args.samples, diffusion_iterations=args.steps,
                    cond_free=args.cond_free, max_mel_tokens=args.tokens)
            total += time.perf_counter() - t
            audio_s += wav.shape[-1] / 24000
    finally:
        api.do_spectrogram_diffusion = original_diffusion
    stages.seconds["other_s"] = total - sum(stages.seconds.values())  # CLVP, AR latents, CPU<->GPU moves
    return {"load_s": round(load_s, 3), "total_s": round(total, 3), "audio_s": round(audio_s, 3),
            "rtf": round(total / audio_s, 3), "stages": {k: round(v, 3) for k, v in stages.seconds.items()},
            "diffusion_share": round(stages.seconds.get("diffusion_s", 0.0) / total, 3) if total else None,
            "gpu_peak_gib": _gpu_peak_gib(args.device)}


def engine_models(args: argparse.Namespace) -> Any:
    """The random weights every side uses, built in memory (as write_checkpoints writes them)."""
    from tasks.engines import tortoise_models as tm

    return tm._build_random(args.size, args.seed, args.device, True, args.device == "cuda")


def run_engine(models: Any, voices: Path, cache: Path, args: argparse.Namespace, chunks: list[str],
               decoder: str, *, table: bool = False) -> dict[str, Any]:
    """Our engine on `chunks` in one synthesize_many call (the per-chunk decoder loops inside it)."""
    from tasks.engines import tortoise as tt
    from tasks.engines.base import Clip, SynthRequest

    _gpu_reset(args.device)
    half = args.device == "cuda"
    engine = tt.TortoiseEngine(models=models, device=args.device, half=half, cache_dir=cache)
    engine._prompt_mode = "dropped"  # no prompts in these chunks: do not look for the aligner
    t = time.perf_counter()
    engine.latents_path("bench", voices)
    latents_s = time.perf_counter() - t
    settings: dict[str, Any] = {**engine.settings_for(args.quality), "decoder": decoder,
                                "num_autoregressive_samples": args.samples, "max_mel_tokens": args.tokens}
    if not table:  # the preset's own diffusion, as stock runs it
        settings.update(diffusion_iterations=args.steps, diffusion_sampler="p", cond_free=args.cond_free)
    if decoder == "per-chunk":
        settings["autoregressive_batch_size"] = args.batch
    requests = [SynthRequest(text, "bench", settings, args.seed + i, str(voices)) for i, text in enumerate(chunks)]
    if args.device == "cuda":
        torch_sync()
    t = time.perf_counter()
    clips = engine.synthesize_many(requests)
    if args.device == "cuda":
        torch_sync()
    total = time.perf_counter() - t
    failed = [c for c in clips if not isinstance(c, Clip)]
    if failed:
        raise RuntimeError(f"{decoder}: {failed[0]}")
    audio_s = sum(c.duration_s for c in clips if isinstance(c, Clip))
    stages = {k: round(v, 3) for k, v in engine.last_timings.items() if k not in ("total_s", "audio_s")}
    stats = engine.decode_stats
    return {"voice_latents_once_s": round(latents_s, 3), "total_s": round(total, 3),
            "audio_s": round(audio_s, 3), "rtf": round(total / audio_s, 3), "stages": stages,
            "diffusion_share": round(stages.get("diffusion_s", 0.0) / total, 3) if total else None,
            "gpu_peak_gib": _gpu_peak_gib(args.device), "precision": engine.precision,
            "settings": {k: settings[k] for k in ("num_autoregressive_samples", "diffusion_iterations",
                                                  "diffusion_sampler", "cond_free", "max_mel_tokens")},
            "chunks_per_call": 1 if decoder == "per-chunk" else engine.batch_capacity(settings),
            "decode_steps": stats.get("decode_steps"), "decode_calls": stats.get("decode_calls"),
            "rows_per_decode": round(stats["decode_rows"] / stats["decode_calls"], 1)
            if stats.get("decode_calls") else None}


def save(result: dict[str, Any], args: argparse.Namespace) -> None:
    """Rewrite --out (and the --into file's entry) atomically with the result so far."""
    for out in {args.out, args.json} - {None}:
        write(out, result)
    if args.into:
        merge(args.into, [args.key or args.quality], result)


def torch_sync() -> None:
    import torch

    torch.cuda.synchronize()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=("tiny", "small", "full"), default="tiny",
                   help="small: between tiny and full, where batching shows on a CPU")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--preset", choices=tuple(PRESET_TO_QUALITY), default="ultra_fast",
                   help="stock's preset: its candidates, steps and guidance on every side")
    p.add_argument("--quality", choices=tuple(PRESET_TO_QUALITY.values()), default=None,
                   help="instead of --preset: our quality table's candidates, steps and guidance on every side "
                        "(DDPM steps, which stock can run; batched_table adds the table's DDIM)")
    p.add_argument("--chunks", type=int, default=len(CHUNKS), help=f"how many of the {len(CHUNKS)} chunks")
    p.add_argument("--samples", type=int, default=None, help="AR candidates (default: 2 tiny, preset's on full)")
    p.add_argument("--steps", type=int, default=None, help="diffusion steps (default: 4 tiny, preset's on full)")
    p.add_argument("--tokens", type=int, default=80, help="AR codes per candidate (random weights never stop)")
    p.add_argument("--batch", type=int, default=None, help="stock and per-chunk AR batch (default: min(samples, 16))")
    p.add_argument("--rows", type=int, default=None, help="batched: AR rows per decode (default: the engine's)")
    p.add_argument("--no-stock", action="store_true", help="skip stock (it is the slowest side)")
    p.add_argument("--no-table", action="store_true", help="skip the batched run at the quality table's diffusion")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    p.add_argument("--models-dir", type=Path, default=None,
                   help="keep the random checkpoints here and reuse them on the next run (default: a temp dir)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "output" / "bench" / "tortoise.json")
    p.add_argument("--into", type=Path, default=None,
                   help="also keep the result, as it grows, under --key in this JSON file (the GPU check's)")
    p.add_argument("--key", default=None, help="with --into: the key (default: the quality)")
    args = p.parse_args(argv)
    if args.quality:
        from tasks.engines.tortoise import QUALITY_SETTINGS

        q = QUALITY_SETTINGS[args.quality]
        preset = (q["num_autoregressive_samples"], q["diffusion_iterations"], q["cond_free"])
    else:
        preset = PRESETS[args.preset]
        args.quality = PRESET_TO_QUALITY[args.preset]
    args.cond_free = preset[2]
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
    if args.rows:
        os.environ["AUDIOBOOK_TORTOISE_BATCH_ROWS"] = str(args.rows)
    if args.device == "cuda":  # CUDA context and cuBLAS start-up outside every timed side
        (torch.ones(64, 64, device="cuda") @ torch.ones(64, 64, device="cuda")).sum().item()
    chunks = (CHUNKS * args.chunks)[: args.chunks]
    result: dict[str, Any] = {
        "size": args.size, "device": args.device, "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        "preset": args.preset, "quality": args.quality, "cond_free": args.cond_free, "chunks": len(chunks),
        "chunk_chars": [len(c) for c in chunks], "samples": args.samples, "steps": args.steps,
        "tokens": args.tokens, "batch": args.batch, "seed": args.seed, "torch": torch.__version__,
        "cuda": torch.version.cuda, "complete": False,
    }
    sides: dict[str, Any] = {}

    def record(name: str, side: dict[str, Any]) -> None:
        """Keep a finished side (and the ratios it makes possible) on disk at once."""
        sides[name] = result[name] = side
        ratio = lambda a, b: round(sides[a]["total_s"] / sides[b]["total_s"], 3)  # noqa: E731
        if "per_chunk" in sides and "batched" in sides:
            result["speedup_batched_vs_per_chunk"] = ratio("per_chunk", "batched")
        if "per_chunk" in sides and "batched_table" in sides:
            result["speedup_batched_table_vs_per_chunk"] = ratio("per_chunk", "batched_table")
        if "stock" in sides and "batched" in sides:
            result["speedup_batched_vs_stock"] = ratio("stock", "batched")
        if "stock" in sides and "per_chunk" in sides:
            result["speedup_per_chunk_vs_stock"] = result["speedup"] = ratio("stock", "per_chunk")
        save(result, args)

    with tempfile.TemporaryDirectory(prefix="bench-tortoise-") as tmp_name:
        tmp = Path(tmp_name)
        write_voice(tmp / "voices" / "bench")
        t = time.perf_counter()
        models = engine_models(args)
        result["build_models_s"] = round(time.perf_counter() - t, 2)
        save(result, args)
        record("batched", run_engine(models, tmp / "voices", tmp / "cache", args, chunks, "batched"))
        record("per_chunk", run_engine(models, tmp / "voices", tmp / "cache", args, chunks, "per-chunk"))
        if not args.no_stock:
            del models  # stock loads its own copy
            t = time.perf_counter()
            models_dir = args.models_dir or tmp / "models"
            stamp = models_dir / f".random-{args.size}-seed{args.seed}"
            if not stamp.exists():
                if models_dir.exists():
                    shutil.rmtree(models_dir)
                write_checkpoints(models_dir, args.size, args.seed)
                stamp.touch()
            result["write_checkpoints_s"] = round(time.perf_counter() - t, 2)
            clips = [torch.from_numpy(tt.load_clip_22k(p)).unsqueeze(0) for p in tt.voice_clips("bench", tmp / "voices")]
            record("stock", run_stock(models_dir, clips, args, chunks))
            if not args.no_table:
                models = engine_models(args)
        if not args.no_table:
            record("batched_table", run_engine(models, tmp / "voices", tmp / "cache", args, chunks, "batched",
                                               table=True))
    result["complete"] = True
    save(result, args)
    print(f"tortoise bench: size={args.size} device={args.device} quality={args.quality} chunks={len(chunks)} "
          f"samples={args.samples} steps={args.steps} tokens={args.tokens} batch={args.batch}")
    for side, r in sides.items():
        stages = " ".join(f"{k}={v:.2f}" for k, v in r["stages"].items())
        gpu = f" gpu_peak={r['gpu_peak_gib']} GiB" if r["gpu_peak_gib"] is not None else ""
        extra = f" chunks/call={r['chunks_per_call']}" if "chunks_per_call" in r else ""
        if r.get("rows_per_decode"):
            extra += f" rows/decode={r['rows_per_decode']}"
        if r.get("diffusion_share") is not None:
            extra += f" diffusion={100 * r['diffusion_share']:.0f}%"
        print(f"  {side:13s} total={r['total_s']:.2f}s audio={r['audio_s']:.2f}s rtf={r['rtf']:.3f}{gpu}{extra}  "
              f"[{stages}]")
    for key in ("speedup_batched_vs_per_chunk", "speedup_batched_vs_stock", "speedup_per_chunk_vs_stock",
                "speedup_batched_table_vs_per_chunk"):
        if key in result:
            print(f"  {key} = {result[key]:.2f}x")
    print(f"  -> {args.out}")
    return result


if __name__ == "__main__":
    main()
