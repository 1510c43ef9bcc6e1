"""A pronunciation lexicon: words respelled the way the voice should say them.

Entries come from three places, later ones overriding earlier ones:
  1. `voices/<voice>/lexicon.yaml`  beside the voice (its own habits)
  2. `lexicon.yaml`                 beside the book's manifest
  3. `pronunciations:`              in the manifest itself
Each is a mapping `word: respelling` ("Hermione: her-MY-oh-nee"). Matching is whole-word. A key
with a capital letter matches exactly that spelling ("Reading" the town, not "reading"); an
all-lower-case key matches any capitalisation, and a capitalised match gets a capitalised
respelling ("gif" -> "jif", "Gif" -> "Jif"). Keys and respellings go through normalize_text first,
so a key is written the way a reader sees it ("Dr. Who" matches the spoken "Doctor Who").

The lexicon is applied to each chunk after packing, so adding an entry changes the key of exactly
the chunks that hold the word; a chunk that grows past the engine's limit is split again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.errors import ManifestError
from tasks.text.chunks import pack_chunks
from tasks.text.normalize import normalize_text
from tasks.text.sentences import split_sentences

if TYPE_CHECKING:
    from tasks.manifest import Manifest

__all__ = ["LEXICON_FILE", "Lexicon", "book_lexicon", "load_lexicon_file"]

LEXICON_FILE = "lexicon.yaml"
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Lexicon:
    """Normalised key -> normalised respelling. Build with Lexicon.of(entries)."""

    entries: Mapping[str, str] = field(default_factory=dict)
    _pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, entries: Mapping[str, str], *, language: str = "en", where: str = "pronunciations",
           file: object = None) -> Lexicon:
        """A lexicon from raw entries (keys and respellings normalised here). A key that has no
        spoken form is a ManifestError naming `file` and `where`."""
        normal: dict[str, str] = {}
        for key, value in entries.items():
            spoken_key = normalize_text(key, language=language)
            if not spoken_key or not any(c.isalnum() for c in spoken_key):
                raise ManifestError(
                    f"the entry {key!r} has no words to match", file=file,
                    field=f"{where}.{key}" if where else str(key),
                    fix="use a word as the key",
                )
            normal[spoken_key] = normalize_text(value, language=language, recase=False)
        if not normal:
            return cls({})
        parts = []
        for key in sorted(normal, key=len, reverse=True):
            body = re.escape(key)
            if key == key.lower():
                body = f"(?i:{body})"
            head = r"(?<!\w)" if key[0].isalnum() or key[0] == "_" else ""
            tail = r"(?!\w)" if key[-1].isalnum() or key[-1] == "_" else ""
            parts.append(f"{head}{body}{tail}")
        return cls(normal, re.compile("|".join(parts)))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def _spoken(self, m: re.Match[str]) -> str:
        word = m.group(0)
        if word in self.entries:
            return self.entries[word]
        spoken = self.entries.get(word.lower(), word)
        if word[:1].isupper() and spoken[:1].islower():
            spoken = spoken[0].upper() + spoken[1:]
        return spoken

    def apply(self, text: str) -> str:
        """`text` (normalised) with every entry replaced by its respelling."""
        if self._pattern is None:
            return text
        return self._pattern.sub(self._spoken, text)

    def apply_to_chunks(self, chunks: list[str], max_chars: int, language: str = "en") -> list[str]:
        """Each chunk with the lexicon applied; one that grows past max_chars is split again."""
        if self._pattern is None:
            return chunks
        out: list[str] = []
        for chunk in chunks:
            spoken = self.apply(chunk)
            if len(spoken) <= max_chars:
                out.append(spoken)
            else:
                out.extend(pack_chunks(split_sentences(spoken, language), max_chars))
        return out


def load_lexicon_file(path: Path) -> dict[str, str]:
    """A lexicon.yaml: a mapping of words to respellings. Problems are ManifestErrors naming the file."""
    from tasks.manifest import parse_yaml

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read it: {exc.strerror or exc}", file=path, fix="check its permissions") from None
    data: Any = parse_yaml(raw, path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ManifestError(
            f"a lexicon is a mapping of words to respellings, not a {type(data).__name__}", file=path,
            fix="write one 'word: respelling' a line, e.g. 'Hermione: her-MY-oh-nee'",
        )
    if len(data) > MAX_ENTRIES:
        raise ManifestError(f"{len(data)} entries, over the limit of {MAX_ENTRIES}", file=path,
                            fix="keep the lexicon to the words this book or voice needs")
    entries: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str | int | float) or isinstance(key, bool) or not str(key).strip():
            raise ManifestError(f"the key {key!r} is not a word", file=path, fix="use a word as the key")
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            got = "nothing" if value is None else f"a {type(value).__name__}"
            raise ManifestError(
                f"the respelling is {got}", file=path, field=str(key),
                fix=f"give how to say it, e.g. '{key}: her-MY-oh-nee'",
            )
        if len(str(key)) > 100 or len(str(value)) > 200:
            raise ManifestError("the entry is too long (keys up to 100, respellings up to 200 characters)",
                                file=path, field=str(key)[:40], fix="shorten it")
        entries[str(key).strip()] = str(value).strip()
    return entries


def book_lexicon(manifest: Manifest, voices_dir: Path | None = None) -> Lexicon:
    """The lexicon for a book: the voice's lexicon.yaml, the book's lexicon.yaml beside its manifest,
    then the manifest's `pronunciations:` (later entries win)."""
    language = manifest.language
    merged: dict[str, str] = {}
    sources = [manifest.folder / LEXICON_FILE]
    if voices_dir is not None:
        sources.insert(0, Path(voices_dir) / manifest.voice / LEXICON_FILE)
    for path in sources:
        if path.is_file():
            merged.update(Lexicon.of(load_lexicon_file(path), language=language, where="", file=path).entries)
    if manifest.pronunciations:
        own = Lexicon.of(manifest.pronunciations, language=language, where="pronunciations", file=manifest.path)
        merged.update(own.entries)
    return Lexicon.of(merged, language=language) if merged else Lexicon()
