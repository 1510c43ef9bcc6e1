"""Tortoise TTS behind the engine interface, with its models resident on one device.

    synthesize_many(requests)  (synthesize(text, ...) is a batch of one)
      -> conditioning latents of `voice`      computed once per voice, cached on disk (`compute_latents`)
      -> N autoregressive candidates          one decode for K chunks x N candidates (tortoise_batch)
      -> CLVP re-ranking                      per chunk: the candidate whose codes best match the text wins
      -> AR latents of the winners            the diffusion model's conditioning, K in one pass
      -> diffusion (mel) -> UnivNet vocoder   equal lengths share forwards (DDPM or DDIM) -> K at once;
                                              24 kHz mono float32

Chunks are grouped by voice and settings, sorted by token length, and rendered `batch_capacity` at a time
(rows = chunks x candidates, from the device's memory); out of memory halves the batch, and every batch
still queued, and goes on. A
chunk's audio does not depend on its batch-mates (own generators seeded from its seed).

This mirrors `tortoise.api.TextToSpeech.tts()` but keeps every model on the worker's device (stock
`tts()` moves each model CPU<->GPU on every call), runs fp16 autocast + kv_cache on a GPU, computes
voice latents once with a fixed crop (stock crops a random window per call, so the voice drifts between
chunks). `decoder: per-chunk` (AUDIOBOOK_TORTOISE_BATCHED=0) keeps adapter 1's path (tortoise_pipeline).

Model bundles (tortoise_models.py): AUDIOBOOK_TORTOISE_MODELS=pretrained (default; the real weights from
TORTOISE_MODELS_DIR, offline) | tiny (random tiny models: tests, CI) | random-full (benchmarks).

Settings and environment knobs (quality table, AUDIOBOOK_TORTOISE_*): tortoise_settings.py.

Errors: unknown voice / bad clip -> VoiceError; no weights offline -> WeightsMissingError; CUDA out of
memory -> half the batch, and for a single chunk TransientEngineError (retried); anything else -> EngineError.

Importing this module does not import torch: the CPU quickstart has no torch installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from tasks import settings as envs  # the environment's settings ('settings' here: an engine's)
from tasks.engines.base import Clip, EngineBase, EngineInfo, EngineStatus, SynthRequest
from tasks.engines.tortoise_admin import (  # noqa: F401 - re-exported: the CLI uses them here
    compute_latents,
    doctor,
    fetch_models,
    weights_present,
)
from tasks.engines.tortoise_latents import LATENTS_FORMAT, VoiceLatents  # noqa: F401 - re-exported
from tasks.engines.tortoise_settings import (  # noqa: F401 - re-exported: tests and benchmarks use them here
    KV_BYTES_PER_TOKEN_ROW,
    MAX_ROWS_CPU,
    MAX_ROWS_GPU,
    QUALITY_SETTINGS,
    ROW_TOKENS,
    _models_mode,
    _precision_setting,
    cpu_seconds_per_chunk,
    ddim_steps_ok,
    merged_settings,
    quality_settings,
)
from tasks.engines.tortoise_voices import (  # noqa: F401 - re-exported: the CLI and tests use them here
    CLIP_EXTENSIONS,
    REFERENCE_RATE_HZ,
    bundled_voices_dir,
    clips_digest,
    list_voices,
    load_clip_22k,
    split_prompts,
    voice_clips,
)
from tasks.errors import EngineError, TransientEngineError, UserError

log = logging.getLogger(__name__)

# 2: batched decode with mel positions 0, 1, 2, ... (adapter 1 had kv_cache=True's k+1), per-chunk
# generators for every stage, a vocoder tail pad of 24 frames, the re-tuned quality table.
ADAPTER_VERSION = "2"
SAMPLE_RATE_HZ = 24000  # the vocoder's output rate
MAX_TEXT_TOKENS = 400  # Tortoise rejects longer text (its assert in tts())

def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


# -- the engine ------------------------------------------------------------------------------------------
class TortoiseEngine(VoiceLatents, EngineBase):
    """Tortoise with resident models. Thread-safe: one synthesis at a time per process (one GPU)."""

    verify_default = "reroll"  # Tortoise drops and invents words: every take is heard, a bad one re-rolled
    needs_gpu = True

    def cpu_seconds_per_chunk(self, settings: Mapping[str, Any]) -> float | None:
        return cpu_seconds_per_chunk(settings)

    @classmethod
    def status(cls, voices_dir: Path) -> EngineStatus:
        """Installed (tortoise, torch: found, not imported), ready when the weights are on disk; voices: the
        folders of reference clips (ours, then Tortoise's bundled ones); the device once the GPU probe knows."""
        from tasks.engines import tortoise_models as tm
        from tasks.engines.gpu import GPU

        missing = [m for m in ("tortoise", "torch") if importlib.util.find_spec(m) is None]
        weights = tm.weights_on_disk()
        voices = list_voices(voices_dir)
        bundled = bundled_voices_dir()
        reason = (f"not installed ({', '.join(missing)} missing): run 'make setup-tortoise'" if missing else
                  None if weights else f"no Tortoise weights: {tm.missing_weights_fix(tm.default_models_dir())}")
        return EngineStatus(
            installed=not missing, ready=not missing and weights, reason=reason, voices=tuple(voices),
            voice_sources={v: "voices/" if (voices_dir / v).is_dir() else f"bundled with Tortoise ({bundled})"
                           for v in voices},
            qualities=tuple(QUALITY_SETTINGS), device=envs.TORTOISE_DEVICE.get() or GPU.device(),
            clips=True, add_voice=f"put reference clips in {voices_dir}/<name>/",
        )

    @classmethod
    def doctor(cls, voices_dir: Path) -> dict[str, Any]:
        """The module's `doctor` (below): device, GPU, weights, model load time, a test render."""
        status = cls.status(voices_dir)
        if not status.installed:
            return {"ok": False, **status.as_dict(), "error": status.reason}
        return doctor(voices_dir)

    def __init__(self, *, models: Any = None, models_dir: str | Path | None = None, device: str | None = None,
                 half: bool | None = None, cache_dir: str | Path | None = None, seed: int = 0) -> None:
        from tasks.engines import tortoise_models as tm

        self._tm = tm
        self._models = models  # a TortoiseModels, or None: built on first use
        self._mode = "given" if models is not None else _models_mode()
        self._models_dir = Path(models_dir) if models_dir else tm.default_models_dir()
        self._model_seed = seed
        if device is None:
            device = models.device if models is not None else envs.TORTOISE_DEVICE.get()
        self._device: str | None = device  # None: found on first use (see `device`), never when planning
        self._precision_asked = _precision_setting() if half is None else ("fp16" if half else "fp32")
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._lock = threading.RLock()
        self._latents: dict[str, tuple[Any, Any]] = {}  # latents key -> (ar latent, diffusion latent) on device
        self._aligner: Any = None
        self._prompt_mode: str | None = None
        self.latents_computed = 0  # how many times latents were computed (not read from the cache)
        self.last_timings: dict[str, float] = {}
        self.decode_stats: dict[str, Any] = {}  # decode steps and rows, summed (benchmarks)
        self._row_limit = 0  # lowered after an out-of-memory (0: none)

        # The identity is cheap to know without loading (and fails fast when weights are missing).
        if models is not None:
            identity = models.identity
        elif self._mode == "pretrained":
            identity = tm.weights_identity(tm.checkpoint_paths(self._models_dir))
        else:
            identity = f"random-{'tiny' if self._mode == 'tiny' else 'full'}-seed{seed}"
        self.model_identity = identity
        self.info = self._make_info()

    # -- where it runs: device and precision, found on the worker ---------------------------------------
    def _make_info(self) -> EngineInfo:
        """The engine's info; its version names the precision that runs (part of every chunk key), and
        reads "unresolved" until the device is known (an engine built only to plan a book)."""
        precision = self.precision if self._device is not None else "unresolved"
        return EngineInfo(
            name="tortoise",
            version=(f"tortoise-{_version('tortoise-tts')}/adapter-{ADAPTER_VERSION}/"
                     f"models-{self.model_identity}/{precision}"),
            max_chars=250,  # Tortoise's read.py packs ~200 chars, 300 at most; 400 tokens is the hard cap
            sample_rate_hz=SAMPLE_RATE_HZ,
            supports_prompts=True,
            device=self._device or "unresolved",
        )

    @property
    def device(self) -> str:
        """The given device, else AUDIOBOOK_TORTOISE_DEVICE, else cuda when available: found on first use
        (it imports torch), so that building the engine to plan a book never imports torch."""
        if self._device is None:
            import torch

            self._device = "cuda" if torch.cuda.is_available() else "cpu"
            self.info = self._make_info()
        return self._device

    @device.setter
    def device(self, value: str) -> None:
        self._device = value
        self.info = self._make_info()

    @property
    def half(self) -> bool:
        """fp16 autocast: on a GPU unless fp32 was asked for; never on a CPU."""
        return self.precision == "fp16"

    @property
    def precision(self) -> str:
        """"fp16" or "fp32" as this worker runs. An explicit AUDIOBOOK_TORTOISE_PRECISION=fp16 that the
        device cannot honour (a CPU) is refused, never quietly run as fp32."""
        on_gpu = self.device.startswith("cuda")
        if self._precision_asked == "fp16!" and not on_gpu:
            raise UserError(f"AUDIOBOOK_TORTOISE_PRECISION=fp16 needs a GPU; this worker runs Tortoise on {self.device}",
                            field="AUDIOBOOK_TORTOISE_PRECISION",
                            fix="set AUDIOBOOK_TORTOISE_PRECISION=fp32, or render on GPU workers")
        return "fp16" if on_gpu and self._precision_asked != "fp32" else "fp32"

    # -- models ----------------------------------------------------------------------------------------
    @property
    def models(self) -> Any:
        """The resident bundle, loaded once (lock-guarded) on first use."""
        with self._lock:
            if self._models is None:
                tm, kv = self._tm, True
                if self._mode == "tiny":
                    self._models = tm.build_tiny(self._model_seed, self.device, kv_cache=kv, half=self.half)
                elif self._mode == "random-full":
                    self._models = tm.build_random_full(self._model_seed, self.device, kv_cache=kv, half=self.half)
                else:
                    self._models = tm.load_pretrained(self._models_dir, self.device, kv_cache=kv, half=self.half)
                log.info("tortoise models %s loaded on %s in %.1f s", self._models.identity, self.device,
                         self._models.load_s)
            return self._models

    @property
    def prompt_mode(self) -> str:
        """"redact": bracketed prompts are spoken then cut out with the wav2vec aligner (Tortoise's way).
        "dropped": the aligner's hub models are not here, so prompts are removed before synthesis."""
        with self._lock:
            if self._prompt_mode is None:
                self._prompt_mode = "dropped"
                if envs.TORTOISE_REDACTION.get():
                    try:
                        self._tm._tortoise()
                        from tortoise.utils.wav2vec_alignment import Wav2VecAlignment

                        self._aligner = Wav2VecAlignment(device=self.device)
                        self._prompt_mode = "redact"
                    except Exception as exc:  # offline: the three wav2vec2 models are not cached
                        log.warning("tortoise: the wav2vec aligner is unavailable (%s); bracketed prompts are "
                                    "dropped from the text instead of spoken and redacted",
                                    str(exc).splitlines()[0][:200])
            return self._prompt_mode

    # -- Engine protocol -------------------------------------------------------------------------------
    def settings_for(self, quality: str) -> dict[str, Any]:
        settings = quality_settings(quality)
        if not envs.TORTOISE_BATCHED.get():
            # The per-chunk decoder's batch size changes which candidates are sampled, so it is part of
            # the settings (and of every chunk's cache key). The batched decoder's batch changes nothing.
            settings["decoder"] = "per-chunk"
            settings["autoregressive_batch_size"] = self._ar_batch_size({})
        else:
            settings["decoder"] = "batched"
        return settings

    def check_voice(self, voice: str, voices_dir: str | None) -> None:
        voice_clips(voice, voices_dir)

    def voice_fingerprint(self, voice: str, voices_dir: str | None) -> str:
        return self._latents_key(voice, voices_dir)

    def synthesize(self, text: str, voice: str, settings: Mapping[str, Any], seed: int, *,
                   voices_dir: str | None = None) -> Clip:
        outcome = self.synthesize_many([SynthRequest(text, voice, settings, seed, voices_dir)])[0]
        if isinstance(outcome, EngineError):
            raise outcome
        return outcome

    # -- generation ------------------------------------------------------------------------------------
    def _seed_everything(self, seed: int) -> None:
        import torch

        # HF generate and the diffusion sampler draw from the global generators, so seed those (under
        # self._lock, one call at a time); format_conditioning uses python `random`.
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)  # also seeds every CUDA device

    def _ar_batch_size(self, settings: Mapping[str, Any]) -> int:
        if settings.get("autoregressive_batch_size"):
            return int(settings["autoregressive_batch_size"])
        env = envs.TORTOISE_AR_BATCH.get()
        if env:
            return env
        if self.device.startswith("cuda"):
            import torch

            # From the card's total memory, not its free memory: the choice must not change while a
            # worker runs (it is part of every chunk's cache key). The resident models take ~4 GiB.
            total_gib = torch.cuda.mem_get_info()[1] / 2**30
            return 16 if total_gib > 20 else 8 if total_gib > 14 else 4 if total_gib > 10 else 1
        return 4

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        import torch

        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=True) if self.half \
                else contextlib.nullcontext():
            yield

    def _prepare(self, text: str, seed: int) -> Any:
        """The chunk as the models take it, or EngineError (empty once prompts go, too many tokens)."""
        from tasks.engines.tortoise_pipeline import Prepared

        redact = False
        if "[" in text:
            if self.prompt_mode == "redact":
                redact = True
            else:
                text = split_prompts(text)[1]
        if not text.strip():
            raise EngineError("nothing to speak: the text is empty once prompts are removed")
        tokens = (*self.models.tokenizer.encode(text), 0)  # the trailing 0 tts() appends
        if len(tokens) >= MAX_TEXT_TOKENS:
            raise EngineError(f"text is {len(tokens)} tokens, Tortoise's limit is {MAX_TEXT_TOKENS}: "
                              "split it into shorter chunks")
        return Prepared(text, tokens, seed, redact)

    def _render_group(self, voice: str, voices_dir: str | None, s: Mapping[str, Any],
                      items: list[tuple[int, Any]], outcomes: dict[int, Clip | EngineError]) -> None:
        """Render chunks that share voice and settings, `batch_capacity` at a time in token-length order.
        Out of memory halves the batch (remembered for the rest of this worker's life) and goes on; a
        single chunk that does not fit is a transient fault of that chunk."""
        import torch

        from tasks.engines import tortoise_pipeline as tp

        clock = tp.StageClock(self.device)
        with clock.stage("latents_s"):
            latents = self._voice_latents(voice, voices_dir)
        items = sorted(items, key=lambda item: len(item[1].tokens))
        if s.get("decoder") == "per-chunk":
            for index, prepared in items:
                outcomes[index] = tp.render_one(self, prepared, s, latents, clock)
            self.last_timings = clock.seconds
            return
        size = self.batch_capacity(s)
        pending = list(items)
        while pending:
            part, pending = pending[:size], pending[size:]
            failure = None
            try:
                clips = tp.render_batch(self, [p for _, p in part], s, latents, clock)
            except torch.cuda.OutOfMemoryError as exc:
                failure = str(exc)  # not the exception: its traceback holds the batch's tensors
            if failure is None:
                for (index, _), clip in zip(part, clips, strict=True):
                    outcomes[index] = clip
                continue
            _free_device_memory()  # outside the except block, so the failed batch's tensors are gone
            if len(part) == 1:
                outcomes[part[0][0]] = TransientEngineError(f"tortoise ran out of GPU memory: {failure}")
                continue
            # Every batch still to come takes the lower capacity, not only this one's halves.
            size = len(part) // 2
            self._row_limit = size * int(s["num_autoregressive_samples"])
            log.warning("tortoise: out of memory at %d chunks per batch; going on with %d", len(part), size)
            pending = part + pending
        self.last_timings = clock.seconds

    def synthesize_many(self, requests: Sequence[SynthRequest]) -> list[Clip | EngineError]:
        """Clips for many chunks; one outcome per request, in order (see base.BatchEngine)."""
        import torch

        outcomes: dict[int, Clip | EngineError] = {}
        groups: dict[str, tuple[SynthRequest, dict[str, Any], list[tuple[int, Any]]]] = {}
        with self._lock:
            started = time.perf_counter()
            for index, r in enumerate(requests):
                try:
                    merged = self._merged_settings(r.settings)
                    prepared = self._prepare(r.text, r.seed)
                except UserError:
                    raise
                except EngineError as exc:
                    outcomes[index] = exc
                    continue
                key = json.dumps([r.voice, r.voices_dir, merged], sort_keys=True, default=str)
                groups.setdefault(key, (r, merged, []))[2].append((index, prepared))
            for first, merged, items in groups.values():
                oom = None
                try:
                    self._render_group(first.voice, first.voices_dir, merged, items, outcomes)
                except (UserError, EngineError):
                    raise
                except torch.cuda.OutOfMemoryError as exc:  # the per-chunk decoder, or latents
                    oom = str(exc)
                except Exception as exc:
                    error = EngineError(f"tortoise failed: {type(exc).__name__}: {exc}")
                    for index, prepared in items:
                        outcomes.setdefault(index, EngineError(
                            f"tortoise failed on {prepared.text[:60]!r}: {type(exc).__name__}: {exc}"))
                    log.debug("tortoise batch failed", exc_info=error)
                if oom is not None:  # freed here, once the traceback and its tensors are gone
                    _free_device_memory()
                    raise TransientEngineError(f"tortoise ran out of GPU memory: {oom}")
            self.last_timings = {**self.last_timings, "total_s": time.perf_counter() - started}
        done = [outcomes[i] for i in range(len(requests))]
        self.last_timings["audio_s"] = sum(o.duration_s for o in done if isinstance(o, Clip))
        return done

    def _merged_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        return merged_settings(settings)

    def _max_rows(self) -> int:
        """AR rows (chunks x candidates) one decode holds: env, else from the card's total memory (not its
        free memory, so the choice is stable), else MAX_ROWS_CPU. Lowered for good after an out-of-memory."""
        env = envs.TORTOISE_BATCH_ROWS.get()
        if env:
            rows = env
        elif self.device.startswith("cuda"):
            import torch

            total = torch.cuda.mem_get_info()[1]
            budget = total - 8 * 2**30  # resident models (~4 GiB) and the other stages' activations
            per_row = KV_BYTES_PER_TOKEN_ROW * ROW_TOKENS * (1 if self.half else 2)
            rows = max(1, min(MAX_ROWS_GPU, budget // per_row))
        else:
            rows = MAX_ROWS_CPU
        return min(rows, self._row_limit) if self._row_limit else rows

    def batch_capacity(self, settings: Mapping[str, Any]) -> int:
        """Chunks one call renders together at `settings` (rows // candidates, at least 1)."""
        merged = {**QUALITY_SETTINGS["standard"], **settings}
        if merged.get("decoder") == "per-chunk":
            return 1
        return max(1, self._max_rows() // max(1, int(merged["num_autoregressive_samples"])))


def _free_device_memory() -> None:
    """Return the CUDA allocator's cached blocks (after an out-of-memory, once its tensors are gone)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
