"""Sentence timings of a chapter, and its captions (WebVTT and SRT).

    sentence_timings(texts, spans_s, language) -> [TimedSentence]   (exact at chunk edges)
    vtt_text(sentences) / srt_text(sentences)    -> the caption files' text
    caption_jobs(...)                             -> publish jobs for tasks.book (one .vtt, one .srt per chapter)

The timings are not re-aligned after the fact: each chunk's clip is placed in the chapter file by
tasks.audio at a known sample (head room tone, clips, pauses, trims all counted), and those spans
come with the chapter (ChapterAudio.clip_spans_s). A chunk of one sentence is timed exactly by its
clip (the clip keeps 30 ms of lead-in and 120 ms after the last sound). A chunk of several sentences
is split among them in proportion to their characters: exact at the chunk's edges, an estimate inside
it. A sentence longer than the engine's chunk limit is spoken as several chunks and timed as several
cues, one per chunk.

Word-level: where a take was verified by alignment (tasks.verify), its words' times in the take are in
the chunk's cache metadata; `chunk_word_times` places them in the chapter by the clip's exact span (and
the leading silence the assembly trimmed off the take), and the .vtt cues carry them as WebVTT inline
timestamps (`<00:00:01.250>word`), each strictly inside its cue and increasing (a word the sentence
estimate puts outside its cue gets none). SRT stays sentence-level.
"""

from __future__ import annotations

import datetime
import functools
import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.atomic import write_text
from tasks.cache import content_key
from tasks.text import split_sentences, strip_prompts

CAPTIONS_VERSION = 2  # part of each caption file's key: bump when the files' layout changes
WordTimes = tuple[tuple[str, float, float], ...]  # a chunk's (word, start s, end s) in the chapter file


@dataclass(frozen=True)
class TimedSentence:
    """One spoken sentence: its number in the chapter (from 1, the id `s<n>`), text and time in s."""

    number: int
    text: str
    start_s: float
    end_s: float
    chunk: int  # which chunk (clip) of the chapter speaks it
    paragraph_end: bool = False  # the pause after it ends a paragraph (a longer gap follows)
    word_starts: tuple[float, ...] = ()  # when known: each of its words' start (tasks.verify.words_of's words)

    @property
    def id(self) -> str:
        return f"s{self.number}"


def shown_text(text: str) -> str:
    """A chunk's text as captions show it: the spoken form without "[...]" prompts (not spoken)."""
    return " ".join(strip_prompts(text).split()) if "[" in text else " ".join(text.split())


def sentence_timings(
    texts: Sequence[str], spans_s: Sequence[tuple[float, float]], language: str = "en", *,
    paragraph_gap_s: float = 0.6, word_times: Sequence[WordTimes] = (),
) -> list[TimedSentence]:
    """Each sentence of a chapter with its start and end in the chapter file, in order.

    `texts` are the chapter's chunks as spoken and `spans_s` their clips' (start, end) in seconds, one
    per chunk. Each chunk's span is shared among its sentences in proportion to their characters
    (the space between two sentences counted with the first). A chunk followed by a pause of at
    least `paragraph_gap_s` ends a paragraph. `word_times`, when given (one per chunk, maybe empty),
    gives each sentence its words' starts where the chunk's aligned words are the sentence's words.
    """
    from tasks.verify import words_of

    if len(texts) != len(spans_s):
        raise ValueError(f"one span per chunk: {len(texts)} chunks, {len(spans_s)} spans")
    timed: list[TimedSentence] = []
    for k, (text, (start, end)) in enumerate(zip(texts, spans_s, strict=True)):
        sentences = [s for s in (shown_text(p) for p in split_sentences(shown_text(text), language)) if s]
        if not sentences:
            continue
        weights = [len(s) + 1 for s in sentences]
        weights[-1] -= 1
        total = sum(weights)
        at = 0
        next_start = spans_s[k + 1][0] if k + 1 < len(spans_s) else None
        aligned = list(word_times[k]) if k < len(word_times) else []
        for i, (sentence, weight) in enumerate(zip(sentences, weights, strict=True)):
            a = start + (end - start) * at / total
            at += weight
            b = end if i == len(sentences) - 1 else start + (end - start) * at / total
            last = i == len(sentences) - 1
            said = words_of(sentence)
            mine, aligned = aligned[: len(said)], aligned[len(said):]
            starts = tuple(t for _, t, _ in mine) if [w for w, _, _ in mine] == said else ()
            timed.append(TimedSentence(
                len(timed) + 1, sentence, a, b, k,
                paragraph_end=last and (next_start is None or next_start - end >= paragraph_gap_s),
                word_starts=starts,
            ))
    return timed


def _clock(seconds: float) -> str:
    """HH:MM:SS.mmm (WebVTT's timestamp), from whole milliseconds."""
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def cue_text(sentence: TimedSentence) -> str:
    """A sentence as WebVTT cue text: escaped markup, and an inline timestamp before each word whose start
    is known, strictly inside the cue and after the previous one (in whole milliseconds)."""
    from tasks.verify import words_of

    # Cue text is markup in WebVTT: "&" and "<" must be escaped (webvtt-py writes text as given).
    if not sentence.word_starts:
        return html.escape(sentence.text, quote=False)
    floor, ceiling = round(sentence.start_s * 1000), round(sentence.end_s * 1000)
    starts = iter(sentence.word_starts)
    out: list[str] = []
    for token in sentence.text.split(" "):
        count = len(words_of(token))
        mine = [next(starts, None) for _ in range(count)]
        at = round(mine[0] * 1000) if mine and mine[0] is not None else None
        if at is not None and floor < at < ceiling:
            out.append(f"<{_clock(at / 1000)}>{html.escape(token, quote=False)}")
            floor = at
        else:
            out.append(html.escape(token, quote=False))
    return " ".join(out)


def vtt_text(sentences: Sequence[TimedSentence]) -> str:
    """A WebVTT file: one cue per sentence, identified by the sentence's id (s1, s2, ...); with word
    starts, inline timestamps (`<00:00:01.250>word`) inside the cues."""
    import webvtt

    cues = [webvtt.Caption(_clock(s.start_s), _clock(s.end_s), cue_text(s), identifier=s.id) for s in sentences]
    return str(webvtt.WebVTT(captions=cues).content)


def srt_text(sentences: Sequence[TimedSentence]) -> str:
    """An SRT file: one numbered subtitle per sentence."""
    import srt

    return str(srt.compose([
        srt.Subtitle(s.number, datetime.timedelta(milliseconds=round(s.start_s * 1000)),
                     datetime.timedelta(milliseconds=round(s.end_s * 1000)), s.text)
        for s in sentences
    ], reindex=False))


def write_captions(sentences: Sequence[TimedSentence], out: Path, kind: str) -> Path:
    """Write the chapter's captions to `out` (temp file + rename); `kind` is "vtt" or "srt"."""
    text = vtt_text(sentences) if kind == "vtt" else srt_text(sentences)
    write_text(out, text)
    readable_by_all(out)
    return out


def readable_by_all(path: Path) -> None:
    """A published file readable by all, as the encoded MP3s are (temp files are created owner-only;
    reading the umask would change it for every thread for a moment, so the usual 0644 is set)."""
    path.chmod(0o644)


def caption_folder(outputs: Sequence[str]) -> str:
    """Captions lie beside the chapter MP3s; in their own folder when the book has no MP3s."""
    return "mp3" if "mp3" in outputs else "captions"


Job = tuple[str, str, Callable[[], object]]  # (file name in the book's folder, content key, write it)


def chunk_word_times(verdicts: Sequence[Mapping[str, Any] | None],
                     spans_s: Sequence[tuple[float, float]]) -> tuple[WordTimes, ...]:
    """Per chunk, its aligned words' times in the chapter file (empty where the take was not aligned):
    the verdict's times are in the take, whose clip starts `clip_start_s` into it at the span's start."""
    out: list[WordTimes] = []
    for meta, (start, end) in zip(verdicts, spans_s, strict=True):
        if not meta or not meta.get("word_times"):
            out.append(())
            continue
        shift = start - float(meta.get("clip_start_s", 0.0))
        out.append(tuple((str(w), min(max(float(a) + shift, start), end), min(max(float(b) + shift, start), end))
                         for w, a, b in meta["word_times"]))
    return tuple(out)


def caption_jobs(
    chapters: Sequence[tuple[str, str, Sequence[str], Sequence[tuple[float, float]], Sequence[WordTimes]]],
    language: str, stage: Path, folder: str,
) -> list[Job]:
    """A .vtt and an .srt job per chapter. `chapters` holds, per chapter, (the audio file's name
    without suffix, the chapter audio's content key, the chunks' texts, the clips' spans in s, the
    chunks' word times where known); the files are written under `stage`/`folder`."""
    jobs: list[Job] = []
    for stem, audio_key, texts, spans, words in chapters:
        if not texts or len(texts) != len(spans):  # a chapter built without its chunks' texts: nothing to time
            continue
        sentences = sentence_timings(texts, spans, language, word_times=words)
        for kind in ("vtt", "srt"):
            name = f"{folder}/{stem}.{kind}"
            key = content_key(f"captions-{kind}", version=CAPTIONS_VERSION, audio=audio_key, language=language,
                              texts=list(texts),
                              # word times only where some chunk has them: none and one empty list per chunk
                              # are the same captions (a chapter from the cache may carry either)
                              **({"words": [list(w) for w in words]} if kind == "vtt" and any(words) else {}))
            jobs.append((name, key, functools.partial(write_captions, sentences, stage / name, kind)))
    return jobs
