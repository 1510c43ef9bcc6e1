"""Conditioning latents of a voice: computed once (fixed centre crops, fp32), cached on disk and in memory.

A mixin of TortoiseEngine (it needs the engine's `models`, `device`, `model_identity`, `_lock`,
`_cache_dir`, `_latents`, `_tm` and `latents_computed`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from pathlib import Path
from typing import Any

from tasks.atomic import atomic_path
from tasks.engines.tortoise_voices import REFERENCE_RATE_HZ, clips_digest, load_clip_22k, voice_clips

log = logging.getLogger("tasks.engines.tortoise")

LATENTS_FORMAT = "1"  # bump when the latent computation below changes
COND_SAMPLES = 132300  # the AR conditioning window: 6 s at 22.05 kHz (format_conditioning's default)
DIFFUSION_COND_SAMPLES = 102400  # the diffusion conditioning window at 24 kHz (as get_conditioning_latents)


class VoiceLatents:
    models: Any
    device: str
    model_identity: str
    latents_computed: int
    _lock: Any
    _cache_dir: Path | None
    _latents: dict[str, tuple[Any, Any]]
    _tm: Any

    def _latents_key(self, voice: str, voices_dir: str | Path | None) -> str:
        clips = voice_clips(voice, voices_dir)
        payload = {
            "clips": clips_digest(clips), "models": self.model_identity, "precision": "fp32",
            "format": LATENTS_FORMAT,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def latents_path(self, voice: str, voices_dir: str | Path | None = None,
                     cache_dir: str | Path | None = None) -> Path:
        """Compute (or find) the conditioning latents of `voice`; returns the cached file."""
        key = self._latents_key(voice, voices_dir)
        path = self._latents_file(voice, key, cache_dir)
        with self._lock:
            if not path.exists():
                self._compute_and_store(voice, voices_dir, path)
        return path

    def _latents_file(self, voice: str, key: str, cache_dir: str | Path | None) -> Path:
        if cache_dir is None:
            cache_dir = self._cache_dir
        if cache_dir is None:
            from tasks.paths import cache_dir as default_cache_dir

            cache_dir = default_cache_dir()
        return Path(cache_dir) / "latents" / f"{voice}-{key[:24]}.pt"

    def _compute_and_store(self, voice: str, voices_dir: str | Path | None, path: Path) -> tuple[Any, Any]:
        import torch

        ar_latent, diffusion_latent = self._compute_latents(voice_clips(voice, voices_dir))
        with atomic_path(path) as tmp:  # a crash never leaves a half file that looks like a hit
            torch.save({"autoregressive": ar_latent.cpu(), "diffusion": diffusion_latent.cpu(),
                        "models": self.model_identity, "format": LATENTS_FORMAT}, tmp)
            os.chmod(tmp, 0o644)  # other workers read this cache, whatever this one's umask
        return ar_latent, diffusion_latent

    def _compute_latents(self, clips: list[Path]) -> tuple[Any, Any]:
        """(AR latent (1, d_ar), diffusion latent (1, 2*d_diff)) from the clips, deterministically, in fp32.

        Mirrors TextToSpeech.get_conditioning_latents, except that each clip is cropped to its centre 6 s
        window instead of a random one (format_conditioning then sees no gap, so uses no randomness)."""
        import torch
        import torchaudio

        api = self._tm._tortoise()
        m = self.models
        self.latents_computed += 1
        random.seed(0)  # belt and braces: format_conditioning only draws from `random` on a gap
        with torch.no_grad():
            auto_conds, diffusion_conds = [], []
            for path in clips:
                wav = torch.from_numpy(load_clip_22k(path)).unsqueeze(0)  # (1, n) at 22.05 kHz
                gap = wav.shape[-1] - COND_SAMPLES
                centred = wav[:, gap // 2: gap // 2 + COND_SAMPLES] if gap > 0 else wav
                auto_conds.append(api.format_conditioning(centred, device=self.device))  # (1, 80, frames)
                wav24 = torchaudio.functional.resample(wav, REFERENCE_RATE_HZ, 24000)
                wav24 = api.pad_or_truncate(wav24, DIFFUSION_COND_SAMPLES).to(self.device)
                diffusion_conds.append(m.univnet_stft().mel_spectrogram(wav24))  # (1, 100, frames)
            ar_latent = m.autoregressive.get_conditioning(torch.stack(auto_conds, dim=1))
            diffusion_latent = m.diffusion.get_conditioning(torch.stack(diffusion_conds, dim=1))
        return ar_latent, diffusion_latent

    def _voice_latents(self, voice: str, voices_dir: str | Path | None) -> tuple[Any, Any]:
        import torch

        key = self._latents_key(voice, voices_dir)
        if key in self._latents:
            return self._latents[key]
        path = self._latents_file(voice, key, None)
        latents: tuple[Any, Any] | None = None
        if path.exists():
            try:
                stored = torch.load(str(path), map_location="cpu", weights_only=True)
                latents = (stored["autoregressive"], stored["diffusion"])
            except Exception as exc:  # a corrupt cache file is recomputed, never trusted
                log.warning("tortoise: unreadable latents %s (%s); recomputing", path, exc)
        if latents is None:
            latents = self._compute_and_store(voice, voices_dir, path)
        latents = (latents[0].to(self.device), latents[1].to(self.device))
        self._latents[key] = latents
        return latents
