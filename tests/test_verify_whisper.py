"""The optional faster-whisper recogniser (AUDIOBOOK_ASR_MODEL): its checks, its selection and its scoring.

No faster-whisper model can be fetched here (never downloaded; no model hub), so the model is a stand-in
module that returns a chosen transcript; what is tested is everything around it."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tasks import verify_whisper
from tasks.errors import DependencyError, UserError, WeightsMissingError
from tasks.verify import _RECOGNIZER, default_recognizer, take_problem, verify_take, words_of
from tasks.verify_whisper import ENV, WhisperRecognizer, transcript_verdict

TEXT = "The old ferry left the harbour every morning at seven, carrying farmers and letters to the island."


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "whisper-small-ct2"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"\0" * 16)
    (folder / "config.json").write_text("{}")
    return folder


def timed(words: list[str], start: float = 0.3, step: float = 0.4) -> list[tuple[str, float, float]]:
    return [(w, start + k * step, start + k * step + step * 0.8) for k, w in enumerate(words)]


class FakeWhisper:
    """faster_whisper's WhisperModel as far as the recogniser uses it; says `FakeWhisper.said`."""

    said: list[tuple[str, float, float]] = []
    loaded: list[tuple[str, dict[str, Any]]] = []

    def __init__(self, path: str, **options: Any) -> None:
        FakeWhisper.loaded.append((path, options))

    def transcribe(self, audio: np.ndarray, **options: Any) -> tuple[Iterator[Any], Any]:
        assert audio.dtype == np.float32 and options["word_timestamps"]
        words = [types.SimpleNamespace(word=f" {w.capitalize()},", start=a, end=b) for w, a, b in self.said]
        return iter([types.SimpleNamespace(words=words[:3]), types.SimpleNamespace(words=words[3:])]), None


@pytest.fixture
def fake_whisper(monkeypatch: pytest.MonkeyPatch, model_folder: Path) -> Iterator[type[FakeWhisper]]:
    module = types.ModuleType("faster_whisper")
    module.WhisperModel = FakeWhisper  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "faster_whisper", module)
    monkeypatch.setattr(verify_whisper, "installed", lambda: True)
    monkeypatch.setattr(verify_whisper, "_RECOGNIZERS", {})
    monkeypatch.setenv(ENV, str(model_folder))
    FakeWhisper.loaded = []
    yield FakeWhisper


def test_unset_means_the_built_in_recogniser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert default_recognizer() is _RECOGNIZER
    monkeypatch.setenv(ENV, "  ")
    assert default_recognizer() is _RECOGNIZER


def test_a_missing_folder_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "nowhere"))
    with pytest.raises(WeightsMissingError) as err:
        default_recognizer()
    message = str(err.value)
    assert message.startswith(f"{ENV}: {tmp_path / 'nowhere'} is not a folder")
    assert "never downloaded" in message and "model.bin" in message and "unset it" in message


def test_a_folder_without_model_bin_is_refused(monkeypatch: pytest.MonkeyPatch, model_folder: Path) -> None:
    (model_folder / "model.bin").unlink()
    monkeypatch.setenv(ENV, str(model_folder))
    with pytest.raises(WeightsMissingError) as err:
        default_recognizer()
    assert err.value.field == ENV and "holds no model.bin" in str(err.value)


def test_the_package_missing_is_refused(monkeypatch: pytest.MonkeyPatch, model_folder: Path) -> None:
    monkeypatch.setenv(ENV, str(model_folder))
    monkeypatch.setattr(verify_whisper, "installed", lambda: False)
    with pytest.raises(DependencyError) as err:
        default_recognizer()
    assert err.value.field == ENV and "asr-whisper" in str(err.value.fix) and str(model_folder) in str(err.value)


def test_installed_tells_the_truth() -> None:
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        assert not verify_whisper.installed()
    else:
        assert verify_whisper.installed()


def test_a_render_with_a_bad_model_setting_stops_before_synthesis(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    from tasks.manifest import load_manifest
    from tasks.plan import make_plan
    from tests.conftest import write_manifest

    (tmp_path / "story.txt").write_text("A short story.\n", encoding="utf-8")
    manifest = load_manifest(write_manifest(tmp_path, "title: T\nauthor: A\nsource: story.txt\nverify: flag\n"))
    monkeypatch.setenv(ENV, str(tmp_path / "nowhere"))
    with pytest.raises(UserError) as err:
        make_plan(manifest, engine_name="piper", cache_dir=tmp_path / "cache", voices_dir=tmp_path, check_only=True)
    assert err.value.field == ENV
    off = load_manifest(write_manifest(tmp_path, "title: T\nauthor: A\nsource: story.txt\nverify: off\n"))
    make_plan(off, engine_name="piper", cache_dir=tmp_path / "cache", voices_dir=tmp_path, check_only=True)


def test_the_model_folder_selects_faster_whisper(fake_whisper: type[FakeWhisper], model_folder: Path) -> None:
    recognizer = default_recognizer()
    assert isinstance(recognizer, WhisperRecognizer) and recognizer is default_recognizer()
    fake_whisper.said = timed(words_of(TEXT))
    take = np.zeros(22050 * 3, dtype=np.float32)
    verdict = verify_take(take, 22050, TEXT)
    assert verdict.recognizer == "faster-whisper" and verdict.as_meta()["recognizer"] == "faster-whisper"
    assert verdict.score == 1.0 and verdict.extra_s == 0.0 and take_problem(verdict) is None
    assert [path for path, _ in fake_whisper.loaded] == [str(model_folder)]  # loaded once, from the folder
    assert fake_whisper.loaded[0][1]["local_files_only"] is True


def test_a_transcript_missing_a_clause_scores_its_words() -> None:
    words = words_of(TEXT)
    said = timed(words[:4] + words[8:])  # "the harbour every morning" not heard
    verdict = transcript_verdict(words, said)
    assert (verdict.words, verdict.heard) == (len(words), len(words) - 4)
    assert take_problem(verdict) is not None and verdict.extra_s == 0.0
    [span] = verdict.spans
    assert span.expected == "the harbour every morning" and span.heard == ""
    assert span.start_s == pytest.approx(said[4][1])  # where the next heard word starts


def test_a_misheard_word_is_missing_and_extra_speech_is_timed() -> None:
    words = words_of(TEXT)
    said = timed([*words[:2], "berry", *words[3:]])
    verdict = transcript_verdict(words, said)
    assert verdict.heard == len(words) - 1 and verdict.extra_s == 0.0
    assert [(s.expected, s.heard) for s in verdict.spans] == [("ferry", "berry")]
    babble = timed(["bonjour", "mes", "amis"], start=said[-1][2] + 0.5)
    verdict = transcript_verdict(words, timed(words) + babble)
    assert verdict.score == 1.0 and verdict.extra_s == pytest.approx(sum(b - a for _, a, b in babble))
    assert take_problem(verdict) is not None and "extra speech" in str(take_problem(verdict))
    assert [s.heard for s in verdict.spans] == ["bonjour", "mes", "amis"]
