"""Tortoise's four networks as one resident bundle, and the three ways to build it.

    load_pretrained(models_dir)  the real checkpoints, found through Tortoise's own `get_model_path`
                                 (a Hugging Face cache folder holding `models--Manmay--tortoise-tts`)
    build_tiny(seed)             the real classes at tiny sizes with random weights (tests, CI)
    build_random_full(seed)      the real classes at full size with random weights (benchmarks)

`TextToSpeech.__init__` hard-codes the full sizes and downloads, so we build the models ourselves from
one size table (`SIZES`). Nothing here imports torch at module import time: `_tortoise()` does it, after
forcing the Hugging Face hub offline (no hub is reachable on render machines, and every missing file
would otherwise spend ~23 s retrying).

Errors: weights that are not on this machine raise WeightsMissingError (a UserError, exit 2) with the fix.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks import settings
from tasks.errors import WeightsMissingError

log = logging.getLogger(__name__)

HF_REPO_ID = "Manmay/tortoise-tts"
HF_CACHE_FOLDER = "models--Manmay--tortoise-tts"
# The four checkpoints the render path needs (CVVP, the classifier and the random-latent generators are unused).
CHECKPOINTS = ("autoregressive.pth", "diffusion_decoder.pth", "clvp2.pth", "vocoder.pth")

# One table of model sizes. "full" is what TextToSpeech.__init__ builds; "tiny" keeps every class and code
# path but shrinks widths and depths so the whole pipeline runs on a CPU in seconds (random weights).
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "autoregressive": dict(
            max_mel_tokens=604, max_text_tokens=402, max_conditioning_inputs=2, layers=30, model_dim=1024,
            heads=16, number_text_tokens=255, start_text_token=255, checkpointing=False,
            train_solo_embeddings=False,
        ),
        "diffusion": dict(
            model_channels=1024, num_layers=10, in_channels=100, out_channels=200, in_latent_channels=1024,
            in_tokens=8193, dropout=0, use_fp16=False, num_heads=16, layer_drop=0, unconditioned_percentage=0,
        ),
        "clvp": dict(
            dim_text=768, dim_speech=768, dim_latent=768, num_text_tokens=256, text_enc_depth=20,
            text_seq_len=350, text_heads=12, num_speech_tokens=8192, speech_enc_depth=20, speech_heads=12,
            speech_seq_len=430, use_xformers=True,
        ),
        "vocoder": {},
    },
}
SIZES["tiny"] = {
    "autoregressive": {**SIZES["full"]["autoregressive"], "layers": 1, "model_dim": 64, "heads": 2},
    "diffusion": {**SIZES["full"]["diffusion"], "model_channels": 64, "num_layers": 1, "in_latent_channels": 64,
                  "num_heads": 2},
    "clvp": {**SIZES["full"]["clvp"], "dim_text": 64, "dim_speech": 64, "dim_latent": 64, "text_enc_depth": 1,
             "text_heads": 2, "speech_enc_depth": 1, "speech_heads": 2},
    "vocoder": {"channel_size": 8},  # full UnivNet (32) costs ~2 s per second of audio on CPU
}
# Between the two, for CPU benchmarks: an AR model big enough (6 x 256) that a decode step costs real
# matrix work, so batching shows there; the other networks stay small.
SIZES["small"] = {
    "autoregressive": {**SIZES["full"]["autoregressive"], "layers": 6, "model_dim": 256, "heads": 4},
    "diffusion": {**SIZES["tiny"]["diffusion"], "in_latent_channels": 256},
    "clvp": SIZES["tiny"]["clvp"],
    "vocoder": SIZES["tiny"]["vocoder"],
}


def _tortoise() -> Any:
    """Import torch and the Tortoise modules we drive, with the hub forced offline. Returns tortoise.api."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    with warnings.catch_warnings():
        # Tortoise's modules trip deprecations in transformers/torch at import; they are not ours to fix.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        import tortoise.api as api
    return api


def default_models_dir() -> Path:
    """Where weights live: TORTOISE_MODELS_DIR (Tortoise's own variable), else Tortoise's default."""
    return settings.MODELS_DIR.get() or Path.home() / ".cache" / "tortoise" / "models"


def missing_weights_fix(models_dir: Path) -> str:
    return (
        f"run 'audiobook models fetch' on a machine with internet (it downloads into {models_dir}), "
        f"or copy a Hugging Face cache folder '{HF_CACHE_FOLDER}' into {models_dir}, "
        "or set TORTOISE_MODELS_DIR to the folder that holds it"
    )


@dataclass
class TortoiseModels:
    """The resident bundle. All modules are in eval mode on `device`; `identity` names the weights."""

    autoregressive: Any  # tortoise.models.autoregressive.UnifiedVoice
    diffusion: Any  # tortoise.models.diffusion_decoder.DiffusionTts
    clvp: Any  # tortoise.models.clvp.CLVP
    vocoder: Any  # tortoise.models.vocoder.UnivNetGenerator (weight norm removed)
    tokenizer: Any  # tortoise.utils.tokenizer.VoiceBpeTokenizer
    device: str
    identity: str  # changes whenever the weights change: part of every cache key
    size: str = "full"
    load_s: float = 0.0
    _stft: Any = field(default=None, repr=False)

    def univnet_stft(self) -> Any:
        """The 24 kHz mel front end of the diffusion conditioning, built once (its set-up runs a pinv)."""
        if self._stft is None:
            from tortoise.utils.audio import TacotronSTFT

            # The same parameters as tortoise.utils.audio.wav_to_univnet_mel, which rebuilds it per call.
            self._stft = TacotronSTFT(1024, 256, 1024, 100, 24000, 0, 12000).to(self.device)
        return self._stft


def _construct(size: str, device: str, *, kv_cache: bool, half: bool) -> tuple[Any, Any, Any, Any, Any]:
    """The four networks at `size` (random weights) plus the tokenizer, not yet on `device`."""
    _tortoise()
    from tortoise.models.autoregressive import UnifiedVoice
    from tortoise.models.clvp import CLVP
    from tortoise.models.diffusion_decoder import DiffusionTts
    from tortoise.models.vocoder import UnivNetGenerator
    from tortoise.utils.tokenizer import VoiceBpeTokenizer

    sizes = SIZES[size]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
        ar = UnifiedVoice(**sizes["autoregressive"]).eval()
        diffusion = DiffusionTts(**sizes["diffusion"]).eval()
        clvp = CLVP(**sizes["clvp"]).eval()
        vocoder = UnivNetGenerator(**sizes["vocoder"])
    return ar, diffusion, clvp, vocoder, VoiceBpeTokenizer()


def _finish(
    parts: tuple[Any, Any, Any, Any, Any], device: str, identity: str, size: str, started: float, *,
    kv_cache: bool, half: bool,
) -> TortoiseModels:
    ar, diffusion, clvp, vocoder, tokenizer = parts
    # The GPT-2 inference wrapper is built after the weights are in (as TextToSpeech does); `half` only
    # matters to deepspeed there, our fp16 is autocast at call time.
    ar.post_init_gpt2_config(use_deepspeed=False, kv_cache=kv_cache, half=half)
    vocoder.eval(inference=True)  # removes weight norm: after loading, the checkpoint has it
    for module in (ar, diffusion, clvp, vocoder):
        module.to(device)
    # Every call runs under torch.no_grad. The models run under fp16 autocast (AR, CLVP) keep
    # requires_grad on: autocast caches its fp16 copy of a weight only for leaves that require grad, so
    # each weight is cast once per autocast region instead of at every call (every decode step).
    for module in (diffusion, vocoder):
        for p in module.parameters():
            p.requires_grad_(False)
    return TortoiseModels(ar, diffusion, clvp, vocoder, tokenizer, device, identity, size,
                          load_s=time.perf_counter() - started)


def _build_random(size: str, seed: int, device: str, kv_cache: bool, half: bool) -> TortoiseModels:
    import torch

    started = time.perf_counter()
    torch.manual_seed(seed)  # random weights are a function of the seed: same seed, same "voice"
    parts = _construct(size, device, kv_cache=kv_cache, half=half)
    return _finish(parts, device, f"random-{size}-seed{seed}", size, started, kv_cache=kv_cache, half=half)


def build_tiny(seed: int = 0, device: str = "cpu", *, kv_cache: bool = True, half: bool = False) -> TortoiseModels:
    """Tiny real models with random weights: the whole path on a CPU in seconds."""
    return _build_random("tiny", seed, device, kv_cache, half)


def build_random_full(seed: int = 0, device: str = "cpu", *, kv_cache: bool = True,
                      half: bool = False) -> TortoiseModels:
    """Full-size models with random weights (benchmarks: real shapes and costs, no download)."""
    return _build_random("full", seed, device, kv_cache, half)


def load_state_dict_file(path: str | Path, *, allow_pickle: bool | None = None) -> dict[str, Any]:
    """Read a checkpoint: `torch.load(weights_only=True)` first (tensors and plain containers only).

    A checkpoint that needs full unpickling (arbitrary code) is read with `weights_only=False` only when
    `allow_pickle` (default: env AUDIOBOOK_TORTOISE_ALLOW_PICKLE, on) says so, with a warning; otherwise
    it is refused with a WeightsMissingError that names the file.
    """
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)  # type: ignore[no-any-return]
    except pickle.UnpicklingError as exc:
        if allow_pickle is None:
            allow_pickle = settings.TORTOISE_ALLOW_PICKLE.get()
        if not allow_pickle:
            raise WeightsMissingError(
                f"checkpoint {path} holds more than tensors and was refused by torch.load(weights_only=True)",
                file=path, fix="re-fetch the weights from the Tortoise repository, or set "
                "AUDIOBOOK_TORTOISE_ALLOW_PICKLE=1 if you trust this file",
            ) from exc
        log.warning("checkpoint %s needs full unpickling (weights_only=False): %s", path, exc)
        return torch.load(str(path), map_location="cpu", weights_only=False)  # type: ignore[no-any-return]


def _checkpoint_path(name: str, models_dir: Path) -> Path:
    """Tortoise's own resolver (hf_hub_download against the cache folder); offline, a cache lookup."""
    api = _tortoise()
    try:
        return Path(api.get_model_path(name, str(models_dir)))
    except Exception as exc:  # LocalEntryNotFoundError, OfflineModeIsEnabled, OSError, ...
        raise WeightsMissingError(
            f"Tortoise weights '{name}' are not in {models_dir} and the model hub is not reachable",
            file=models_dir, fix=missing_weights_fix(models_dir),
        ) from exc


def checkpoint_paths(models_dir: str | Path | None = None) -> dict[str, Path]:
    """name -> local file for the four checkpoints. Raises WeightsMissingError when one is missing."""
    folder = Path(models_dir) if models_dir else default_models_dir()
    return {name: _checkpoint_path(name, folder) for name in CHECKPOINTS}


def weights_on_disk(models_dir: str | Path | None = None) -> bool:
    """Whether the four checkpoints are in the models folder (Hugging Face cache layout, or plain files), by
    looking at files only: `weights_present` asks Tortoise's resolver, which imports torch (seconds)."""
    folder = Path(models_dir) if models_dir else default_models_dir()
    if not folder.is_dir():
        return False
    return all(any(folder.glob(f"models--*--tortoise-tts/snapshots/*/{name}")) or (folder / name).is_file()
               for name in CHECKPOINTS)


def weights_present(models_dir: str | Path | None = None) -> bool:
    try:
        checkpoint_paths(models_dir)
    except WeightsMissingError:
        return False
    return True


def weights_identity(paths: dict[str, Path]) -> str:
    """A cheap identity for real weights: the HF cache stores each file under its content hash (blob
    name), so the resolved blob names identify the bytes without reading 3.7 GB."""
    digest = hashlib.sha256()
    for name in sorted(paths):
        digest.update(f"{name}={Path(os.path.realpath(paths[name])).name};".encode())
    return f"pretrained-{digest.hexdigest()[:16]}"


def load_pretrained(models_dir: str | Path | None = None, device: str = "cpu", *, size: str = "full",
                    kv_cache: bool = True, half: bool = False) -> TortoiseModels:
    """The real checkpoints, loaded once onto `device`. `size` only differs from "full" in tests that
    write tiny checkpoints into a fake cache folder."""
    started = time.perf_counter()
    paths = checkpoint_paths(models_dir)
    ar, diffusion, clvp, vocoder, tokenizer = _construct(size, device, kv_cache=kv_cache, half=half)
    # strict=False for the AR model, as TextToSpeech does (the checkpoint lacks the inference wrapper).
    ar.load_state_dict(load_state_dict_file(paths["autoregressive.pth"]), strict=False)
    diffusion.load_state_dict(load_state_dict_file(paths["diffusion_decoder.pth"]))
    clvp.load_state_dict(load_state_dict_file(paths["clvp2.pth"]))
    vocoder.load_state_dict(load_state_dict_file(paths["vocoder.pth"])["model_g"])
    return _finish((ar, diffusion, clvp, vocoder, tokenizer), device, weights_identity(paths), size, started,
                   kv_cache=kv_cache, half=half)


def fetch_models(models_dir: str | Path | None = None) -> list[Path]:
    """Download the four checkpoints with Tortoise's own mechanism (needs internet). Returns the files."""
    folder = Path(models_dir) if models_dir else default_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    api = _tortoise()
    from huggingface_hub import constants

    was_offline = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False  # the user asked for a download: lift our own offline default
    try:
        return [Path(api.get_model_path(name, str(folder))) for name in CHECKPOINTS]
    except Exception as exc:
        raise WeightsMissingError(
            f"could not download the Tortoise weights into {folder}: {exc}", file=folder,
            fix=f"check the connection to huggingface.co, or copy '{HF_CACHE_FOLDER}' from another machine",
        ) from exc
    finally:
        constants.HF_HUB_OFFLINE = was_offline
