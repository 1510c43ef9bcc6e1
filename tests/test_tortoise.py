"""The Tortoise adapter, on CPU, through the real Tortoise model classes at tiny sizes (random weights).

Properties, not bytes: duration, rate, determinism, the latents cache, the errors a user sees.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")
pytest.importorskip("tortoise")

from tasks.engines import tortoise as tt  # noqa: E402
from tasks.engines import tortoise_models as tm  # noqa: E402
from tasks.engines.base import Engine  # noqa: E402
from tasks.errors import EngineError, UserError, VoiceError, WeightsMissingError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TEXT = "Hello there, this is a short test."
# Tiny CPU path: 2 candidates of 40 codes (~1.9 s of audio), 2 diffusion steps.
TINY_ENV = {
    "AUDIOBOOK_TORTOISE_MODELS": "tiny", "AUDIOBOOK_TORTOISE_SAMPLES": "2",
    "AUDIOBOOK_TORTOISE_DIFFUSION_STEPS": "2", "AUDIOBOOK_TORTOISE_MAX_MEL_TOKENS": "40",
    "AUDIOBOOK_TORTOISE_AR_BATCH": "2", "AUDIOBOOK_TORTOISE_REDACTION": "0", "AUDIOBOOK_TORTOISE_DEVICE": "cpu",
}

pytestmark = [
    # Tortoise's own modules and transformers' GPT-2 trip deprecations that are not ours to fix.
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*weight_norm.*:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*generation.*:UserWarning"),
]


def write_voice(folder: Path, seed: int = 0) -> Path:
    """Two reference clips: 7 s of noise at 44.1 kHz stereo (WAV) and a 4 s tone at 22.05 kHz (FLAC)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    noise = (0.1 * rng.standard_normal((44100 * 7, 2))).astype(np.float32)
    sf.write(folder / "1.wav", noise, 44100)
    tone = 0.3 * np.sin(2 * np.pi * (180 + 20 * seed) * np.arange(22050 * 4) / 22050)
    sf.write(folder / "2.flac", tone.astype(np.float32), 22050)
    return folder


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    values = {**TINY_ENV, "AUDIOBOOK_CACHE_DIR": str(tmp_path_factory.mktemp("default-cache"))}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield values
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("voices")
    write_voice(root / "narrator")
    return root


@pytest.fixture(scope="module")
def engine(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> tt.TortoiseEngine:
    return tt.TortoiseEngine(cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def first_clip(engine: tt.TortoiseEngine, voices: Path) -> tt.Clip:
    return engine.synthesize(TEXT, "narrator", engine.settings_for("draft"), 7, voices_dir=str(voices))


def test_import_does_not_import_torch() -> None:
    code = "import sys, tasks.engines.tortoise; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_engine_info_and_protocol(engine: tt.TortoiseEngine) -> None:
    assert isinstance(engine, Engine)
    info = engine.info
    assert (info.name, info.sample_rate_hz, info.supports_prompts, info.device) == ("tortoise", 24000, True, "cpu")
    assert 200 <= info.max_chars <= 300
    assert "tortoise-3.0.0" in info.version and "adapter-2" in info.version and "random-tiny-seed0" in info.version and "fp32" in info.version


def test_settings_table_and_env_overrides(engine: tt.TortoiseEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AUDIOBOOK_TORTOISE_SAMPLES", "AUDIOBOOK_TORTOISE_DIFFUSION_STEPS",
                "AUDIOBOOK_TORTOISE_MAX_MEL_TOKENS"):
        monkeypatch.delenv(key)
    draft, standard, high = (engine.settings_for(q) for q in ("draft", "standard", "high"))
    table = [(q["num_autoregressive_samples"], q["diffusion_iterations"], q["diffusion_sampler"], q["cond_free"])
             for q in (draft, standard, high)]
    assert table == [(4, 16, "ddim", True), (16, 30, "ddim", True), (96, 80, "p", True)]
    assert {q["decoder"] for q in (draft, standard, high)} == {"batched"} and "autoregressive_batch_size" not in draft
    monkeypatch.setenv("AUDIOBOOK_TORTOISE_BATCHED", "0")  # adapter 1's per-chunk path: its batch size is keyed
    legacy = engine.settings_for("draft")
    assert legacy["decoder"] == "per-chunk" and legacy["autoregressive_batch_size"] == 2
    monkeypatch.delenv("AUDIOBOOK_TORTOISE_BATCHED")
    monkeypatch.setenv("AUDIOBOOK_TORTOISE_SAMPLES", "3")
    assert engine.settings_for("high")["num_autoregressive_samples"] == 3
    with pytest.raises(UserError, match="quality"):
        engine.settings_for("ultra")
    monkeypatch.setenv("AUDIOBOOK_TORTOISE_SAMPLES", "many")
    with pytest.raises(UserError, match="AUDIOBOOK_TORTOISE_SAMPLES"):
        engine.settings_for("draft")


def test_whole_path_tiny(first_clip: tt.Clip, engine: tt.TortoiseEngine) -> None:
    assert first_clip.sample_rate_hz == 24000
    assert first_clip.samples.dtype == np.float32 and first_clip.samples.ndim == 1
    # 40 codes x 1024 samples at 22.05 kHz = 1.86 s (random weights never emit stop).
    assert 1.5 < first_clip.duration_s < 2.3
    assert np.isfinite(first_clip.samples).all() and np.abs(first_clip.samples).max() <= 1.0
    assert np.abs(first_clip.samples).max() > 0
    stages = {"latents_s", "autoregressive_s", "clvp_s", "diffusion_s", "vocoder_s", "total_s"}
    assert stages <= set(engine.last_timings)


def test_same_seed_same_audio_other_seed_differs(first_clip: tt.Clip, engine: tt.TortoiseEngine,
                                                 voices: Path) -> None:
    settings = engine.settings_for("draft")
    again = engine.synthesize(TEXT, "narrator", settings, 7, voices_dir=str(voices))
    np.testing.assert_array_equal(again.samples, first_clip.samples)
    other = engine.synthesize(TEXT, "narrator", settings, 8, voices_dir=str(voices))
    assert not np.array_equal(other.samples[: len(first_clip.samples)], first_clip.samples[: len(other.samples)])


def test_latents_cached_once_and_invalidated(engine: tt.TortoiseEngine, tmp_path: Path) -> None:
    voices, cache = tmp_path / "voices", tmp_path / "cache"
    write_voice(voices / "reader", seed=1)
    before = engine.latents_computed
    path = engine.latents_path("reader", voices, cache)
    assert path.exists() and path.parent == cache / "latents" and path.name.startswith("reader-")
    assert engine.latents_computed == before + 1
    mtime = path.stat().st_mtime_ns
    assert engine.latents_path("reader", voices, cache) == path
    assert engine.latents_computed == before + 1 and path.stat().st_mtime_ns == mtime  # a hit

    # A fresh engine with the same models reads the file instead of recomputing.
    fresh = tt.TortoiseEngine(models=engine.models, cache_dir=cache)
    fresh._voice_latents("reader", voices)
    assert fresh.latents_computed == 0
    stored = torch.load(path, weights_only=True)
    assert stored["autoregressive"].shape == (1, 64) and stored["models"] == engine.model_identity

    # Changing a clip, then adding one, gives new keys (and new fingerprints).
    fp = engine.voice_fingerprint("reader", str(voices))
    sf.write(voices / "reader" / "2.flac", np.zeros(22050 * 3, np.float32) + 0.01, 22050)
    changed = engine.latents_path("reader", voices, cache)
    assert changed != path and engine.latents_computed == before + 2
    fp_changed = engine.voice_fingerprint("reader", str(voices))
    write_voice(voices / "other", seed=3)
    (voices / "other" / "1.wav").rename(voices / "reader" / "3.wav")
    added = engine.latents_path("reader", voices, cache)
    assert added not in (path, changed) and engine.latents_computed == before + 3
    assert len({fp, fp_changed, engine.voice_fingerprint("reader", str(voices))}) == 3
    assert not list((cache / "latents").glob("*.tmp"))


def test_latents_deterministic(engine: tt.TortoiseEngine, voices: Path) -> None:
    clips = tt.voice_clips("narrator", voices)
    a = engine._compute_latents(clips)
    random_state = __import__("random").random()  # disturb the global RNG between computations
    assert random_state >= 0
    b = engine._compute_latents(clips)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_unknown_voice_names_folder_and_lists_voices(engine: tt.TortoiseEngine, voices: Path) -> None:
    with pytest.raises(VoiceError) as err:
        engine.check_voice("nobody", str(voices))
    message = str(err.value)
    assert str(voices / "nobody") in message and "narrator" in message and err.value.exit_code == 2
    (voices / "empty").mkdir(exist_ok=True)
    with pytest.raises(VoiceError, match="holds no reference clips"):
        engine.check_voice("empty", str(voices))
    with pytest.raises(VoiceError):
        engine.check_voice("../narrator", str(voices))


def test_bundled_voices_usable_by_name(engine: tt.TortoiseEngine, voices: Path) -> None:
    names = tt.list_voices(voices)
    assert "narrator" in names and "angie" in names and "cond_latent_example" not in names
    engine.check_voice("angie", str(voices))  # from the tortoise package's voices folder


def test_clip_loader_resamples_to_22k_mono(voices: Path) -> None:
    audio = tt.load_clip_22k(voices / "narrator" / "1.wav")  # 7 s, 44.1 kHz stereo
    assert audio.dtype == np.float32 and audio.ndim == 1 and abs(len(audio) - 22050 * 7) < 10


def test_prompts_dropped_offline(engine: tt.TortoiseEngine, voices: Path, monkeypatch: pytest.MonkeyPatch,
                                 caplog: pytest.LogCaptureFixture) -> None:
    assert engine.prompt_mode == "dropped"  # AUDIOBOOK_TORTOISE_REDACTION=0
    settings = engine.settings_for("draft")
    prompted = engine.synthesize("[I am really sad,] Hello there.", "narrator", settings, 3, voices_dir=str(voices))
    plain = engine.synthesize("Hello there.", "narrator", settings, 3, voices_dir=str(voices))
    np.testing.assert_array_equal(prompted.samples, plain.samples)
    assert tt.split_prompts("[sadly] Go  [now] home.")[1] == "Go home."

    # With redaction asked for but the wav2vec models not on this machine, it falls back and says so.
    monkeypatch.setenv("AUDIOBOOK_TORTOISE_REDACTION", "1")
    offline = tt.TortoiseEngine(models=engine.models)
    with caplog.at_level(logging.WARNING, logger="tasks.engines.tortoise"):
        assert offline.prompt_mode == "dropped"
    assert "prompts are dropped" in caplog.text


def test_prompt_only_text_is_an_engine_error(engine: tt.TortoiseEngine, voices: Path) -> None:
    with pytest.raises(EngineError, match="empty"):
        engine.synthesize("[sadly]", "narrator", engine.settings_for("draft"), 0, voices_dir=str(voices))
    with pytest.raises(EngineError, match="unknown Tortoise settings"):
        engine.synthesize("Hi.", "narrator", {"num_samples": 2}, 0, voices_dir=str(voices))


def test_missing_weights_error_says_how_to_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("AUDIOBOOK_TORTOISE_MODELS", "pretrained")
    monkeypatch.setenv("TORTOISE_MODELS_DIR", str(tmp_path / "models"))
    assert tt.weights_present() is False
    with pytest.raises(WeightsMissingError) as err:
        tt.TortoiseEngine()
    message = str(err.value)
    assert "audiobook models fetch" in message and tm.HF_CACHE_FOLDER in message and "TORTOISE_MODELS_DIR" in message
    assert err.value.exit_code == 2
    report = tt.doctor()
    assert report["ok"] is False and report["weights_present"] is False and "WeightsMissingError" in report["error"]


def write_fake_hf_cache(models_dir: Path, seed: int = 5) -> None:
    """Tiny checkpoints laid out as Hugging Face's cache lays out Manmay/tortoise-tts."""
    ar, diffusion, clvp, vocoder, _ = tm._construct("tiny", "cpu", kv_cache=True, half=False)
    commit = "0" * 40
    repo = models_dir / tm.HF_CACHE_FOLDER
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    torch.save(ar.state_dict(), snapshot / "autoregressive.pth")
    torch.save(diffusion.state_dict(), snapshot / "diffusion_decoder.pth")
    torch.save(clvp.state_dict(), snapshot / "clvp2.pth")
    torch.save({"model_g": vocoder.state_dict()}, snapshot / "vocoder.pth")


def test_load_pretrained_from_local_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    torch.manual_seed(5)
    write_fake_hf_cache(tmp_path)
    assert tm.weights_present(tmp_path)
    calls: list[bool] = []
    real_load = torch.load

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(bool(kwargs.get("weights_only")))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    models = tm.load_pretrained(tmp_path, "cpu", size="tiny")
    assert calls == [True, True, True, True]  # every checkpoint read with weights_only=True, no fallback
    assert models.identity.startswith("pretrained-")
    saved = real_load(tmp_path / tm.HF_CACHE_FOLDER / "snapshots" / ("0" * 40) / "clvp2.pth", weights_only=True)
    key = next(iter(saved))
    assert torch.equal(models.clvp.state_dict()[key], saved[key])


def test_weights_only_loader(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pth"
    torch.save({"w": torch.ones(2, 3)}, plain)
    assert torch.equal(tm.load_state_dict_file(plain, allow_pickle=False)["w"], torch.ones(2, 3))

    # A checkpoint holding an arbitrary object is refused by weights_only=True ...
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"w": torch.ones(1), "args": argparse.Namespace(lr=1)}, unsafe)
    with pytest.raises(WeightsMissingError, match="weights_only"):
        tm.load_state_dict_file(unsafe, allow_pickle=False)
    # ... and read with full unpickling only when allowed (the default, with a warning).
    assert tm.load_state_dict_file(unsafe, allow_pickle=True)["args"].lr == 1


def test_doctor_with_tiny_models(env: dict[str, str], voices: Path) -> None:
    report = tt.doctor(voices)
    assert report["ok"] is True, report
    assert report["device"] == "cpu" and report["test_audio_s"] > 0 and report["model_load_s"] >= 0
    json.dumps(report)


def test_benchmark_runs_at_tiny_size(tmp_path: Path, env: dict[str, str]) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_tortoise
    finally:
        sys.path.pop(0)
    out = tmp_path / "bench.json"
    result = bench_tortoise.main(["--size", "tiny", "--device", "cpu", "--chunks", "2", "--samples", "2",
                                  "--steps", "2", "--tokens", "10", "--no-table", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert all(result[side]["audio_s"] > 0 for side in ("stock", "per_chunk", "batched"))
    assert result["batched"]["audio_s"] == result["per_chunk"]["audio_s"]  # the same chunks, the same lengths
    assert result["speedup_batched_vs_per_chunk"] > 0 and result["speedup_batched_vs_stock"] > 0
    assert result["batched"]["chunks_per_call"] >= 2 and result["per_chunk"]["chunks_per_call"] == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_tiny_fp16_resident(voices: Path, tmp_path: Path) -> None:
    gpu = tt.TortoiseEngine(models=tm.build_tiny(0, "cuda", half=True), device="cuda", cache_dir=tmp_path)
    assert gpu.half and gpu.precision == "fp16"
    settings = {**gpu.settings_for("draft"), "num_autoregressive_samples": 4, "diffusion_iterations": 4,
                "max_mel_tokens": 80}
    a = gpu.synthesize(TEXT, "narrator", settings, 1, voices_dir=str(voices))
    assert 3.0 < a.duration_s < 4.5 and np.isfinite(a.samples).all()
    assert next(gpu.models.autoregressive.parameters()).is_cuda  # resident, never moved back
