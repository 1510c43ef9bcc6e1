"""Heard: an offline check that a take speaks its chunk's words and nothing long besides.

    verify_take(samples, sample_rate_hz, text) -> Verdict   (score = words heard / words expected)
    take_problem(verdict, threshold) -> str | None           (why the take fails, for re-rolls and reports)
    verify_mode(manifest_mode, engine, language) -> (mode, warning)

The recogniser is pocketsphinx with the US-English model inside its wheel: no model hub, no download
(AUDIOBOOK_ASR_MODEL may name a local faster-whisper model instead: tasks.verify_whisper). One decoder
per process, loaded once (0.4 s of CPU). The take is resampled once to 16 kHz and force-aligned to the
chunk's words (`set_align_text`), which costs about a tenth of Piper's synthesis CPU time for the same
audio (benchmarks/bench_verify.py measures it side by side, and against transcription + word error rate,
which costs about twice synthesis and misreads half of a clean take's words). From the alignment:

- a word is *missing* when the aligner had to squeeze it into its minimum length with a poor acoustic
  score, or fit it very badly (audio cut out of the middle of a sentence);
- *extra speech* is speech energy inside the pauses the aligner placed, and the part of a word aligned
  over much longer than the take's speaking rate gives it (a repeated phrase, babble at the end,
  foreign speech appended);
- when no alignment exists at all (a take that stops early or skips words so that the text cannot be
  fitted), the take is transcribed instead and scored by the words the transcript shares with the text.

What it cannot catch: a mispronounced word that still resembles the expected one, wrong emphasis or
tone, a single short word dropped (a word of two phones can be squeezed in without a poor score), and
speech in other languages is not checked (skipped with a warning).

The alignment also times each word in the take (`Verdict.word_times`); with where the take's clip starts
once its leading silence is trimmed (`clip_start_s`), tasks.captions places them in the chapter.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tasks.audio import resample

if TYPE_CHECKING:
    from tasks.verify_whisper import WhisperRecognizer

Mode = Literal["off", "flag", "reroll"]
RATE_HZ = 16000
FRAME = RATE_HZ // 100  # pocketsphinx's 10 ms frames
DOWNSAMPLE = 2  # pocketsphinx's `ds`: acoustic scores every DOWNSAMPLE frames
DEFAULT_THRESHOLD = 0.9  # words heard / words expected below this: a bad take
MAX_EXTRA_S = 0.25  # more speech than this outside the expected words: a bad take
# A word (but the last, which carries the take's tail) aligned over more than this many times the take's
# median length per phone, plus 0.1 s, has speech in it that is not the word (a repeated phrase).
STRETCH_FACTOR = 2.0
# A word is missing when it fits this badly (mean negative log acoustic score per frame; clean words
# stay under about 7), or when it is squeezed to its minimum length (3 frames per phone) and fits poorly.
MISSING_BADNESS = 9.0
SQUEEZED_BADNESS = 5.5
# A run of this many words (or more) that each fit worse than GARBLED_BADNESS is not heard clearly: audio
# repeated or cut there makes the aligner stretch and bend the words around it. Clean takes have such
# poor fits only on single short words.
GARBLED_BADNESS = 4.0
GARBLED_RUN = 3
SILENCE_EDGE_S = 0.15  # speech energy tolerated at each edge of a pause (word onsets and tails)
SPEECH_BELOW_PEAK_DB = 30.0  # a 10 ms frame within this of the take's loud frames counts as speech
# A crude letter -> phone guess for words outside the dictionary: it gives the aligner a word of about
# the right length; such words are aligned but not counted as verified.
_LETTER_PHONES = {
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH", "i": "IH", "j": "JH",
    "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P", "q": "K", "r": "R", "s": "S", "t": "T",
    "u": "AH", "v": "V", "w": "W", "x": "K S", "y": "Y", "z": "Z",
}


@dataclass(frozen=True)
class Span:
    """A suspicious stretch of a take: where it is (seconds into the take), what should be there, what was heard."""

    start_s: float
    end_s: float
    expected: str
    heard: str


@dataclass(frozen=True)
class Verdict:
    words: int  # words checked (in the recogniser's dictionary)
    heard: int
    extra_s: float  # speech outside the expected words, seconds
    aligned: bool  # False: no alignment exists, the score comes from a transcript
    spans: tuple[Span, ...] = field(default=())
    recognizer: str = "pocketsphinx"  # or "faster-whisper" (AUDIOBOOK_ASR_MODEL; tasks.verify_whisper)
    # Each expected word's (word, start s, end s) in the take, from the alignment (empty without one)
    word_times: tuple[tuple[str, float, float], ...] = field(default=())
    clip_start_s: float = 0.0  # where the chapter's clip of this take starts (its leading silence is trimmed)

    @property
    def score(self) -> float:
        return self.heard / self.words if self.words else 1.0

    def as_meta(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 3), "words": self.words, "heard": self.heard, "extra_s": round(self.extra_s, 2),
            "aligned": self.aligned,
            "spans": [[round(s.start_s, 2), round(s.end_s, 2), s.expected, s.heard] for s in self.spans],
            "recognizer": self.recognizer,
            **({"word_times": [[w, round(a, 2), round(b, 2)] for w, a, b in self.word_times],
                "clip_start_s": round(self.clip_start_s, 4)} if self.word_times else {}),
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Verdict:
        spans = tuple(Span(float(a), float(b), str(e), str(h)) for a, b, e, h in meta.get("spans", ()))
        times = tuple((str(w), float(a), float(b)) for w, a, b in meta.get("word_times", ()))
        return cls(int(meta["words"]), int(meta["heard"]), float(meta["extra_s"]), bool(meta["aligned"]), spans,
                   str(meta.get("recognizer", "pocketsphinx")), times, float(meta.get("clip_start_s", 0.0)))


def take_problem(verdict: Verdict, threshold: float = DEFAULT_THRESHOLD) -> str | None:
    """Why a take fails the check, or None."""
    if not verdict.aligned:
        return f"words missing: the text cannot be aligned with the audio ({verdict.score:.0%} of words heard)"
    if verdict.score < threshold:
        return f"words missing: {verdict.heard} of {verdict.words} words heard ({verdict.score:.0%})"
    if verdict.extra_s > MAX_EXTRA_S:
        return f"extra speech: {verdict.extra_s:.1f} s not in the text"
    return None


def is_english(language: str) -> bool:
    return language.strip().lower().replace("_", "-").split("-")[0] in ("en", "eng", "english")


def verify_mode(mode: str | None, engine: str, language: str) -> tuple[Mode, str | None]:
    """The check to run for this book: the manifest's `verify` or the engine's default; English only."""
    from tasks.engines import engine_class

    default = getattr(engine_class(engine), "verify_default", "off")  # an engine's class says (EngineBase)
    chosen: Mode = mode if mode in ("off", "flag", "reroll") else default  # type: ignore[assignment]
    if chosen != "off" and not is_english(language):
        return "off", (f"takes are not checked by speech recognition: the recogniser knows US English only, "
                       f"the book's language is {language!r} (set 'verify: off' to silence this)")
    return chosen, None


def words_of(text: str) -> list[str]:
    """The words of a chunk as the recogniser's dictionary spells them."""
    return [w.strip("'") for w in re.sub(r"[^a-z']+", " ", text.lower().replace("’", "'")).split() if w.strip("'")]


class Recognizer:
    """One pocketsphinx decoder per process (not thread-safe: calls are serialised)."""

    name = "pocketsphinx"

    def __init__(self) -> None:
        self._decoder: Any = None
        self._lock = threading.Lock()
        self._known: dict[str, bool] = {}

    def _get(self) -> Any:
        if self._decoder is None:
            import pocketsphinx

            # ds=2: acoustic scores computed every other frame (the search still runs every 10 ms). On
            # planted faults in real Piper takes it caught and flagged the same as every frame, for about
            # 30% less CPU (ds=3 cut more but moved the scores; narrower beams flagged a clean take).
            self._decoder = pocketsphinx.Decoder(samprate=RATE_HZ, loglevel="FATAL", ds=DOWNSAMPLE)
        return self._decoder

    def _in_dictionary(self, word: str) -> bool:
        """Whether `word` is in the dictionary; a word that is not is added with a crude spelling."""
        if word not in self._known:
            decoder = self._get()
            known = decoder.lookup_word(word) is not None
            if not known:
                phones = " ".join(_LETTER_PHONES[c] for c in word if c in _LETTER_PHONES) or "AH"
                # Not `update=True`: that rebuilds the active (language model) search, 0.16 s of CPU per
                # word; the alignment search is built from the dictionary at each set_align_text anyway.
                decoder.add_word(word, phones, False)
            self._known[word] = known
        return self._known[word]

    def _decode(self, pcm: bytes) -> None:
        decoder = self._get()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()

    def align(self, pcm: bytes, words: list[str]) -> tuple[list[tuple[str, int, int, float]] | None, list[bool]]:
        """(segments (word, first frame, last frame, log acoustic score) or None when no alignment exists,
        which of `words` are in the dictionary)."""
        with self._lock:
            known = [self._in_dictionary(w) for w in words]
            decoder = self._get()
            decoder.set_align_text(" ".join(words))
            try:
                self._decode(pcm)
                segs = decoder.seg()
                out = None if segs is None else [
                    (s.word, s.start_frame, s.end_frame, math.log(s.ascore) if s.ascore > 0 else -1e4) for s in segs]
            finally:
                decoder.activate_search("_default")
            return (out or None), known

    def phones(self, word: str) -> int:
        with self._lock:
            found = self._get().lookup_word(word)
        return len(found.split()) if found else 1

    def transcribe(self, pcm: bytes) -> list[str]:
        with self._lock:
            self._decode(pcm)
            hyp = self._get().hyp()
        return [w for w in (hyp.hypstr.split() if hyp is not None else ()) if not w.startswith("<")]


_RECOGNIZER = Recognizer()


def _speech_frames(x: np.ndarray) -> np.ndarray:
    """Per 10 ms frame: whether it holds speech energy (relative to the take's own loud frames)."""
    n = len(x) // FRAME
    if n == 0:
        return np.zeros(0, dtype=bool)
    power = np.mean(np.square(x[: n * FRAME].reshape(n, FRAME), dtype=np.float64), axis=1)
    db = 10 * np.log10(np.maximum(power, 1e-12))
    loud = float(np.percentile(db, 90))
    return db > max(loud - SPEECH_BELOW_PEAK_DB, -60.0)


def _base(word: str) -> str:
    return re.sub(r"\(\d+\)$", "", word)


def edit_costs(expected: list[str], heard: list[str]) -> np.ndarray:
    """The word edit-distance table: cost[i, j] turns the first i expected words into the first j heard
    ones (a word missing, added or heard as another costs 1). Walk it back from the corner to align."""
    n, m = len(expected), len(heard)
    cost = np.zeros((n + 1, m + 1), dtype=np.int32)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (expected[i - 1] != heard[j - 1]))
    return cost


def _matched(expected: list[str], heard: list[str]) -> list[bool]:
    """Which expected words an edit-distance alignment matches with a heard word."""
    n, m = len(expected), len(heard)
    cost = edit_costs(expected, heard)
    hit = [False] * n
    i, j = n, m
    while i > 0 and j > 0:
        if expected[i - 1] == heard[j - 1] and cost[i, j] == cost[i - 1, j - 1]:
            hit[i - 1] = True
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        elif cost[i, j] == cost[i, j - 1] + 1:
            j -= 1
        else:
            i, j = i - 1, j - 1
    return hit


def default_recognizer() -> Recognizer | WhisperRecognizer:
    """The faster-whisper model AUDIOBOOK_ASR_MODEL names (checked), else the built-in pocketsphinx."""
    from tasks.verify_whisper import asr_model_folder, whisper_recognizer

    folder = asr_model_folder()
    return _RECOGNIZER if folder is None else whisper_recognizer(folder)


def verify_take(samples: np.ndarray, sample_rate_hz: int, text: str, *,
                recognizer: Recognizer | WhisperRecognizer | None = None) -> Verdict:
    """Check one take against its chunk's text."""
    rec = recognizer or default_recognizer()
    words = words_of(text)
    if not words:
        return Verdict(0, 0, 0.0, True, recognizer=rec.name)
    x = resample(np.asarray(samples, dtype=np.float32), sample_rate_hz, RATE_HZ)
    if not isinstance(rec, Recognizer):
        from tasks.verify_whisper import transcript_verdict

        return transcript_verdict(words, rec.transcribe(x))
    pcm = (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
    segs, known = rec.align(pcm, words)
    counted = sum(known)
    if segs is None:
        heard_words = rec.transcribe(pcm)
        hits = _matched(words, heard_words)
        heard = sum(h for h, k in zip(hits, known, strict=True) if k)
        span = Span(0.0, len(x) / RATE_HZ, text, " ".join(heard_words))
        return Verdict(counted, heard, 0.0, False, (span,))
    speech = _speech_frames(x)
    edge = int(SILENCE_EDGE_S * 100)
    extra = 0
    missing: list[tuple[int, int, int]] = []  # (word index, first frame, last frame)
    doubtful: list[tuple[int, int, int]] = []  # a run of poorly fitting words, pauses between them included
    spans: list[Span] = []
    times: list[tuple[str, float, float]] = []
    index = 0

    def end_run() -> None:
        words_in_run = [d for d in doubtful if d[0] >= 0]
        if len(words_in_run) >= GARBLED_RUN:
            missing.extend(d for d in words_in_run if known[d[0]] and d not in missing)
        doubtful.clear()

    for word, first, last, ascore in segs:
        frames = last - first + 1
        badness = -ascore / frames
        if word.startswith("<") or word.startswith("["):
            inside = int(speech[first + edge: max(last + 1 - edge, first + edge)].sum())
            if inside * 0.01 > 0.3:
                spans.append(Span(first / 100, (last + 1) / 100, "", f"[{inside / 100:.1f} s of speech]"))
            extra += inside
            if badness > GARBLED_BADNESS and inside:
                doubtful.append((-1, first, last))
            continue
        if index < len(words):
            times.append((words[index], first / 100, (last + 1) / 100))
        phones = rec.phones(word)
        squeezed = frames <= 3 * phones + 1
        if index < len(words) and known[index] and (badness > MISSING_BADNESS or (squeezed and badness > SQUEEZED_BADNESS)):
            missing.append((index, first, last))
        if badness > GARBLED_BADNESS:
            doubtful.append((index, first, last))
        else:
            end_run()
        index += 1
    end_run()
    missing.sort()
    lengths = [(word, last - first + 1) for word, first, last, _ in segs if not word.startswith(("<", "["))]
    if len(lengths) > 2:
        per_phone = float(np.median([frames / rec.phones(word) for word, frames in lengths]))
        extra += int(sum(max(0.0, frames - STRETCH_FACTOR * per_phone * rec.phones(word) - 10)
                         for word, frames in lengths[:-1]))
    # Consecutive missing words make one span.
    run: list[tuple[int, int, int]] = []
    for item in [*missing, (-2, 0, 0)]:
        if run and item[0] != run[-1][0] + 1:
            spans.append(Span(run[0][1] / 100, (run[-1][2] + 1) / 100, " ".join(words[i] for i, _, _ in run), ""))
            run = []
        run.append(item)
    spans.sort(key=lambda s: s.start_s)
    return Verdict(counted, counted - sum(1 for i, _, _ in missing if known[i]), extra / 100, True, tuple(spans),
                   word_times=tuple(times))


def clip_start_s(samples: np.ndarray, sample_rate_hz: int) -> float:
    """Where a take's clip starts in its chapter, in seconds into the take: tasks.audio trims its leading
    silence (trim_silence, as the chapter assembly calls it) before placing it."""
    from tasks.audio import trim_silence

    x = np.ascontiguousarray(np.asarray(samples, dtype=np.float32).reshape(-1))
    kept = trim_silence(x, sample_rate_hz)
    if kept.size == 0 or not np.shares_memory(kept, x):
        return 0.0
    return (kept.ctypes.data - x.ctypes.data) // x.itemsize / sample_rate_hz


def judge_take(samples: np.ndarray, sample_rate_hz: int, text: str, mode: str,
               threshold: float = DEFAULT_THRESHOLD) -> tuple[Verdict | None, str | None]:
    """(the take's verdict, or None when the check is off; why it must be re-rolled, or None).
    In "flag" mode a bad take is kept and only its verdict tells."""
    if mode == "off":
        return None, None
    verdict = verify_take(samples, sample_rate_hz, text)
    if verdict.word_times:
        verdict = replace(verdict, clip_start_s=clip_start_s(samples, sample_rate_hz))
    problem = take_problem(verdict, threshold)
    return verdict, (problem if mode == "reroll" else None)


def format_time(seconds: float) -> str:
    minutes, secs = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)}:{secs:04.1f}"


def flagged_spans(verdict: Verdict, text: str, offset_s: float, threshold: float) -> list[dict[str, Any]]:
    """The suspicious spans of a take that fails the check, placed `offset_s` into the chapter file."""
    why = take_problem(verdict, threshold)
    if why is None:
        return []
    spans = verdict.spans or (Span(0.0, 0.0, text, ""),)
    return [{"time_s": round(offset_s + s.start_s, 2), "time": format_time(offset_s + s.start_s), "why": why,
             "expected": s.expected or "(nothing)", "heard": s.heard or "(nothing)", "chunk_text": text}
            for s in spans]


def chapter_summary(texts: list[str], verdicts: list[dict[str, Any] | None], heard_rerolls: list[int],
                    clip_starts_s: list[float], threshold: float) -> dict[str, Any] | None:
    """A chapter's part of the report: words verified, re-rolls for missing words, flagged spans."""
    if all(v is None for v in verdicts):
        return None
    flagged: list[dict[str, Any]] = []
    words = 0
    for text, meta, start in zip(texts, verdicts, clip_starts_s, strict=True):
        if meta is None:
            continue
        verdict = Verdict.from_meta(meta)
        words += verdict.heard
        flagged += flagged_spans(verdict, text, start, threshold)
    return {"words_verified": words, "rerolls_missing_words": sum(heard_rerolls), "flagged": flagged}
