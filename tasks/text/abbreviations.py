"""Abbreviations, one list per language (tasks/data/abbreviations-<language>.txt): spoken in full,
and known to the sentence splitter so that it never breaks after one.

The file format is described at the top of tasks/data/abbreviations-en.txt.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

__all__ = ["Abbreviation", "abbreviation_types", "abbreviations", "expand_abbreviations"]

_WHEN = frozenset({"", "before-name", "after-name", "before-number", "after-number", "may-end"})


@dataclass(frozen=True)
class Abbreviation:
    written: str  # "Mr.", as matched (case-sensitive, a whole word)
    spoken: str  # "Mister"; "" keeps the abbreviation as written
    when: str  # "" (always) or one of the contexts in _WHEN


def _data_file(language: str) -> str | None:
    base = language.lower().replace("_", "-").split("-")[0] or "en"
    path = resources.files("tasks").joinpath(f"data/abbreviations-{base}.txt")
    return path.read_text(encoding="utf-8") if path.is_file() else None


@functools.cache
def abbreviations(language: str = "en") -> tuple[Abbreviation, ...]:
    """The language's list, in file order (a language without a list has none)."""
    raw = _data_file(language)
    out: list[Abbreviation] = []
    for number, line in enumerate((raw or "").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split("|")]
        parts += [""] * (3 - len(parts))
        written, spoken, when = parts[:3]
        if when not in _WHEN or not written:  # a broken packaged file is our bug: fail loudly
            raise ValueError(f"abbreviations-{language}.txt line {number}: bad entry {line!r}")
        out.append(Abbreviation(written, spoken, when))
    return tuple(out)


@functools.cache
def abbreviation_types(language: str = "en") -> frozenset[str]:
    """What Punkt calls abbreviation types: lower-case, without the final dot ("e.g", "mr"); the last
    word of a multi-word entry ("et al." -> "al")."""
    types: set[str] = set()
    for entry in abbreviations(language):
        word = entry.written.lower().rstrip(".")
        types.add(word)
        types.add(word.split()[-1])
    return frozenset(types)


def _is_number(word: str) -> bool:
    return bool(word) and word[0].isdigit()


def _is_name(word: str) -> bool:
    """A capitalised word that is not an abbreviation itself ("Baker", not "Mr.")."""
    word = word.strip("\"'(")
    return bool(word) and word[0].isupper() and not word.endswith(".")


def _name_before(text: str, start: int, word: str) -> bool:
    """The word before is a name in mid-sentence, with nothing between ("in Baker St.", "4557 Melan Dr.";
    not "When Dr.", "Holmes, Dr.")."""
    if not re.fullmatch(r"[A-Z][\w'-]*", word):
        return False
    return not _sentence_start(text, text.rfind(word, 0, start))


@functools.cache
def _pattern(language: str) -> re.Pattern[str] | None:
    written = sorted({a.written for a in abbreviations(language)}, key=len, reverse=True)
    if not written:
        return None
    alternatives = "|".join(re.escape(w) for w in written)
    return re.compile(rf"(?<![\w.])(?:{alternatives})(?![\w.])")


_CONTEXT = 80  # characters looked at on each side of an abbreviation


def _words_around(text: str, start: int, end: int) -> tuple[str, str]:
    head, tail = text[max(0, start - _CONTEXT):start], text[end:end + _CONTEXT]
    before = head.rstrip().rsplit(" ", 1)[-1] if head.strip() else ""
    after = tail.lstrip().split(" ", 1)[0] if tail.strip() else ""
    if end < len(text) and not text[end].isspace():
        after = ""  # "etc.," : nothing follows as a word
    return before, after


def _sentence_start(text: str, start: int) -> bool:
    head = text[max(0, start - _CONTEXT):start].rstrip(" \"'(")
    return not head or head[-1] in ".!?"


def expand_abbreviations(text: str, language: str = "en") -> str:
    """Every listed abbreviation in `text` in its spoken form, where its context (WHEN) allows.

    "Mr. Holmes" -> "Mister Holmes", "No. 5" -> "number 5", "St. Paul" -> "Saint Paul",
    "Baker St." -> "Baker Street", "apples, etc. Then" -> "apples, et cetera. Then". An expansion
    that starts a sentence starts with a capital ("No. 5 is" -> "Number 5 is").
    """
    pattern = _pattern(language)
    if pattern is None:
        return text
    by_written: dict[str, list[Abbreviation]] = {}
    for entry in abbreviations(language):
        by_written.setdefault(entry.written, []).append(entry)

    def _expand(m: re.Match[str]) -> str:
        before, after = _words_around(m.string, m.start(), m.end())
        for entry in by_written[m.group(0)]:
            ok = {
                "": True, "may-end": True,
                "before-name": _is_name(after),
                "after-name": _name_before(m.string, m.start(), before),
                "before-number": _is_number(after),
                "after-number": _is_number(before),
            }[entry.when]
            if not ok:
                continue
            if not entry.spoken:
                return m.group(0)
            spoken = entry.spoken
            if spoken[0].islower() and m.group(0)[0].isupper() and _sentence_start(m.string, m.start()):
                spoken = spoken[0].upper() + spoken[1:]
            if entry.when in ("may-end", "after-name", "after-number"):  # "on Baker St. He left"
                rest = m.string[m.end():m.end() + _CONTEXT].lstrip(" \"')")
                if not rest or (rest[0].isupper() and m.string[m.end():m.end() + 1] in (" ", "")):
                    spoken += "."
            return spoken
        return m.group(0)

    return pattern.sub(_expand, text)
