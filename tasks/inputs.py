"""What a book's audio depends on, as one digest: the nightly run re-renders a book when it changes.

The digest covers the manifest's bytes, every source file it names, the cover, the voice's folder
(reference clips), the engine and the pipeline version. It is cheap (hashing a few files) and needs no
engine: the nightly run uses it to skip unchanged books without planning them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tasks.cache import PIPELINE_VERSION, file_sha256
from tasks.manifest import Manifest, load_manifest
from tasks.plan import BookPlan, check_voice, make_plan
from tasks.source import BookSource, read_source


def input_files(manifest: Manifest, voices_dir: Path) -> list[Path]:
    files = [manifest.path]
    if manifest.source:
        files.append(manifest.resolve(manifest.source, "source"))
    files.extend(manifest.resolve(c.file, "chapters.file") for c in manifest.chapters or () if c.file)
    if manifest.cover:
        files.append(manifest.resolve(manifest.cover, "cover"))
    voice_folder = voices_dir / manifest.voice
    if voice_folder.is_dir():
        files.extend(sorted(p for p in voice_folder.rglob("*") if p.is_file()))
    return files


def book_inputs_digest(manifest: Manifest, voices_dir: Path) -> str:
    digest = hashlib.sha256(f"pipeline={PIPELINE_VERSION};engine={manifest.engine}".encode())
    for path in input_files(manifest, voices_dir):
        state = file_sha256(path) if path.is_file() else "missing"
        digest.update(f"\n{path.name}:{state}".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class ReadBook:
    """A book read and checked before its render starts: the manifest and its parsed sources, the digest
    of the inputs taken before they were read (an edit made during the render re-renders it next night),
    and the plan that checked them (check_only: keyed without the worker's facts)."""

    source: BookSource
    inputs_digest: str
    checked: BookPlan


def read_for_render(manifest_path: Path, engine: str | None, *, cache_dir: Path, voices_dir: Path) -> ReadBook:
    """Load the manifest, digest the inputs, read every source (each document parsed once) and plan the
    book to check it, touching no device: what the render flow plans from (flows.render.render_read).
    Bad input (manifest, voice, sources, lexicon, cover) fails here with a UserError."""
    manifest = load_manifest(manifest_path)
    inputs_digest = book_inputs_digest(manifest, voices_dir)
    check_voice(manifest, engine, voices_dir)  # first, as make_plan does: a wrong voice is named before a source
    source = read_source(manifest)
    checked = make_plan(manifest, engine_name=engine, cache_dir=cache_dir, voices_dir=voices_dir, check_only=True,
                        source=source)
    return ReadBook(source, inputs_digest, checked)
