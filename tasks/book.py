"""From synthesised chunks to a finished book: chapter audio, encoded files, the report.

    assemble_chapter_audio(chapter, results, job, pacing) -> ChapterAudio  (cached by content key)
    publish_book(manifest, chapters, out_dir, cover=...) -> list of written files (sample.mp3 included)

The report (report.json) is built and written by tasks.report.

Every output file is written under a temporary name and renamed when complete; files whose inputs
did not change since the last render (recorded in `.render-state.json`) are not encoded again.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tasks import atomic, settings
from tasks.audio import AudioStats, assemble_chapter_to_wav
from tasks.cache import AudioCache, content_key, file_sha256
from tasks.captions import WordTimes, chunk_word_times
from tasks.encode import BookTags, encode_m4b, encode_mp3
from tasks.errors import UserError, output_error
from tasks.manifest import Manifest
from tasks.plan import ChapterKind, ChapterPlan, SynthJob
from tasks.readalong import timed_jobs
from tasks.synth import ChunkResult

OUTPUT_SAMPLE_RATE_HZ = 44100
HEAD_MS = 750  # ACX: 0.5-1 s of room tone at the head of each file
MIN_TAIL_MS, MAX_TAIL_MS = 1000, 5000  # ACX: 1-5 s at the tail; the manifest's chapter pause, clamped
STATE_FILE = ".render-state.json"
SAMPLE_NAME = "sample.mp3"
SAMPLE_MAX_SECONDS = 300.0  # ACX: a retail sample of at most 5 minutes
SAMPLE_FADE_OUT_MS = 1000
SAMPLE_MIN_CHAPTER_S = 60.0  # the sample comes from the first chapter at least this long
SAMPLE_TAIL_S = 1.0  # at most this much of the pause after the sample's last chunk
SAMPLE_PREFER_PARAGRAPH_S = 60.0  # end at a paragraph's end when one is this close to the limit
PARAGRAPH_GAP_S = 0.6  # a pause this long after a chunk marks a paragraph's end


@dataclass(frozen=True)
class ChapterAudio:
    index: int
    title: str
    key: str
    wav: str
    stats: AudioStats
    cached: bool
    kind: ChapterKind = "chapter"
    clip_spans_s: tuple[tuple[float, float], ...] = ()  # (start, end) of each chunk's audio in the file
    texts: tuple[str, ...] = ()  # what each chunk says, one per clip span (captions, read-along)
    word_times: tuple[WordTimes, ...] = ()  # per chunk, its aligned words' times in the file (captions)


def encode_workers() -> int:
    """ffmpeg processes at once: AUDIOBOOK_ENCODE_WORKERS, else one per CPU core."""
    return settings.ENCODE_WORKERS.get() or os.cpu_count() or 2


def chapter_tail_ms(manifest: Manifest) -> int:
    return min(max(manifest.pacing.chapter_pause_ms, MIN_TAIL_MS), MAX_TAIL_MS)


def chapter_key(chapter: ChapterPlan, tail_ms: int) -> str:
    return content_key(
        "chapter", chunks=[(c.key, c.pause_after_ms) for c in chapter.chunks], head_ms=HEAD_MS, tail_ms=tail_ms,
        sample_rate_hz=OUTPUT_SAMPLE_RATE_HZ,
    )


def chapter_cache(job: SynthJob) -> AudioCache:
    return AudioCache(Path(job.cache_dir) / "chapters", ".wav")


def cached_chapter_audio(chapter: ChapterPlan, job: SynthJob, tail_ms: int) -> ChapterAudio | None:
    """The chapter's audio from the cache, or None when it must be assembled."""
    key = chapter_key(chapter, tail_ms)
    cache = chapter_cache(job)
    found = cache.entry(key)
    if found is not None and {"stats", "clip_spans_s"} <= set(found[1]):
        hit, meta = found
        spans = tuple((float(a), float(b)) for a, b in meta["clip_spans_s"])
        return ChapterAudio(
            chapter.index, chapter.title, key, str(hit), AudioStats(**meta["stats"]), True, chapter.kind, spans,
            tuple(c.text for c in chapter.chunks),
        )
    return None


def with_word_times(audio: ChapterAudio, chapter: ChapterPlan, results: dict[str, ChunkResult]) -> ChapterAudio:
    """A chapter from the cache with its chunks' aligned word times placed in it (captions): the chapter
    cache keeps the audio; the word times live with each chunk."""
    return replace(audio, word_times=chunk_word_times([results[c.key].verify for c in chapter.chunks],
                                                      audio.clip_spans_s))


def assemble_chapter_audio(
    chapter: ChapterPlan, results: dict[str, ChunkResult], job: SynthJob, tail_ms: int
) -> ChapterAudio:
    """Stitch, trim, resample and loudness-normalise one chapter; cached by the chunks' keys."""
    if (cached := cached_chapter_audio(chapter, job, tail_ms)) is not None:
        return with_word_times(cached, chapter, results)
    key = chapter_key(chapter, tail_ms)
    cache = chapter_cache(job)
    # Streamed clip by clip into the cache's file: memory does not grow with the chapter's length.
    target = cache.path_for(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    samples: list[tuple[int, int]] = []
    stats = assemble_chapter_to_wav(
        [Path(results[c.key].path) for c in chapter.chunks], [c.pause_after_ms for c in chapter.chunks], target,
        out_sr=OUTPUT_SAMPLE_RATE_HZ, head_ms=HEAD_MS, tail_ms=tail_ms, clip_spans=samples,
    )
    spans = tuple((a / OUTPUT_SAMPLE_RATE_HZ, b / OUTPUT_SAMPLE_RATE_HZ) for a, b in samples)
    path = cache.adopt(key, stats=asdict(stats), clip_spans_s=[list(s) for s in spans])
    return ChapterAudio(chapter.index, chapter.title, key, str(path), stats, False, chapter.kind, spans,
                        tuple(c.text for c in chapter.chunks),
                        chunk_word_times([results[c.key].verify for c in chapter.chunks], spans))


def sample_chapter(chapters: list[ChapterAudio]) -> ChapterAudio | None:
    """The chapter the retail sample comes from: the first of the book's own (not the credits) that runs
    at least SAMPLE_MIN_CHAPTER_S, so that a short epigraph, dedication or note before the story does not
    make the sample; the first of them when none is that long."""
    own = [c for c in chapters if c.kind == "chapter"]
    if not own:
        return None
    return next((c for c in own if c.stats.duration_s >= SAMPLE_MIN_CHAPTER_S),
                own[0])


def sample_end_s(chapter: ChapterAudio, max_s: float | None = None) -> float:
    """Where the sample cut from the start of `chapter` ends: at most `max_s` (default
    SAMPLE_MAX_SECONDS), just after a chunk.

    The cut falls after a chunk's audio, in the pause that follows it (at most SAMPLE_TAIL_S of it),
    never inside speech; it prefers the end of a paragraph (a longer pause) within
    SAMPLE_PREFER_PARAGRAPH_S of the latest possible cut. A first chunk longer than `max_s` (not
    met in practice: chunks last seconds) is cut at `max_s`.
    """
    max_s = SAMPLE_MAX_SECONDS if max_s is None else max_s
    duration = chapter.stats.duration_s
    spans = chapter.clip_spans_s
    cuts: list[tuple[float, bool]] = []  # (cut, after a paragraph)
    for i, (_, end) in enumerate(spans):
        gap_end = spans[i + 1][0] if i + 1 < len(spans) else duration
        cut = min(gap_end, end + SAMPLE_TAIL_S)
        if cut > max_s:
            break
        cuts.append((cut, gap_end - end >= PARAGRAPH_GAP_S))
    if not cuts:
        return min(max_s, duration)
    latest = cuts[-1][0]
    paragraph = [cut for cut, at_paragraph in cuts if at_paragraph and cut >= latest - SAMPLE_PREFER_PARAGRAPH_S]
    return paragraph[-1] if paragraph else latest


def book_tags(manifest: Manifest) -> BookTags:
    return BookTags(
        title=manifest.title, author=manifest.author, narrator=manifest.narrator,
        year=str(manifest.year) if manifest.year is not None else None, genre=manifest.genre or "Audiobook",
        description=manifest.description, language=manifest.language,
    )


def slug(title: str, limit: int = 60) -> str:
    """A file-name-safe form of a chapter title."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return text[:limit].rstrip("-") or "chapter"


def mp3_name(chapter: ChapterAudio, total: int) -> str:
    width = max(2, len(str(total)))
    return f"{chapter.index + 1:0{width}d}-{slug(chapter.title)}.mp3"


def _load_state(out_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((out_dir / STATE_FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _remove_stale_temp_files(out_dir: Path) -> None:
    """Temp files a killed render left behind (tasks.atomic's, and earlier versions'). The caller
    holds the book's lock, so no other render is writing them now."""
    for folder in (out_dir, out_dir / "mp3"):
        for stale in atomic.stale_temp_files(folder):
            stale.unlink(missing_ok=True)
    for stage in out_dir.glob(".staging-*"):
        shutil.rmtree(stage, ignore_errors=True)


def publish_book(
    manifest: Manifest, chapters: list[ChapterAudio], out_dir: Path, *, cover: Path | None = None
) -> tuple[list[Path], int]:
    """Encode the book's files into `out_dir`; returns (the files, how many were encoded anew).

    `cover` is the image to embed (the plan's, see tasks.cover), or None for none.
    A file is kept from an earlier render only when its inputs are unchanged and its size and sha256
    match what was recorded when it was written (a truncated or altered file is encoded again). New
    files are staged and swapped in together: when encoding fails, the book folder is left as it was.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_temp_files(out_dir)
    except OSError as exc:
        raise output_error(exc, out_dir) from exc
    tags = book_tags(manifest)
    cover_key = content_key("cover", sha=_file_digest(cover)) if cover else None
    state = _load_state(out_dir)
    files: list[Path] = []
    wanted: dict[str, dict[str, Any]] = {}
    written: list[str] = []

    def fresh(name: str, key: str) -> bool:
        record = state.get(name)
        path = out_dir / name
        if not isinstance(record, dict) or record.get("key") != key:
            return False
        try:  # unchanged size and modification time, else the checksum decides (as in tasks.cache)
            stat = path.stat()
            intact = stat.st_size == record.get("size") and (
                stat.st_mtime_ns == record.get("mtime_ns") or file_sha256(path) == record.get("sha256"))
        except OSError:
            return False
        if intact:
            wanted[name] = {**record, "mtime_ns": stat.st_mtime_ns}
        return intact

    def wrote(name: str, key: str) -> None:
        path = stage / name
        written.append(name)
        stat = path.stat()  # os.replace keeps size and modification time
        wanted[name] = {"key": key, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": file_sha256(path)}

    # New files are encoded into a staging folder and swapped in only when every one is written, so a
    # render that fails part-way leaves the previous complete book as it was.
    try:
        stage = Path(tempfile.mkdtemp(dir=out_dir, prefix=".staging-"))
    except OSError as exc:
        raise output_error(exc, out_dir) from exc
    try:
        encoded = _publish_files(manifest, chapters, stage, tags, cover, cover_key, files, fresh, wrote)
        for name in written:
            (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
            atomic.commit(stage / name, out_dir / name)  # a finished file, moved in: fsync'd, renamed
        files[:] = [out_dir / f.relative_to(stage) for f in files]
        if "mp3" in manifest.outputs:
            _remove_renamed_chapters(out_dir, {f.name for f in files if f.parent.name == "mp3"})
        for dropped in {n for n in state if n.endswith(".epub")} - set(wanted):  # read_along turned off
            (out_dir / dropped).unlink(missing_ok=True)
        atomic.write_bytes(out_dir / STATE_FILE, json.dumps(wanted, indent=1, sort_keys=True).encode())
    except OSError as exc:
        raise output_error(exc, out_dir) from exc
    except UserError as exc:  # name the book's folder, not the staging folder inside it
        if exc.file is not None and exc.file.startswith(str(stage)):
            raise type(exc)(exc.reason, file=out_dir, field=exc.field, fix=exc.fix) from exc
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return files, encoded


def _remove_renamed_chapters(out_dir: Path, keep: set[str]) -> None:
    """MP3s (and captions) of chapters renamed or removed since the last render (after the new ones
    are in place)."""
    for old in (out_dir / "mp3").glob("*") if (out_dir / "mp3").is_dir() else ():
        if old.suffix in (".mp3", ".vtt", ".srt") and old.name not in keep:
            old.unlink()


def _publish_files(
    manifest: Manifest, chapters: list[ChapterAudio], out_dir: Path, tags: BookTags, cover: Path | None,
    cover_key: str | None, files: list[Path], fresh: Callable[[str, str], bool],
    wrote: Callable[[str, str], None],
) -> int:
    """Encode what is not fresh into `out_dir` (the staging folder), several ffmpeg processes at once
    (each encoder uses one core); `fresh` looks at the published book, `wrote` records a new file."""
    jobs: list[tuple[str, str, Callable[[], object]]] = []  # (name, key, encode)
    if "mp3" in manifest.outputs:
        (out_dir / "mp3").mkdir(exist_ok=True)
        names = [f"mp3/{mp3_name(ch, len(chapters))}" for ch in chapters]
        for ch, name in zip(chapters, names, strict=True):
            key = content_key("mp3", audio=ch.key, tags=asdict(tags), title=ch.title, track=ch.index,
                              total=len(chapters), cover=cover_key)
            jobs.append((name, key, functools.partial(
                encode_mp3, Path(ch.wav), out_dir / name, tags=tags, chapter_title=ch.title, track=ch.index + 1,
                total_tracks=len(chapters), cover=cover)))
    if "m4b" in manifest.outputs:
        name = f"{manifest.stem}.m4b"
        key = content_key("m4b", audio=[c.key for c in chapters], titles=[c.title for c in chapters],
                          tags=asdict(tags), cover=cover_key)
        jobs.append((name, key, functools.partial(
            encode_m4b, [Path(c.wav) for c in chapters], [c.title for c in chapters], out_dir / name, tags=tags,
            cover=cover)))
    if (source := sample_chapter(chapters)) is not None:
        end_s = sample_end_s(source)
        key = content_key("sample", audio=source.key, end_s=round(end_s, 4), fade_ms=SAMPLE_FADE_OUT_MS,
                          tags=asdict(tags), cover=cover_key)
        jobs.append((SAMPLE_NAME, key, functools.partial(
            encode_mp3, Path(source.wav), out_dir / SAMPLE_NAME, tags=tags, chapter_title="Sample", track=1,
            total_tracks=1, cover=cover, until_s=end_s, fade_out_ms=SAMPLE_FADE_OUT_MS)))
    jobs += timed_jobs(manifest, chapters, out_dir, tags, cover, cover_key)  # captions; the read-along EPUB
    files.extend(out_dir / name for name, _, _ in jobs)
    # The M4B (and the EPUB) are the longest jobs: start them first so the chapter MP3s fill the other core(s).
    todo = sorted((job for job in jobs if not fresh(job[0], job[1])), key=lambda job: not job[0].endswith((".m4b", ".epub")))
    with ThreadPoolExecutor(max_workers=max(1, min(encode_workers(), len(todo)))) as pool:
        futures = [(name, key, pool.submit(encode)) for name, key, encode in todo]
        errors: list[BaseException] = []
        for name, key, future in futures:
            try:
                future.result()
                wrote(name, key)
            except BaseException as exc:  # collect: every encode must end before clean-up
                errors.append(exc)
        if errors:
            raise errors[0]
    return len(todo)


def _file_digest(path: Path) -> str:
    from tasks.cache import file_sha256

    return file_sha256(path)
