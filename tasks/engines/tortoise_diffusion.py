"""Tortoise's spectrogram diffusion: one chunk on the global generator (the per-chunk path), or many
chunks at once with a generator per chunk (the batched path).

    diffuser(steps, cond_free, k, sampler)   Tortoise's SpacedDiffusion over `steps` of the 4,000 steps
    diffuse(model, latents, cond, ...)       one chunk, as tortoise.api.do_spectrogram_diffusion
    diffuse_many(model, latents, cond, gens) K chunks: those of equal output length share every forward,
                                             and conditioning-free guidance is one forward of 2 x rows

`diffuse_many` gives each chunk the mel `diffuse` gives it with the global generator seeded as that
chunk's generator (equal up to float rounding): the start noise and every DDPM step's noise come from
the chunk's own generator in the shapes `diffuse` draws them, and the model has no cross-row operation
(GroupNorm, attention and convolutions are per row), so rows of one length never see each other.
DiffusionTts has no padding mask, so chunks of different output lengths never share a forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import torch

MEL_CHANNELS = 100
MAX_CHUNKS_PER_FORWARD = 16  # 32 rows with guidance: activations stay small next to the AR cache


def output_frames(codes: int) -> int:
    """Mel frames at 24 kHz for `codes` AR latents (tortoise.api.do_spectrogram_diffusion)."""
    return codes * 4 * 24000 // 22050


@lru_cache(maxsize=16)
def diffuser(steps: int, cond_free: bool, cond_free_k: float, sampler: str) -> Any:
    """Tortoise's SpacedDiffusion (as load_discrete_vocoder_diffuser) over `steps` of the 4,000 trained
    steps: stock's spacing for "p", the DDIM paper's fixed stride ("ddimN") for "ddim"."""
    from tortoise.utils.diffusion import SpacedDiffusion, get_named_beta_schedule, space_timesteps

    use = space_timesteps(4000, f"ddim{steps}" if sampler == "ddim" else [steps])
    return SpacedDiffusion(use_timesteps=use, model_mean_type="epsilon", model_var_type="learned_range",
                           loss_type="mse", betas=get_named_beta_schedule("linear", 4000),
                           conditioning_free=cond_free, conditioning_free_k=cond_free_k)


def diffuse(model: Any, latents: torch.Tensor, cond: torch.Tensor, *, steps: int, cond_free: bool,
            cond_free_k: float, temperature: float, sampler: str) -> torch.Tensor:
    """One chunk's 24 kHz mel (1, 100, S) from its AR latents (1, M', d), fp32, drawing from the global
    generator (the caller seeds it per chunk). Mirrors tortoise.api.do_spectrogram_diffusion."""
    from tortoise.utils.audio import denormalize_tacotron_mel

    length = output_frames(latents.shape[1])
    shape = (latents.shape[0], MEL_CHANNELS, length)
    embeddings = model.timestep_independent(latents, cond, length, False)
    noise = torch.randn(shape, device=latents.device) * temperature
    d = diffuser(steps, cond_free, float(cond_free_k), sampler)
    kwargs = {"precomputed_aligned_embeddings": embeddings}
    if sampler == "ddim":
        mel = d.ddim_sample_loop(model, shape, noise=noise, model_kwargs=kwargs, progress=False, eta=0.0)
    else:
        mel = d.p_sample_loop(model, shape, noise=noise, model_kwargs=kwargs, progress=False)
    return denormalize_tacotron_mel(mel)[:, :, :length]  # type: ignore[no-any-return]


class _Guided:
    """DiffusionTts for b rows of one length with conditioning-free guidance folded in: the conditioned
    and unconditioned passes are one forward of 2b rows, blended as GaussianDiffusion.p_mean_variance
    blends them (eps only; the variance comes from the conditioned pass). `cfk` is set per step."""

    def __init__(self, model: Any, embeddings: torch.Tensor, cond_free: bool) -> None:
        self.model = model
        self.rows = embeddings.shape[0]
        self.cond_free = cond_free
        self.cfk = 0.0
        if cond_free:  # forward(conditioning_free=True) uses unconditioned_embedding over every frame
            uncond = model.unconditioned_embedding.expand(self.rows, -1, embeddings.shape[-1])
            embeddings = torch.cat([embeddings, uncond.to(embeddings.dtype)], dim=0)
        self.embeddings = embeddings

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **_: Any) -> torch.Tensor:
        if not self.cond_free:
            return self.model(x, t, precomputed_aligned_embeddings=self.embeddings)  # type: ignore[no-any-return]
        out = self.model(torch.cat([x, x]), torch.cat([t, t]), precomputed_aligned_embeddings=self.embeddings)
        channels = x.shape[1]
        eps, var = torch.split(out[:self.rows], channels, dim=1)
        eps_free = out[self.rows:, :channels]
        return torch.cat([(1 + self.cfk) * eps - self.cfk * eps_free, var], dim=1)


def _sample(model: Any, embeddings: torch.Tensor, generators: Sequence[torch.Generator], *, steps: int,
            cond_free: bool, cond_free_k: float, temperature: float, sampler: str) -> torch.Tensor:
    """(b, 100, S) normalised mels for b chunks of one length; row i's noise from generators[i]."""
    from tortoise.utils.diffusion import _extract_into_tensor

    device = embeddings.device
    b, length = embeddings.shape[0], embeddings.shape[-1]
    one = (1, MEL_CHANNELS, length)

    def draw() -> torch.Tensor:
        return torch.cat([torch.randn(one, generator=g, device=device) for g in generators])

    d = diffuser(steps, False, 0.0, sampler)  # guidance is _Guided's, for any number of rows
    guided = _Guided(model, embeddings, cond_free)
    x = draw() * temperature
    for i in reversed(range(d.num_timesteps)):
        t = torch.tensor([i] * b, device=device)
        # GaussianDiffusion's ramp (ramp_conditioning_free, on by default): k x (1 - spaced index / steps)
        guided.cfk = cond_free_k * (1 - i / d.num_timesteps)
        out = d.p_mean_variance(guided, x, t, clip_denoised=True)
        if sampler == "ddim":  # eta = 0: sigma is 0, so the step's noise (drawn by stock) adds nothing
            eps = d._predict_eps_from_xstart(x, t, out["pred_xstart"])
            alpha_bar_prev = _extract_into_tensor(d.alphas_cumprod_prev, t, x.shape)
            x = out["pred_xstart"] * torch.sqrt(alpha_bar_prev) + torch.sqrt(1 - alpha_bar_prev) * eps
        else:  # GaussianDiffusion.p_sample, with each row's noise from its own generator
            noise = draw()
            nonzero_mask = (t != 0).float().view(-1, 1, 1)
            x = out["mean"] + nonzero_mask * torch.exp(0.5 * out["log_variance"]) * noise
    return x


def diffuse_many(model: Any, latents: Sequence[torch.Tensor], cond: torch.Tensor,
                 generators: Sequence[torch.Generator], *, steps: int, cond_free: bool, cond_free_k: float,
                 temperature: float, sampler: str) -> list[torch.Tensor]:
    """Each chunk's 24 kHz mel (1, 100, S_i) from its AR latents (1, M'_i, d), fp32; chunk i draws only
    from generators[i]. Chunks of equal output length share forwards, up to MAX_CHUNKS_PER_FORWARD."""
    from tortoise.utils.audio import denormalize_tacotron_mel

    by_length: dict[int, list[int]] = {}
    for i, lat in enumerate(latents):
        by_length.setdefault(output_frames(lat.shape[1]), []).append(i)
    mels: dict[int, torch.Tensor] = {}
    for length, members in by_length.items():
        for lo in range(0, len(members), MAX_CHUNKS_PER_FORWARD):
            part = members[lo:lo + MAX_CHUNKS_PER_FORWARD]
            emb = torch.cat([model.timestep_independent(latents[i], cond, length, False) for i in part])
            x = _sample(model, emb, [generators[i] for i in part], steps=steps, cond_free=cond_free,
                        cond_free_k=float(cond_free_k), temperature=temperature, sampler=sampler)
            out = denormalize_tacotron_mel(x)[:, :, :length]
            for row, i in enumerate(part):
                mels[i] = out[row:row + 1]
    return [mels[i] for i in range(len(latents))]
