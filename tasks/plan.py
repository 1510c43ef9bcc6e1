"""Planning: manifest + documents + engine limits -> a BookPlan of keyed chunks.

Chunks never cross a paragraph, so the pause after each chunk is known: the sentence pause inside a
paragraph, the paragraph pause at its end. Each chunk carries its content key; the key is what the
cache and the report speak of.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.cache import chunk_key
from tasks.documents import ChapterText, ReadOptions, read_document
from tasks.engines.base import EngineInfo
from tasks.errors import SourceError, UserError
from tasks.manifest import Manifest
from tasks.text import (
    Lexicon,
    book_lexicon,
    has_prompt,
    normalize_text,
    pack_chunks,
    split_sentences,
    strip_prompts,
)

# Speech rate used for estimates and take checks: about 14 characters of English per second.
CHARS_PER_SECOND = 14.0


@dataclass(frozen=True)
class Chunk:
    chapter_index: int
    index: int  # position within its chapter
    text: str  # normalised text the engine speaks
    pause_after_ms: int
    key: str

    @property
    def label(self) -> str:
        """Where the chunk is, for messages: chapter number, chunk number and its first words."""
        words = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f"chapter {self.chapter_index + 1}, chunk {self.index + 1}: {words!r}"


@dataclass(frozen=True)
class ChapterPlan:
    index: int
    title: str
    chunks: tuple[Chunk, ...]
    sentences: int


@dataclass(frozen=True)
class SynthJob:
    """Everything a worker needs to synthesise chunks, apart from the chunks themselves."""

    engine: str
    voice: str
    settings: Mapping[str, Any]
    seed: int
    voices_dir: str | None
    cache_dir: str
    max_takes: int = 3


@dataclass(frozen=True)
class BookPlan:
    title: str
    chapters: tuple[ChapterPlan, ...]
    job: SynthJob
    engine_info: EngineInfo
    warnings: tuple[str, ...] = field(default=())
    prompts_dropped: int = 0

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        return tuple(c for ch in self.chapters for c in ch.chunks)

    @property
    def estimated_seconds(self) -> float:
        return sum(len(c.text) / CHARS_PER_SECOND + c.pause_after_ms / 1000 for c in self.chunks)


def read_options(manifest: Manifest) -> ReadOptions:
    """The manifest's `reading:` settings as the readers take them."""
    reading = manifest.reading
    return ReadOptions(
        keep=frozenset(reading.keep), notes=reading.notes, image_alt=reading.image_alt,
        part_titles=reading.part_titles,
    )


def read_chapters(manifest: Manifest) -> tuple[tuple[ChapterText, ...], tuple[str, ...]]:
    """The manifest's chapters as text: from its one `source`, or from its explicit `chapters` list."""
    from tasks.documents import paragraphs_from_text

    options = read_options(manifest)
    if manifest.source:
        document = read_document(
            manifest.resolve(manifest.source, "source"), title_hint=manifest.title, options=options
        )
        return document.chapters, document.warnings
    chapters: list[ChapterText] = []
    warnings: list[str] = []
    for i, spec in enumerate(manifest.chapters or ()):
        if spec.file:
            document = read_document(
                manifest.resolve(spec.file, f"chapters[{i}].file"), title_hint=spec.title, options=options
            )
            warnings.extend(document.warnings)
            paragraphs = tuple(p for ch in document.chapters for p in ch.paragraphs)
        else:
            paragraphs = paragraphs_from_text(spec.text or "")
        if not paragraphs:
            raise SourceError(
                "the chapter has no text to read", file=manifest.path, field=f"chapters[{i}] ({spec.title})",
                fix="give it text, or remove the chapter",
            )
        chapters.append(ChapterText(title=spec.title, paragraphs=paragraphs))
    return tuple(chapters), tuple(warnings)


def plan_chapters(
    chapters: tuple[ChapterText, ...], manifest: Manifest, info: EngineInfo, job: SynthJob, voice_fingerprint: str,
    warnings: tuple[str, ...] = (), *, prompts_usable: bool | None = None, lexicon: Lexicon | None = None,
) -> BookPlan:
    """Put every paragraph in its spoken form, split it into sentences and pack them into keyed chunks
    within the engine's limit; the pronunciation lexicon (default: the book's own, without a voice's)
    is applied to each chunk."""
    pacing = manifest.pacing
    language, urls = manifest.language, manifest.reading.urls
    lexicon = book_lexicon(manifest) if lexicon is None else lexicon
    use_prompts = info.supports_prompts if prompts_usable is None else prompts_usable
    planned: list[ChapterPlan] = []
    dropped = 0
    notes = list(warnings)
    for ci, chapter in enumerate(chapters):
        chunks: list[Chunk] = []
        sentence_count = 0
        for paragraph in chapter.paragraphs:
            text = normalize_text(paragraph, urls=urls, language=language)
            if not use_prompts and has_prompt(text):
                dropped += 1
                text = normalize_text(strip_prompts(text), urls=urls, language=language)
            if not text:
                continue
            sentences = split_sentences(text, language)
            sentence_count += len(sentences)
            packed = lexicon.apply_to_chunks(pack_chunks(sentences, info.max_chars), info.max_chars, language)
            for pi, piece in enumerate(packed):
                last = pi == len(packed) - 1
                key = chunk_key(
                    text=piece, voice_fingerprint=voice_fingerprint, engine=info.name,
                    engine_version=info.version, settings=job.settings, seed=job.seed,
                )
                pause = pacing.paragraph_pause_ms if last else pacing.sentence_pause_ms
                chunks.append(Chunk(ci, len(chunks), piece, pause, key))
        if not chunks:
            notes.append(f"chapter {ci + 1} ({chapter.title!r}) has nothing to speak and was left out")
            continue
        planned.append(ChapterPlan(len(planned), chapter.title, tuple(chunks), sentence_count))
    if not planned:
        raise SourceError(
            "the book has no text to speak", file=manifest.path, field="source" if manifest.source else "chapters",
            fix="check that the source documents contain text (bracketed prompts alone are not spoken)",
        )
    # Re-number chapter indexes on chunks when an empty chapter was left out, keeping titles aligned.
    fixed = tuple(
        ChapterPlan(ch.index, ch.title, tuple(Chunk(ch.index, c.index, c.text, c.pause_after_ms, c.key)
                                              for c in ch.chunks), ch.sentences)
        for ch in planned
    )
    if dropped:
        notes.append(
            f"{dropped} paragraph(s) hold bracketed prompts; engine {info.name!r} cannot use prompts here, "
            "so they are left out and not spoken"
        )
    return BookPlan(manifest.title, fixed, job, info, tuple(notes), dropped)


def check_sources_exist(manifest: Manifest) -> None:
    """Fail early, before any work, when a file the manifest names is missing."""
    named: list[tuple[str, str]] = []
    if manifest.source:
        named.append((manifest.source, "source"))
    for i, spec in enumerate(manifest.chapters or ()):
        if spec.file:
            named.append((spec.file, f"chapters[{i}].file"))
    if manifest.cover:
        named.append((manifest.cover, "cover"))
    for rel, fieldname in named:
        path: Path = manifest.resolve(rel, fieldname)
        try:
            present = path.is_file()
        except OSError as exc:  # e.g. a file name too long for the file system
            raise SourceError(
                f"{rel[:80]!r} cannot be opened ({exc.strerror or exc})", file=manifest.path, field=fieldname,
                fix="correct the path",
            ) from None
        if not present:
            raise SourceError(
                f"{rel!r} does not exist", file=manifest.path, field=fieldname,
                fix=f"put the file at {path} or correct the path",
            )


def make_plan(manifest: Manifest, *, engine_name: str | None, cache_dir: Path, voices_dir: Path) -> BookPlan:
    """Everything up to synthesis: the engine and voice checked, the sources read, chunks keyed."""
    from tasks.engines import get_engine

    name = engine_name or manifest.engine
    engine = get_engine(name)
    field_name = "voice"
    try:
        engine.check_voice(manifest.voice, str(voices_dir))
    except UserError as exc:  # name the manifest and field for the user
        raise type(exc)(exc.reason, file=manifest.path, field=field_name, fix=exc.fix) from None
    check_sources_exist(manifest)
    chapters, warnings = read_chapters(manifest)
    settings = {**engine.settings_for(manifest.quality), "sentence_pause_ms": manifest.pacing.sentence_pause_ms}
    job = SynthJob(
        engine=name, voice=manifest.voice, settings=settings, seed=manifest.seed, voices_dir=str(voices_dir),
        cache_dir=str(cache_dir),
    )
    fingerprint = engine.voice_fingerprint(manifest.voice, str(voices_dir))
    # An engine that supports prompts may still lack what it needs for them (Tortoise's aligner):
    # then prompts are removed here, so the chunk keys name the text that is really spoken.
    usable = engine.info.supports_prompts
    if usable and any(has_prompt(p) for ch in chapters for p in ch.paragraphs):
        usable = getattr(engine, "prompt_mode", "redact") == "redact"
    lexicon = book_lexicon(manifest, voices_dir)
    return plan_chapters(chapters, manifest, engine.info, job, fingerprint, warnings, prompts_usable=usable,
                         lexicon=lexicon)
