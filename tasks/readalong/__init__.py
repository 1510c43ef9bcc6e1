"""Timed text published with the audio: captions for every render, the read-along EPUB on request.

    timed_jobs(manifest, chapters, stage, tags, cover, cover_key) -> publish jobs for tasks.book

Each job is (file name in the book's folder, content key, write-it); tasks.book runs them with the
encodes, skips those whose key and file are unchanged, and swaps the new files in together.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.cache import content_key
from tasks.captions import CAPTIONS_VERSION, Job, caption_folder, caption_jobs, sentence_timings
from tasks.readalong.epub import AUDIO_BITRATE, EpubBook, EpubChapter, build_epub

if TYPE_CHECKING:
    from tasks.book import ChapterAudio
    from tasks.encode import BookTags
    from tasks.manifest import Manifest

__all__ = ["build_epub", "epub_name", "timed_jobs"]

EPUB_VERSION = 1  # part of the EPUB's key: bump when its layout changes


def epub_name(manifest: Manifest) -> str:
    return f"{manifest.stem}.epub"


def timed_jobs(
    manifest: Manifest, chapters: Sequence[ChapterAudio], stage: Path, tags: BookTags, cover: Path | None,
    cover_key: str | None,
) -> list[Job]:
    """Captions (.vtt and .srt) for each chapter, named as its MP3; the read-along EPUB when the
    manifest asks for it (`read_along: true`). Files are written under `stage`."""
    from tasks.book import mp3_name

    language = manifest.language
    folder = caption_folder(manifest.outputs)
    jobs = caption_jobs(
        [(mp3_name(ch, len(chapters)).removesuffix(".mp3"), ch.key, ch.texts, ch.clip_spans_s, ch.word_times)
         for ch in chapters],
        language, stage, folder,
    )
    if manifest.read_along:
        book = EpubBook(
            title=manifest.title, author=manifest.author, language=language, identifier=manifest.stem,
            narrator=manifest.narrator, description=manifest.description, cover=cover,
            chapters=tuple(
                EpubChapter(ch.title, Path(ch.wav), tuple(sentence_timings(ch.texts, ch.clip_spans_s, language)),
                            ch.kind)
                for ch in chapters
            ),
        )
        name = epub_name(manifest)
        key = content_key(
            "epub", version=EPUB_VERSION, captions=CAPTIONS_VERSION, bitrate=AUDIO_BITRATE, tags=asdict(tags),
            cover=cover_key, language=language, chapters=[(ch.key, ch.title, list(ch.texts)) for ch in chapters],
        )
        jobs.append((name, key, functools.partial(build_epub, book, stage / name)))
    return jobs
