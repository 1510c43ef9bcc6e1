"""The optional recogniser: a local faster-whisper (CTranslate2) model instead of pocketsphinx.

    asr_model_folder() -> Path | None          (AUDIOBOOK_ASR_MODEL checked; None: use pocketsphinx)
    whisper_recognizer(folder) -> WhisperRecognizer   (one model per process, loaded on first use)
    transcript_verdict(words, heard) -> Verdict       (the take's words against the words heard, with times)

When AUDIOBOOK_ASR_MODEL names a folder, every take is transcribed by the faster-whisper model in it
(word timestamps on) and scored by an edit-distance match of the heard words against the chunk's words:
an expected word not heard, or heard as another word, is missing; a heard word with no expected word
against it is extra speech (its length counts). Nothing is ever downloaded: the folder must already hold
a converted model (`model.bin` beside its config), and the `faster-whisper` package must be installed
(the `asr-whisper` extra). Whisper writes numbers as digits; the chunk texts are spoken forms ("eighteen
eighty"), so a number read right can still count as missing words.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tasks import settings
from tasks.errors import DependencyError, WeightsMissingError

if TYPE_CHECKING:
    from tasks.verify import Verdict

ENV = "AUDIOBOOK_ASR_MODEL"
FIX = (f"set {ENV} to a local faster-whisper (CTranslate2) model folder holding model.bin, "
       f"or unset it to use the built-in pocketsphinx recogniser")


def asr_model_folder() -> Path | None:
    """The faster-whisper model folder AUDIOBOOK_ASR_MODEL names, checked; None when it is unset."""
    value = (settings.ASR_MODEL.get() or "").strip()
    if not value:
        return None
    folder = Path(value).expanduser().absolute()
    if not folder.is_dir():
        raise WeightsMissingError(f"{folder} is not a folder (models are never downloaded)", field=ENV, fix=FIX)
    if not (folder / "model.bin").is_file():
        raise WeightsMissingError(f"{folder} holds no model.bin: not a faster-whisper (CTranslate2) model folder",
                                  field=ENV, fix=FIX)
    if not installed():
        raise DependencyError(f"names a faster-whisper model ({folder}) but the faster-whisper package is not "
                              "installed", field=ENV,
                              fix="pip install 'audiobook[asr-whisper]' (or faster-whisper), or unset " + ENV)
    return folder


def installed() -> bool:
    """Whether the faster-whisper package can be imported here (not imported: it is slow to load)."""
    try:
        return importlib.util.find_spec("faster_whisper") is not None
    except (ImportError, ValueError):
        return False


class WhisperRecognizer:
    """One faster-whisper model per folder and process, loaded on first use (calls are serialised)."""

    name = "faster-whisper"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._model: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        if self._model is None:
            from faster_whisper import WhisperModel

            self._model = WhisperModel(str(self.folder), device="auto", compute_type="default",
                                       local_files_only=True)
        return self._model

    def transcribe(self, x: np.ndarray) -> list[tuple[str, float, float]]:
        """The words heard in `x` (float32 samples at 16 kHz): (word, start s, end s)."""
        from tasks.verify import words_of

        with self._lock:
            segments, _ = self._get().transcribe(np.asarray(x, dtype=np.float32), language="en",
                                                 word_timestamps=True, condition_on_previous_text=False)
            heard: list[tuple[str, float, float]] = []
            for segment in segments:
                for word in segment.words or ():
                    heard += [(w, float(word.start), float(word.end)) for w in words_of(word.word)]
        return heard


_RECOGNIZERS: dict[Path, WhisperRecognizer] = {}
_GUARD = threading.Lock()


def whisper_recognizer(folder: Path) -> WhisperRecognizer:
    with _GUARD:
        return _RECOGNIZERS.setdefault(folder, WhisperRecognizer(folder))


def transcript_verdict(words: list[str], heard: list[tuple[str, float, float]]) -> Verdict:
    """Score a take by its transcript: expected words matched, heard words left over (their length)."""
    from tasks.verify import Span, Verdict, edit_costs

    n, m = len(words), len(heard)
    said = [w for w, _, _ in heard]
    cost = edit_costs(words, said)
    missing: list[tuple[int, int, bool]] = []  # (expected word, heard word at or after it or -1, heard instead)
    extra: list[int] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i, j] == cost[i - 1, j - 1] + (words[i - 1] != said[j - 1]):
            if words[i - 1] != said[j - 1]:
                missing.append((i - 1, j - 1, True))
            i, j = i - 1, j - 1
        elif i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            missing.append((i - 1, j if j < m else -1, False))
            i -= 1
        else:
            extra.append(j - 1)
            j -= 1
    missing.sort()
    end = heard[-1][2] if heard else 0.0
    spans: list[Span] = []
    run: list[tuple[int, int, bool]] = []
    for item in [*missing, (-2, -1, False)]:
        if run and item[0] != run[-1][0] + 1:
            start = heard[run[0][1]][1] if run[0][1] >= 0 else end
            stop = max(heard[j][2] if j >= 0 and instead else start for _, j, instead in run)
            spans.append(Span(start, stop, " ".join(words[k] for k, _, _ in run),
                              " ".join(said[j] for _, j, instead in run if instead)))
            run = []
        run.append(item)
    extra_s = sum(heard[k][2] - heard[k][1] for k in extra)
    spans += [Span(heard[k][1], heard[k][2], "", heard[k][0]) for k in sorted(extra)]
    spans.sort(key=lambda s: s.start_s)
    return Verdict(n, n - len(missing), extra_s, True, tuple(spans), recognizer=WhisperRecognizer.name)
