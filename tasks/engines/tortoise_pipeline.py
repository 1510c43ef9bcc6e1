"""The two ways our Tortoise engine turns prepared chunks into audio (the engine glue is tortoise.py).

    render_batch(engine, chunks, settings, latents)   the default: K chunks at once (tortoise_batch)
        one AR decode for K x N rows -> CLVP per chunk -> AR latents of the K winners in one pass
        -> diffusion, chunks of equal length sharing forwards, guidance in one forward (DDPM or DDIM,
        each chunk's own seeded generator) -> UnivNet over the K mels at once
    render_one(engine, chunk, settings, latents)      the per-chunk path of adapter 1 (`decoder: per-chunk`):
        stock's `inference_speech` in sub-batches on the global RNG, kept as the benchmark's baseline

Both take the resident models from `engine.models` and record seconds per stage in `engine.last_timings`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks.engines.base import Clip

SAMPLE_RATE_HZ = 24000


@dataclass(frozen=True)
class Prepared:
    """One chunk ready for the models: the text as spoken (prompts kept only when they are redacted
    after synthesis), its token ids (with stock's trailing 0), its seed."""

    text: str
    tokens: tuple[int, ...]
    seed: int
    redact: bool


class StageClock:
    """Seconds per stage, summed over a call."""

    def __init__(self, device: str) -> None:
        self.seconds: dict[str, float] = {}
        self.device = device

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            if self.device.startswith("cuda"):
                import torch

                torch.cuda.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t


def _to_clip(wav: Any) -> Clip:
    samples = wav.reshape(-1).float().cpu().numpy().astype(np.float32)
    return Clip(np.clip(samples, -1.0, 1.0), SAMPLE_RATE_HZ)


def render_batch(engine: Any, chunks: Sequence[Prepared], s: Mapping[str, Any], latents: tuple[Any, Any],
                 clock: StageClock) -> list[Clip]:
    """Every chunk's clip; chunk i's audio depends only on chunk i (see tortoise_batch)."""
    import torch

    from tasks.engines import tortoise_batch as tb

    m = engine.models
    ar = m.autoregressive
    ar_latent, diffusion_latent = latents
    device = ar_latent.device
    n = int(s["num_autoregressive_samples"])
    sampling = tb.Sampling(float(s["temperature"]), float(s["top_p"]), float(s["repetition_penalty"]),
                           int(s["max_mel_tokens"]))
    with torch.no_grad():
        with clock.stage("autoregressive_s"), engine._autocast():
            prefixes = [tb.Prefix(ar_latent[0], c.tokens, n, torch.Generator(device=device).manual_seed(c.seed))
                        for c in chunks]
            candidates = tb.decode(ar, prefixes, sampling, stats=engine.decode_stats)
        with clock.stage("clvp_s"), engine._autocast():
            best = []
            for c, codes in zip(chunks, candidates, strict=True):
                fixed = tb.fix_codes(codes, ar.stop_mel_token)
                text = torch.tensor([c.tokens], dtype=torch.int32, device=device).repeat(fixed.shape[0], 1)
                best.append(fixed[torch.argmax(m.clvp(text, fixed, return_loss=False))])
            winners = torch.stack(best)  # (K, max_mel)
        with clock.stage("ar_latents_s"), engine._autocast():
            lat = tb.ar_latents(ar, [ar_latent] * len(chunks), [c.tokens for c in chunks], winners)
            trimmed = [tb.calm_trim(lat[i:i + 1], winners[i]) for i in range(len(chunks))]
        with clock.stage("diffusion_s"):
            generators = [torch.Generator(device=device).manual_seed(tb.sub_seed(c.seed, "diffusion")) for c in chunks]
            mels = tb.diffuse_many(
                m.diffusion, [t.float() for t in trimmed], diffusion_latent, generators,
                steps=int(s["diffusion_iterations"]), cond_free=bool(s["cond_free"]),
                cond_free_k=float(s["cond_free_k"]), temperature=float(s["diffusion_temperature"]),
                sampler=str(s["diffusion_sampler"]))
        with clock.stage("vocoder_s"):
            wavs = tb.vocode(m.vocoder, mels, [tb.sub_seed(c.seed, "vocoder") for c in chunks])
            wavs = [engine._aligner.redact(w[None], c.text)[0] if c.redact else w
                    for c, w in zip(chunks, wavs, strict=True)]
    return [_to_clip(w) for w in wavs]


def render_one(engine: Any, c: Prepared, s: Mapping[str, Any], latents: tuple[Any, Any], clock: StageClock) -> Clip:
    """Adapter 1's per-chunk path: stock `inference_speech` (kv_cache=True) in sub-batches of
    `autoregressive_batch_size`, every stage on the global generators seeded once from the chunk's seed."""
    import torch
    import torch.nn.functional as F

    from tasks.engines import tortoise_batch as tb

    api = engine._tm._tortoise()
    m = engine.models
    ar_latent, diffusion_latent = latents
    engine._seed_everything(c.seed)
    tokens = torch.IntTensor(list(c.tokens)).unsqueeze(0).to(engine.device)
    n_samples = int(s["num_autoregressive_samples"])
    batch = max(1, min(engine._ar_batch_size(s), n_samples))
    max_mel = int(s["max_mel_tokens"])
    ar = m.autoregressive
    stop = ar.stop_mel_token
    with torch.no_grad():
        with clock.stage("autoregressive_s"), engine._autocast():
            candidates = []
            for start in range(0, n_samples, batch):
                codes = ar.inference_speech(
                    ar_latent, tokens, do_sample=True, top_p=s["top_p"], temperature=s["temperature"],
                    num_return_sequences=min(batch, n_samples - start), length_penalty=s["length_penalty"],
                    repetition_penalty=s["repetition_penalty"], max_generate_length=max_mel)
                candidates.append(F.pad(codes, (0, max_mel - codes.shape[1]), value=stop))
        with clock.stage("clvp_s"), engine._autocast():
            scores = []
            for codes in candidates:
                for i in range(codes.shape[0]):
                    codes[i] = api.fix_autoregressive_output(codes[i], stop, complain=False)
                scores.append(m.clvp(tokens.repeat(codes.shape[0], 1), codes, return_loss=False))
            best = torch.cat(candidates, dim=0)[torch.argmax(torch.cat(scores, dim=0))].unsqueeze(0)
        with clock.stage("ar_latents_s"), engine._autocast():
            latents_ = ar(ar_latent, tokens, torch.tensor([tokens.shape[-1]], device=tokens.device), best,
                          torch.tensor([best.shape[-1] * ar.mel_length_compression], device=tokens.device),
                          return_latent=True, clip_inputs=False)
            latents_ = tb.calm_trim(latents_, best[0])
        with clock.stage("diffusion_s"):
            mel = tb.diffuse(m.diffusion, latents_.float(), diffusion_latent, steps=int(s["diffusion_iterations"]),
                             cond_free=bool(s["cond_free"]), cond_free_k=float(s["cond_free_k"]),
                             temperature=float(s["diffusion_temperature"]), sampler=str(s["diffusion_sampler"]))
        with clock.stage("vocoder_s"):
            wav = m.vocoder.inference(mel)  # (1, 1, samples) in [-1, 1]
            if c.redact:
                wav = engine._aligner.redact(wav.squeeze(1), c.text).unsqueeze(1)
    return _to_clip(wav)
