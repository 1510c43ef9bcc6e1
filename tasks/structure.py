"""The spoken structure of an audiobook, as listeners and stores (ACX) expect it. Pure functions.

    opening_credits(manifest) / closing_credits(manifest) -> the lines the credits chapters speak
    spoken_title(title, part=None)                         -> a chapter's title as its file opens with it
    without_heading(title, paragraphs)                     -> the paragraphs, less a heading that repeats the title
    part_title(title, part)                                -> "Chapter Three (Part 2)"
    split_into_parts(costs_s, limit_s)                     -> where a long chapter is cut into parts

ACX asks for opening credits (title, author, narrator) as the first file, closing credits as the last,
and at most 120 minutes per file. A chapter is cut only between paragraphs, into parts of about equal
length, so no sentence and no paragraph is split across two files.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Sequence
from typing import Literal

from num2words import num2words

from tasks.manifest import Manifest
from tasks.text import normalize_heading

OPENING_CREDITS = "Opening Credits"
END_CREDITS = "End Credits"
_END_PUNCTUATION = ".!?\u2026\"')"


def _sentence(text: str) -> str:
    """`text` as a sentence: stripped, with a full stop unless it already ends like one."""
    text = " ".join(text.split())
    return text if not text or text.endswith(tuple(_END_PUNCTUATION)) else text + "."


def _inline(text: str) -> str:
    """`text` inside a sentence: stripped, without a full stop at its end ("Hello." -> "Hello")."""
    return " ".join(text.split()).rstrip(".")


def reader_name(manifest: Manifest) -> tuple[str, str]:
    """("narrated by", narrator) when the manifest names one, else ("read by", the voice's name).

    A voice's name is a folder or package name ("joe", "en_us-amy"): spoken as words, capitalised.
    """
    if manifest.narrator:
        return "narrated by", _inline(manifest.narrator)
    words = [w for w in re.split(r"[-_\s]+", manifest.voice) if w]
    return "read by", " ".join(w.capitalize() if w.islower() else w for w in words) or manifest.voice


def opening_credits(manifest: Manifest) -> tuple[str, ...]:
    """The opening credits, one paragraph a line: the title, "Written by ...", "Narrated by ..."."""
    verb, reader = reader_name(manifest)
    return (
        _sentence(manifest.title),
        _sentence(f"Written by {_inline(manifest.author)}"),
        _sentence(f"{verb.capitalize()} {reader}"),
    )


def closing_credits(manifest: Manifest) -> tuple[str, ...]:
    """The closing credits: "The End.", then what the listener heard, written and read by whom."""
    verb, reader = reader_name(manifest)
    title = _inline(manifest.title)
    return (
        "The End.",
        _sentence(f"You have been listening to {title}, written by {_inline(manifest.author)}, {verb} {reader}"),
    )


def part_title(title: str, part: int) -> str:
    """The title of one part of a chapter split in parts (1-based): "Chapter Three (Part 2)"."""
    return f"{title} (Part {part})"


def spoken_title(title: str, part: int | None = None, *, urls: Literal["domain", "drop"] = "domain",
                 language: str = "en") -> str:
    """A chapter's title as spoken at the start of its file (`tasks.text.normalize_heading`), with
    "Part Two." after it for a part; "" when the title has nothing to speak."""
    heading = _sentence(normalize_heading(title, urls=urls, language=language))
    if part is None or not heading:
        return heading
    return f"{heading} Part {num2words(part).capitalize()}."


def _letters(text: str) -> str:
    """Only the letters and digits of `text`, case-folded: "CHAPTER IV." and "Chapter IV" agree."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


_MIN_HEADING_END = 8  # letters: shorter text at a title's end may be the story's first words


def without_heading(title: str, paragraphs: tuple[str, ...]) -> tuple[str, ...]:
    """`paragraphs` less a heading at their start that repeats `title` (EPUB and HTML chapters carry
    their heading in the text; once the title is spoken it would be heard twice). The heading is the
    first paragraph, or the first two (a heading set on two lines, "Chapter IV." / "THE STORM"), whose
    letters and digits are the title's, or the end of it when they are at least _MIN_HEADING_END of
    them (a title with its part before it, "Part One: Chapter IV: The Storm"); anything else is left
    alone. A chapter that is its heading alone (a part's title page) gives ()."""
    key = _letters(title)
    if not key:
        return paragraphs
    for n in (2, 1):
        head = _letters(" ".join(paragraphs[:n])) if len(paragraphs) >= n else ""
        if head and (head == key or (len(head) >= _MIN_HEADING_END and key.endswith(head))):
            return paragraphs[n:]
    return paragraphs


def split_into_parts(costs_s: Sequence[float], limit_s: float) -> list[int]:
    """Where to cut a chapter whose paragraphs take `costs_s` seconds each into parts of at most
    about `limit_s` seconds: the indexes of the paragraphs that start a new part ([] for no cut).

    The number of parts is the fewest that fit the limit (ceil(total / limit)); each cut goes to the
    paragraph boundary nearest an equal share, so the parts come out about equally long. A part
    can pass the limit only by less than one paragraph (a single paragraph is never cut).
    """
    if limit_s <= 0:
        raise ValueError(f"limit_s must be positive, got {limit_s}")
    total = sum(costs_s)
    if total <= limit_s or len(costs_s) < 2:
        return []
    parts = math.ceil(total / limit_s)
    ends = list(itertools.accumulate(costs_s))[:-1]  # ends[i]: time at the boundary after paragraph i
    cuts: list[int] = []
    for k in range(1, parts):
        share = total * k / parts
        i = bisect.bisect_left(ends, share)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(ends)]
        best = min(candidates, key=lambda j: abs(ends[j] - share))
        start = best + 1  # the paragraph after the boundary opens the next part
        if not cuts or start > cuts[-1]:
            cuts.append(start)
    return cuts
