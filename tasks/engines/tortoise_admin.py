"""Tortoise's front doors for the CLI: `audiobook doctor`, `models fetch`, `voices latents`.

Re-exported by tasks.engines.tortoise. The engine is imported inside each function (it imports this
module), and torch only where a function needs it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks import settings as envs
from tasks.engines.tortoise_voices import list_voices

if TYPE_CHECKING:
    from tasks.engines.tortoise import TortoiseEngine


def _process_engine() -> TortoiseEngine:
    from tasks.engines import get_engine
    from tasks.engines.tortoise import TortoiseEngine

    engine = get_engine("tortoise")
    assert isinstance(engine, TortoiseEngine)
    return engine


def compute_latents(voice: str, voices_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """`audiobook voices latents NAME`: compute (or find) the cached latents of `voice`; returns the file."""
    return _process_engine().latents_path(voice, voices_dir, cache_dir)


def weights_present(models_dir: str | Path | None = None) -> bool:
    from tasks.engines import tortoise_models

    return tortoise_models.weights_present(models_dir)


def fetch_models(models_dir: str | Path | None = None) -> list[Path]:
    """`audiobook models fetch`: download the checkpoints with Tortoise's own mechanism (needs internet)."""
    from tasks.engines import tortoise_models

    return tortoise_models.fetch_models(models_dir)


def doctor(voices_dir: str | Path | None = None) -> dict[str, Any]:
    """Device, GPU, weights, model load time and a one-sentence render time (tiny models when
    AUDIOBOOK_TORTOISE_MODELS=tiny). Never raises: problems are reported in the dict."""
    from tasks.engines.tortoise import TortoiseEngine, _version

    report: dict[str, Any] = {"tortoise": _version("tortoise-tts"), "torch": _version("torch"),
                              "models": envs.TORTOISE_MODELS.get()}
    try:
        import torch

        report["cuda"] = torch.cuda.is_available()
        if report["cuda"]:
            free, total = torch.cuda.mem_get_info()
            report.update(gpu=torch.cuda.get_device_name(0), gpu_free_gib=round(free / 2**30, 1),
                          gpu_total_gib=round(total / 2**30, 1))
        from tasks.engines import tortoise_models

        report["models_dir"] = str(tortoise_models.default_models_dir())
        report["weights_present"] = tortoise_models.weights_present()
        engine = TortoiseEngine()
        report.update(device=engine.device, precision=engine.precision, version=engine.info.version)
        t = time.perf_counter()
        engine.models  # noqa: B018 - load now, to time it
        report["model_load_s"] = round(time.perf_counter() - t, 2)
        voices = list_voices(voices_dir)
        if voices:
            t = time.perf_counter()
            clip = engine.synthesize("This is a short test of the voice.", voices[0], engine.settings_for("draft"),
                                     0, voices_dir=str(voices_dir) if voices_dir else None)
            report.update(test_voice=voices[0], test_render_s=round(time.perf_counter() - t, 2),
                          test_audio_s=round(clip.duration_s, 2))
        report["ok"] = True
    except Exception as exc:
        report.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    return report
