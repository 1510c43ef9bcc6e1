"""A manifest's sources -> a BookSource: every document it names checked, then read once (tasks.documents).

    check_sources_exist(manifest) -> None, or a SourceError naming the manifest's field
    read_source(manifest)         -> BookSource (chapters, reader warnings, metadata, what was skipped)

A render reads once (the CLI, before Prefect starts) and hands the BookSource to the flow and to
tasks.plan.make_plan.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from tasks.documents import ChapterText, Metadata, ReadOptions, Skipped, read_document
from tasks.errors import SourceError
from tasks.manifest import Manifest


def read_options(manifest: Manifest) -> ReadOptions:
    """The manifest's `reading:` settings as the readers take them."""
    reading = manifest.reading
    return ReadOptions(
        keep=frozenset(reading.keep), notes=reading.notes, image_alt=reading.image_alt,
        part_titles=reading.part_titles,
    )


@dataclass(frozen=True)
class BookSource:
    """A book's sources as read (every document parsed once): what make_plan plans from. A render reads
    them once (the CLI, before Prefect starts) and hands them to the flow (flows.render.render_read)."""

    manifest: Manifest
    chapters: tuple[ChapterText, ...]
    warnings: tuple[str, ...]
    metadata: Metadata
    skipped: tuple[Skipped, ...]


def read_source(manifest: Manifest) -> BookSource:
    """Check that the files the manifest names exist, then read them (tasks.documents)."""
    check_sources_exist(manifest)
    return BookSource(manifest, *read_book(manifest))


def read_chapters(manifest: Manifest) -> tuple[tuple[ChapterText, ...], tuple[str, ...]]:
    """The manifest's chapters as text: from its one `source`, or from its explicit `chapters` list."""
    chapters, warnings, _, _ = read_book(manifest)
    return chapters, warnings


def read_book(
    manifest: Manifest,
) -> tuple[tuple[ChapterText, ...], tuple[str, ...], Metadata, tuple[Skipped, ...]]:
    """read_chapters, the metadata of the source document (of the first chapter file that has a
    cover, for a `chapters` list), and what the readers skipped."""
    from tasks.documents import paragraphs_from_text

    options = read_options(manifest)
    if manifest.source:
        document = read_document(
            manifest.resolve(manifest.source, "source"), title_hint=manifest.title, options=options
        )
        return document.chapters, document.warnings, document.metadata, document.skipped
    chapters: list[ChapterText] = []
    warnings: list[str] = []
    skipped: list[Skipped] = []
    metadata: Metadata | None = None
    for i, spec in enumerate(manifest.chapters or ()):
        if spec.file:
            document = read_document(
                manifest.resolve(spec.file, f"chapters[{i}].file"), title_hint=spec.title, options=options
            )
            warnings.extend(document.warnings)
            skipped.extend(
                s if s.chapter is not None else dataclasses.replace(s, chapter=spec.title) for s in document.skipped
            )
            paragraphs = tuple(p for ch in document.chapters for p in ch.paragraphs)
            if metadata is None and document.metadata.cover:
                metadata = document.metadata
        else:
            paragraphs = paragraphs_from_text(spec.text or "")
        if not paragraphs:
            raise SourceError(
                "the chapter has no text to read", file=manifest.path, field=f"chapters[{i}] ({spec.title})",
                fix="give it text, or remove the chapter",
            )
        chapters.append(ChapterText(title=spec.title, paragraphs=paragraphs))
    return tuple(chapters), tuple(warnings), metadata or Metadata(), tuple(skipped)


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
