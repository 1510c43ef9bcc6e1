"""Planning: manifest + documents + engine limits -> a BookPlan of keyed chunks.

Chunks never cross a paragraph, so the pause after each chunk is known: the sentence pause inside a
paragraph, the paragraph pause at its end. Each chunk carries its content key; the key is what the
cache and the report speak of.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from tasks.cache import chunk_key
from tasks.documents import ChapterText, Skipped
from tasks.engines.base import EngineInfo
from tasks.errors import SourceError, UserError
from tasks.manifest import Manifest
from tasks.source import BookSource, read_source
from tasks.structure import (
    END_CREDITS,
    OPENING_CREDITS,
    closing_credits,
    opening_credits,
    part_title,
    split_into_parts,
    spoken_title,
    without_heading,
)
from tasks.text import (
    Lexicon,
    book_lexicon,
    has_prompt,
    normalize_text,
    pack_chunks,
    split_sentences,
    strip_prompts,
)
from tasks.text.ledger import Removal, TextLedger, WordTracker, ledger_words
from tasks.workers import WorkerFacts, worker_facts

# Speech rate used for estimates and take checks: about 14 characters of English per second.
CHARS_PER_SECOND = 14.0
# ACX: at most 120 minutes per file. A chapter is split into parts before synthesis, on its estimate;
# the estimate must stay under this share of the limit, as real speech rates vary around the estimate.
MAX_PART_SECONDS = 120 * 60
ESTIMATE_MARGIN = 0.85
TITLE_PAUSE_FACTOR = 1.5  # the pause after a spoken chapter title, in paragraph pauses

ChapterKind = Literal["chapter", "credits"]


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
    kind: ChapterKind = "chapter"  # "credits": the opening or closing credits, not the book's text

    @property
    def words(self) -> int:
        """Words spoken in this file, its title included."""
        return sum(len(c.text.split()) for c in self.chunks)

    @property
    def estimated_seconds(self) -> float:
        return sum(estimate_seconds(c.text, c.pause_after_ms) for c in self.chunks)


def estimate_seconds(text: str, pause_after_ms: int) -> float:
    """How long a chunk and the pause after it take, at CHARS_PER_SECOND."""
    return len(text) / CHARS_PER_SECOND + pause_after_ms / 1000


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
    verify: str = "off"  # take check by speech recognition: off | flag | reroll (tasks.verify)
    verify_threshold: float = 0.9
    engine_version: str | None = None  # what the chunk keys name; a worker that runs another refuses the job


@dataclass(frozen=True)
class ChapterLedger:
    """Where the words of one source chapter went: the text stage's account of the paragraphs the
    reader kept (`text`), and what the reader skipped in it (what, reason, words)."""

    title: str
    text: TextLedger = TextLedger()
    skipped: tuple[tuple[str, str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title, **self.text.to_dict(),
            "skipped": [{"what": what, "reason": reason, "words": words} for what, reason, words in self.skipped],
        }


OUTSIDE_CHAPTERS = "(outside the chapters)"  # the ledger entry of what a reader skipped between chapters


def _skipped_row(entry: Skipped) -> tuple[str, str, int]:
    """(what, reason, words): the reason is the reader's short kind ("licence", "page number") where it
    gives one, else its reason."""
    return entry.what, getattr(entry, "kind", "") or entry.reason, entry.words


@dataclass(frozen=True)
class BookPlan:
    title: str
    chapters: tuple[ChapterPlan, ...]
    job: SynthJob
    engine_info: EngineInfo
    warnings: tuple[str, ...] = field(default=())
    prompts_dropped: int = 0
    cover: str | None = None  # the cover image to embed (JPEG or PNG), see tasks.cover
    ledger: tuple[ChapterLedger, ...] = ()  # per source chapter, in order; what readers skipped outside first
    worker: WorkerFacts | None = None  # the facts the keys and task sizes come from (tasks.workers)

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        return tuple(c for ch in self.chapters for c in ch.chunks)

    @property
    def estimated_seconds(self) -> float:
        return sum(ch.estimated_seconds for ch in self.chapters)


Piece = tuple[str, int]  # (text the engine speaks, pause after it in ms)


def plan_chapters(
    chapters: tuple[ChapterText, ...], manifest: Manifest, info: EngineInfo, job: SynthJob, voice_fingerprint: str,
    warnings: tuple[str, ...] = (), *, prompts_usable: bool | None = None, cover: str | None = None,
    lexicon: Lexicon | None = None, skipped: tuple[Skipped, ...] = (),
) -> BookPlan:
    """Put every paragraph in its spoken form, split it into sentences and pack them into keyed chunks
    within the engine's limit; the pronunciation lexicon (default: the book's own, without a voice's)
    is applied to each chunk.

    The book's spoken structure (tasks.structure) is laid out here: opening credits first and closing
    credits last (`credits`), each chapter's title spoken first in its file (`speak_titles`), and a
    chapter estimated longer than MAX_PART_SECONDS * ESTIMATE_MARGIN split into parts between
    paragraphs. A chapter with nothing to speak is left out with a warning; the others keep their
    titles.

    Square brackets are text unless the manifest turns `prompts` on; then an engine that cannot use
    prompts (`prompts_usable`) gets them removed, each counted in the ledger with the reason "prompt".
    The plan's ledger accounts for every word of every chapter's paragraphs (see tasks.text.ledger),
    with what the readers skipped (`skipped`).
    """
    pacing = manifest.pacing
    language, urls = manifest.language, manifest.reading.urls
    lexicon = book_lexicon(manifest) if lexicon is None else lexicon
    prompts = manifest.prompts
    use_prompts = prompts and (info.supports_prompts if prompts_usable is None else prompts_usable)
    dropped = 0
    notes = list(warnings)
    unspeakable: list[str] = []  # chunks with no letter or digit: an engine gives no audio for them

    def pieces(sentences: list[str], last_pause_ms: int) -> list[Piece]:
        packed = lexicon.apply_to_chunks(pack_chunks(sentences, info.max_chars), info.max_chars, language)
        unspeakable.extend(p for p in packed if not speakable(p))
        packed = [p for p in packed if speakable(p)]
        return [(p, last_pause_ms if i == len(packed) - 1 else pacing.sentence_pause_ms) for i, p in enumerate(packed)]

    def paragraph_pieces(paragraph: str, ledger: list[TextLedger] | None = None) -> tuple[list[Piece], int]:
        """One paragraph's chunks and its number of sentences; its word ledger added to `ledger`."""
        nonlocal dropped
        track = WordTracker(paragraph) if ledger is not None else None
        text = normalize_text(paragraph, urls=urls, language=language, prompts=prompts, track=track)
        if prompts and not use_prompts and has_prompt(text):
            dropped += 1
            stripped = track.step("prompt", strip_prompts(text)) if track else strip_prompts(text)
            text = normalize_text(stripped, urls=urls, language=language, prompts=prompts, track=track)
        chunks: list[Piece] = []
        sentences = split_sentences(text, language) if text else []
        if sentences:
            chunks = pieces(sentences, pacing.paragraph_pause_ms)
        if track is not None and ledger is not None:
            track.step("lexicon", " ".join(c for c, _ in chunks))
            ledger.append(track.ledger())
        return chunks, len(sentences)

    def title_pieces(title: str, part: int | None) -> list[Piece]:
        if not manifest.speak_titles:
            return []
        text = spoken_title(title, part, urls=urls, language=language)
        if not use_prompts and has_prompt(text):
            text = normalize_text(strip_prompts(text), urls=urls, language=language)
        return pieces(split_sentences(text, language), round(pacing.paragraph_pause_ms * TITLE_PAUSE_FACTOR)) if text else []

    def credits_section(title: str, lines: tuple[str, ...]) -> tuple[str, ChapterKind, list[Piece], int]:
        spoken = [paragraph_pieces(line) for line in lines]
        return title, "credits", [c for chunks, _ in spoken for c in chunks], sum(n for _, n in spoken)

    sections: list[tuple[str, ChapterKind, list[Piece], int]] = []  # (title, kind, chunks, sentences)
    if manifest.credits:
        sections.append(credits_section(OPENING_CREDITS, opening_credits(manifest)))
    limit_s = MAX_PART_SECONDS * ESTIMATE_MARGIN
    ledgers: list[ChapterLedger] = []
    outside = tuple(_skipped_row(s) for s in skipped if s.chapter is None and s.words)
    if outside:
        ledgers.append(ChapterLedger(OUTSIDE_CHAPTERS, skipped=outside))
    for ci, chapter in enumerate(chapters):
        texts = without_heading(chapter.title, chapter.paragraphs) if manifest.speak_titles else chapter.paragraphs
        accounts: list[TextLedger] = []
        if len(texts) < len(chapter.paragraphs):
            title_text = " ".join(chapter.paragraphs[:len(chapter.paragraphs) - len(texts)])
            n = len(ledger_words(title_text))
            accounts.append(TextLedger(removed=(Removal("read as the chapter title", title_text, n),) if n else ()))
        paragraphs = [p for p in (paragraph_pieces(text, accounts) for text in texts) if p[0]]
        ledgers.append(ChapterLedger(
            chapter.title, TextLedger.total(accounts),
            tuple(_skipped_row(s) for s in skipped if s.chapter == chapter.title and s.words),
        ))
        if not paragraphs and texts == () and (heading := title_pieces(chapter.title, None)):
            sections.append((chapter.title, "chapter", heading, 0))  # a heading alone: a part's announcement
            continue
        if not paragraphs:
            notes.append(f"chapter {ci + 1} ({chapter.title!r}) has nothing to speak and was left out")
            continue
        costs = [sum(estimate_seconds(*c) for c in chunks) for chunks, _ in paragraphs]
        bounds = [0, *split_into_parts(costs, limit_s), len(paragraphs)]
        parts = len(bounds) - 1
        if parts > 1:
            notes.append(
                f"chapter {chapter.title!r} is estimated at {sum(costs) / 60:.0f} min, over the "
                f"{limit_s / 60:.0f} min planned per file; it is split into {parts} parts between paragraphs"
            )
        for k in range(parts):
            part = k + 1 if parts > 1 else None
            group = paragraphs[bounds[k]:bounds[k + 1]]
            chunks = title_pieces(chapter.title, part) + [c for p, _ in group for c in p]
            title = part_title(chapter.title, k + 1) if part else chapter.title
            sections.append((title, "chapter", chunks, sum(n for _, n in group)))
    if not sections or all(kind == "credits" for _, kind, _, _ in sections):
        raise SourceError(
            "the book has no text to speak", file=manifest.path, field="source" if manifest.source else "chapters",
            fix="check that the source documents contain text (bracketed prompts alone are not spoken)",
        )
    if manifest.credits:
        sections.append(credits_section(END_CREDITS, closing_credits(manifest)))

    def keyed(ci: int, j: int, text: str, pause_ms: int) -> Chunk:
        key = chunk_key(
            text=text, voice_fingerprint=voice_fingerprint, engine=info.name, engine_version=info.version,
            settings=job.settings, seed=job.seed,
        )
        return Chunk(ci, j, text, pause_ms, key)

    # Chapters are numbered as the files are, credits included, after empty chapters were left out.
    planned = tuple(
        ChapterPlan(ci, title, tuple(keyed(ci, j, *piece) for j, piece in enumerate(chunks)), sentences, kind)
        for ci, (title, kind, chunks, sentences) in enumerate(sections)
    )
    if unspeakable:
        notes.append(f"{len(unspeakable)} chunk(s) with nothing to speak (no letters or digits, e.g. a title made "
                     f"only of markup) are left out: {', '.join(repr(t[:40]) for t in unspeakable[:3])}")
    if dropped:
        notes.append(
            f"{dropped} paragraph(s) hold bracketed prompts; engine {info.name!r} cannot use prompts here, "
            "so they are left out and not spoken (the ledger lists them under 'prompt')"
        )
    return BookPlan(manifest.title, planned, job, info, tuple(notes), dropped, cover, tuple(ledgers))


def speakable(text: str) -> bool:
    """Whether an engine has anything to say for `text`: a letter or a digit ("." or "-" alone: no)."""
    return any(ch.isalnum() for ch in text)


def reuse_checked_plan(checked: BookPlan, facts: WorkerFacts, source: BookSource) -> BookPlan | None:
    """The plan make_plan(check_only=True) made from `source`, for the worker of `facts`, when those
    facts change none of it (the engine version and device it was keyed with; prompts, when the text
    has any, usable there as assumed); else None, and the book is planned again with the facts."""
    info = checked.engine_info
    if (facts.version, facts.device) != (info.version, info.device):
        return None
    manifest = source.manifest
    if info.supports_prompts and manifest.prompts and facts.prompt_mode != "redact" and any(
            has_prompt(p) for ch in source.chapters for p in ch.paragraphs):
        return None
    return replace(checked, worker=facts)


def job_settings(engine: Any, manifest: Manifest) -> dict[str, Any]:
    """The engine settings of a book's chunks (part of every chunk key)."""
    return {**engine.settings_for(manifest.quality), "sentence_pause_ms": manifest.pacing.sentence_pause_ms}


def check_voice(manifest: Manifest, engine_name: str | None, voices_dir: Path) -> Any:
    """The book's engine, once it has accepted the manifest's voice (an error names the manifest's field)."""
    from tasks.engines import get_engine

    engine = get_engine(engine_name or manifest.engine)
    try:
        engine.check_voice(manifest.voice, str(voices_dir))
    except UserError as exc:  # name the manifest and field for the user
        raise type(exc)(exc.reason, file=manifest.path, field="voice", fix=exc.fix) from None
    return engine


def make_plan(manifest: Manifest, *, engine_name: str | None, cache_dir: Path, voices_dir: Path,
              facts: WorkerFacts | None = None, check_only: bool = False,
              source: BookSource | None = None) -> BookPlan:
    """Everything up to synthesis: the engine and voice checked, the sources read, chunks keyed.

    The keys name the engine version as the worker runs it: `facts` from the worker that will render
    (tasks.workers, asked by the flow), else this process's own (it is the worker). `check_only`
    validates the input and touches no device (no torch): its keys are not for synthesis. `source`:
    the manifest's sources already read (read_source), else they are read here."""
    from tasks.cover import prepare_cover
    from tasks.verify import verify_mode
    from tasks.verify_whisper import asr_model_folder

    name = engine_name or manifest.engine
    engine = check_voice(manifest, engine_name, voices_dir)
    source = source if source is not None else read_source(manifest)
    chapters, warnings, metadata, skipped = source.chapters, source.warnings, source.metadata, source.skipped
    cover, cover_notes = prepare_cover(manifest, metadata, cache_dir / "covers")
    warnings = (*warnings, *cover_notes)
    settings = job_settings(engine, manifest)
    verify, verify_warning = verify_mode(manifest.verify, name, manifest.language)
    if verify != "off":
        asr_model_folder()  # AUDIOBOOK_ASR_MODEL, when set, must name a usable model before any take is heard
    if verify_warning:
        warnings = (*warnings, verify_warning)
    info = engine.info
    prompts = manifest.prompts and any(has_prompt(p) for ch in chapters for p in ch.paragraphs)
    if facts is None and not check_only:
        facts = worker_facts(name, settings, prompts=prompts)
    if facts is not None:
        info = replace(info, version=facts.version, device=facts.device)
    job = SynthJob(
        engine=name, voice=manifest.voice, settings=settings, seed=manifest.seed, voices_dir=str(voices_dir),
        cache_dir=str(cache_dir), verify=verify, verify_threshold=manifest.verify_threshold,
        engine_version=info.version,
    )
    fingerprint = engine.voice_fingerprint(manifest.voice, str(voices_dir))
    # An engine that supports prompts may still lack what it needs for them (Tortoise's aligner, on the
    # worker): then prompts are removed here, so the chunk keys name the text that is really spoken.
    usable = info.supports_prompts and manifest.prompts
    if usable and not check_only and prompts:
        usable = (facts.prompt_mode if facts else None) == "redact"
    book = plan_chapters(
        chapters, manifest, info, job, fingerprint, warnings, prompts_usable=usable,
        cover=str(cover) if cover else None, lexicon=book_lexicon(manifest, voices_dir), skipped=skipped,
    )
    return replace(book, worker=facts)
