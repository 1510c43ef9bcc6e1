"""Roman numerals where they are numbers: after a structural word ("Chapter IV" -> "Chapter Four"),
in regnal names ("Henry VIII" -> "Henry the Eighth", "King George III", "Pope John Paul I"), a
paragraph that is nothing but a numeral ("II." -> "Two.") and one that opens with a numbered
sub-heading ("II. Trade" -> "Two. Trade").

Ordinary words are left alone: a numeral must be a valid one (strict form, so "DID", "CIVIL" are
not), in upper case, within a plausible range ("MIX" = 1009 is no chapter or king), and the pronoun
"I" (or a lone "V", "X": "Malcolm X") counts only after a structural word or a royal title.
"""

from __future__ import annotations

import re

from num2words import num2words

__all__ = ["STRUCTURE_WORDS", "roman_value", "speak_roman_numerals"]

_ROMAN_RE = re.compile(r"M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})")
_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}

# Words after which a numeral is a plain count ("Chapter Four", "World War Two", "Type Two").
STRUCTURE_WORDS = (
    "Chapter", "Part", "Book", "Stave", "Volume", "Vol.", "Letter", "Act", "Scene", "Section", "Canto",
    "Article", "Appendix", "Episode", "Season", "Psalm", "Plate", "Figure", "Table", "Lesson", "Lecture",
    "Phase", "Level", "Round", "Class", "Type", "War", "Stage", "Fit", "Epistle", "Sermon", "Essay",
)
_ROYAL_TITLES = (
    "King", "Queen", "Pope", "Emperor", "Empress", "Tsar", "Czar", "Tsarina", "Kaiser", "Sultan", "Prince",
    "Princess", "Duke", "Duchess", "Pharaoh", "Shah", "Saint",
)
MAX_STRUCTURE = 399  # "Chapter CD" is no chapter
MAX_REGNAL = 40

_NUMERAL = r"[IVXLCDM]+"
_STRUCTURE_RE = re.compile(
    rf"\b((?:{'|'.join(re.escape(w) for w in STRUCTURE_WORDS)}|"
    rf"{'|'.join(w.upper() for w in STRUCTURE_WORDS if w[-1] != '.')}))(\s+)({_NUMERAL})(?![\w'])"
)
_ROYAL_RE = re.compile(rf"\b((?:{'|'.join(_ROYAL_TITLES)})(?:\s+[A-Z][a-z]+)+)\s+({_NUMERAL})(?![\w'-])")
# A capitalised name and a numeral of two or more letters: "Henry VIII", "Louis XIV".
_NAMED_RE = re.compile(r"\b([A-Z][a-z]{2,})\s+([IVXLC]{2,})(?![\w'-])")
# Capitalised words that are no names ("The XX", "When II"): a numeral after them stays as written.
_NOT_NAMES = frozenset(
    "The And But For Nor Yet With From Into Onto Upon Over Under After Before Then When Where While Who "
    "What Which Why How This That These Those Their There They She His Her Its Our Your Was Were Are Has "
    "Had Have Not All Any Some Each Every Only Also Even Just Here Now Yes".split()
)
_ALONE_RE = re.compile(rf"^({_NUMERAL})([.:])$")
# A paragraph that opens with a numbered sub-heading: "II. Trade", "IV. The Storm" (not initials, "C. D.").
_HEADING_RE = re.compile(rf"^({_NUMERAL})\. (?=[A-Z])(?![A-Z]\.)")


def roman_value(numeral: str) -> int | None:
    """The value of a valid, upper-case roman numeral ("XIV" -> 14), else None."""
    if not numeral or not _ROMAN_RE.fullmatch(numeral):
        return None
    total = 0
    for i, ch in enumerate(numeral):
        value = _VALUES[ch]
        nxt = _VALUES[numeral[i + 1]] if i + 1 < len(numeral) else 0
        total += -value if value < nxt else value
    return total


def _title(words: str) -> str:
    return "-".join(part.capitalize() for part in words.split("-"))


def cardinal_title(n: int) -> str:
    """14 -> "Fourteen", 21 -> "Twenty-One" (no "and", no commas)."""
    return " ".join(_title(w) for w in num2words(n, lang="en").replace(",", "").split())


def _ordinal_title(n: int) -> str:
    return " ".join(_title(w) for w in num2words(n, lang="en", to="ordinal").replace(",", "").split())


def _structure(m: re.Match[str]) -> str:
    value = roman_value(m.group(3))
    if value is None or value > MAX_STRUCTURE:
        return m.group(0)
    words = cardinal_title(value)
    return f"{m.group(1)}{m.group(2)}{words.upper() if m.group(1).isupper() and len(m.group(1)) > 1 else words}"


def _regnal(m: re.Match[str]) -> str:
    value = roman_value(m.group(2))
    if value is None or value > MAX_REGNAL:
        return m.group(0)
    return f"{m.group(1)} the {_ordinal_title(value)}"


def _named(m: re.Match[str]) -> str:
    if m.group(1) in STRUCTURE_WORDS or m.group(1) in _NOT_NAMES:
        return m.group(0)
    if re.match(r"[.:] +[A-Z]", m.string[m.end():m.end() + 3]):
        return m.group(0)  # "Bohemia II. The Red-Headed League": a list of numbered titles, not a king
    return _regnal(m)


def speak_roman_numerals(text: str) -> str:
    """Roman numerals in `text` as words where they are numbers (see the module docstring)."""
    alone = _ALONE_RE.match(text)
    if alone:
        value = roman_value(alone.group(1))
        if value is not None and value <= MAX_STRUCTURE:
            return f"{cardinal_title(value)}."
        return text
    heading = _HEADING_RE.match(text)
    if heading:
        numeral = heading.group(1)
        value = roman_value(numeral)
        if value is not None and value <= MAX_STRUCTURE and (len(numeral) > 1 or numeral in "IVX"):
            text = f"{cardinal_title(value)}. {text[heading.end():]}"
    for _ in range(64):  # until nothing changes: a replaced numeral can expose the next ("Louis II II")
        before = text
        text = _STRUCTURE_RE.sub(_structure, text)
        text = _ROYAL_RE.sub(_regnal, text)
        text = _NAMED_RE.sub(_named, text)
        if text == before:
            break
    return text
