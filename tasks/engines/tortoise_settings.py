"""Tortoise's generation settings: the quality table, the environment's knobs, and their checks.

Environment knobs (tests and operators; `quality_settings` folds the first three into the settings, so
they are part of every cache key):
    AUDIOBOOK_TORTOISE_SAMPLES, AUDIOBOOK_TORTOISE_DIFFUSION_STEPS, AUDIOBOOK_TORTOISE_MAX_MEL_TOKENS
    AUDIOBOOK_TORTOISE_BATCH_ROWS AR rows (chunks x candidates) per batch (default: from GPU memory; 32 on CPU)
    AUDIOBOOK_TORTOISE_BATCHED    0: the per-chunk path of adapter 1 (benchmark baseline)
    AUDIOBOOK_TORTOISE_AR_BATCH   per-chunk path only: candidates per AR call (default: from GPU memory)
    AUDIOBOOK_TORTOISE_DEVICE     cuda | cpu (default: cuda when available; a render refuses a GPU-less
                                  pool unless it is cpu, see tasks.workers)
    AUDIOBOOK_TORTOISE_PRECISION  fp16 | fp32: the precision a worker must run (fp16 on a CPU is refused)
    AUDIOBOOK_TORTOISE_HALF       1 | 0 (default: 1 on cuda, always 0 on cpu; PRECISION wins)
    AUDIOBOOK_TORTOISE_MODELS     pretrained (default) | tiny | random-full: the model bundle
    AUDIOBOOK_TORTOISE_REDACTION  0 turns the wav2vec prompt redaction off (prompts are then dropped)

Standard library only: importing it imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks import settings as envs  # the environment's settings ('settings' here: an engine's)
from tasks.errors import EngineError, UserError

# quality -> generation settings, in one table. Evidence (README "Tortoise on GPUs"): Tortoise's own
# presets (ultra_fast 16 candidates / 30 steps, fast 96 / 80, standard 256 / 200) and its docs on
# conditioning-free guidance, and DDIM at a fraction of DDPM's steps. draft and standard use DDIM.
_COMMON: dict[str, Any] = {
    "temperature": 0.8, "top_p": 0.8, "length_penalty": 1.0, "repetition_penalty": 2.0,
    "cond_free_k": 2.0, "diffusion_temperature": 1.0, "max_mel_tokens": 500,
}
QUALITY_SETTINGS: dict[str, dict[str, Any]] = {
    "draft": {**_COMMON, "num_autoregressive_samples": 4, "diffusion_iterations": 16,
              "diffusion_sampler": "ddim", "cond_free": True},
    "standard": {**_COMMON, "num_autoregressive_samples": 16, "diffusion_iterations": 30,
                 "diffusion_sampler": "ddim", "cond_free": True},
    "high": {**_COMMON, "num_autoregressive_samples": 96, "diffusion_iterations": 80,
             "diffusion_sampler": "p", "cond_free": True},
}
_ENV_OVERRIDES = (
    (envs.TORTOISE_SAMPLES, "num_autoregressive_samples"),
    (envs.TORTOISE_DIFFUSION_STEPS, "diffusion_iterations"),
    (envs.TORTOISE_MAX_MEL_TOKENS, "max_mel_tokens"),
)
DECODERS = ("batched", "per-chunk")
DIFFUSION_SAMPLERS = ("p", "ddim")  # stock's DDPM (p_sample) or DDIM (eta 0)
TRAINED_DIFFUSION_STEPS = 4000
# Also accepted: the pipeline's `sentence_pause_ms` (Tortoise speaks a chunk's sentences with its own
# prosody, so it is ignored here), `decoder`, and for the per-chunk decoder the AR batch size, which
# changes which candidates it samples.
SETTING_KEYS = frozenset(QUALITY_SETTINGS["standard"]) | {"autoregressive_batch_size", "sentence_pause_ms",
                                                           "decoder"}
KV_BYTES_PER_TOKEN_ROW = 2 * 30 * 1024 * 2  # keys + values, 30 layers x 1024, fp16: 120 KiB
ROW_TOKENS = 402 + 3 + 500  # the longest prefix plus the longest decode
MAX_ROWS_GPU = 256  # beyond ~64 rows a step is bound by reading the KV cache: more rows gain little
MAX_ROWS_CPU = 32


def ddim_steps_ok(steps: int) -> bool:
    """Whether DDIM can take exactly `steps` of the 4,000 trained steps at an integer stride."""
    return any(len(range(0, TRAINED_DIFFUSION_STEPS, i)) == steps for i in range(1, TRAINED_DIFFUSION_STEPS))


def _precision_setting() -> str:
    """AUDIOBOOK_TORTOISE_PRECISION (fp16 | fp32: honoured or refused; "fp16!" marks it explicit), else
    AUDIOBOOK_TORTOISE_HALF (1: fp16 where there is a GPU, the default; 0: fp32)."""
    raw = (envs.TORTOISE_PRECISION.get() or "").strip().lower()
    if raw:
        if raw not in ("fp16", "fp32"):
            raise UserError(f"AUDIOBOOK_TORTOISE_PRECISION={raw!r} is not known", field="AUDIOBOOK_TORTOISE_PRECISION",
                            fix="use fp16 (GPU workers) or fp32")
        return "fp16!" if raw == "fp16" else "fp32"
    return "fp16" if envs.TORTOISE_HALF.get() else "fp32"


def _models_mode() -> str:
    mode = envs.TORTOISE_MODELS.get().strip().lower()
    if mode not in ("pretrained", "tiny", "random-full"):
        raise UserError(f"AUDIOBOOK_TORTOISE_MODELS={mode!r} is not known", field="AUDIOBOOK_TORTOISE_MODELS",
                        fix="use pretrained (default), tiny or random-full")
    return mode


def quality_settings(quality: str) -> dict[str, Any]:
    """The settings of `quality` from the table, with the environment's overrides folded in (so they are
    part of every cache key). Refuses an unknown quality and a DDIM step count DDIM cannot take."""
    if quality not in QUALITY_SETTINGS:
        raise UserError(f"unknown quality {quality!r}", field="quality",
                        fix=f"use one of: {', '.join(QUALITY_SETTINGS)}")
    settings = dict(QUALITY_SETTINGS[quality])
    for variable, key in _ENV_OVERRIDES:
        value = variable.get()
        if value is not None:
            settings[key] = value
    if settings["diffusion_sampler"] == "ddim" and not ddim_steps_ok(int(settings["diffusion_iterations"])):
        raise UserError(
            f"DDIM cannot take {settings['diffusion_iterations']} of Tortoise's 4000 diffusion steps at an "
            "even stride", field="AUDIOBOOK_TORTOISE_DIFFUSION_STEPS", fix="use e.g. 10, 16, 20, 25, 30, 40 or 50")
    return settings


def merged_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A request's settings over the standard ones, checked: unknown keys, decoders, samplers and DDIM
    step counts are an EngineError."""
    unknown = set(settings) - SETTING_KEYS
    if unknown:
        raise EngineError(f"unknown Tortoise settings {sorted(unknown)}; known: {sorted(SETTING_KEYS)}")
    merged = {"decoder": "batched", **QUALITY_SETTINGS["standard"], **settings}
    if merged["decoder"] not in DECODERS:
        raise EngineError(f"unknown Tortoise decoder {merged['decoder']!r}; known: {', '.join(DECODERS)}")
    if merged["diffusion_sampler"] not in DIFFUSION_SAMPLERS:
        raise EngineError(f"unknown diffusion sampler {merged['diffusion_sampler']!r}; "
                          f"known: {', '.join(DIFFUSION_SAMPLERS)}")
    if merged["diffusion_sampler"] == "ddim" and not ddim_steps_ok(int(merged["diffusion_iterations"])):
        raise EngineError(f"DDIM cannot take {merged['diffusion_iterations']} of Tortoise's 4000 diffusion "
                          "steps at an even stride: use e.g. 10, 16, 20, 25, 30, 40, 50 or 80")
    return merged


# Tortoise on a CPU, for the no-GPU message when this worker has measured nothing yet: engine seconds
# per autoregressive code and candidate, and per diffusion forward (conditioning-free guidance: two a
# step). Full size: 0.68 s a code with one candidate on 2 cores (docs/DESIGN, measured); the diffusion
# figure is an estimate. Tiny: the test models (~3 s for a whole 2-candidate, 80-code chunk).
CPU_SECONDS = {"full": (0.68, 3.0), "tiny": (0.01, 0.05)}
TYPICAL_CODES = 250  # ~11 s of speech: a chunk of ~150 characters


def cpu_seconds_per_chunk(settings: Mapping[str, Any]) -> float:
    """Seconds a Tortoise chunk takes on a CPU at `settings`, from CPU_SECONDS (no measurement here)."""
    mode = envs.TORTOISE_MODELS.get().strip().lower()
    per_code, per_forward = CPU_SECONDS["tiny" if mode == "tiny" else "full"]
    codes = min(int(settings.get("max_mel_tokens", 500)), TYPICAL_CODES)
    candidates = int(settings.get("num_autoregressive_samples", 16))
    forwards = int(settings.get("diffusion_iterations", 30)) * (2 if settings.get("cond_free", True) else 1)
    return candidates * codes * per_code + forwards * per_forward
