"""What a paragraph of a plain text is, before it is read: part of a Contents list, the book's title
block, a table, a chapter's title line under its number, an index. Predicates over the paragraphs
(blocks of lines) of tasks.documents.plain; they decide what is skipped, never how text is read."""

from __future__ import annotations

import re

from tasks.documents.headings import Heading, classify_heading, heading_key

CONTENTS_RE = re.compile(
    r"^(?:(?:table[ \t]+of[ \t]+)?contents|list[ \t]+of[ \t]+(?:illustrations|plates|figures|maps)|illustrations)\.?$",
    re.IGNORECASE,
)
PUBLISHER_RE = re.compile(r"^(?:copyright|published|printed|all rights reserved|first published)\b", re.IGNORECASE)
SMALL_WORDS = frozenset("a an the and but or nor for of in on at to by with from as into vs".split())
MAX_CONTENTS_ENTRY = 100


def heading_line(line: str) -> bool:
    """A line that is a numbered chapter or part heading by itself ("CHAPTER I", "Chapter 12: The Storm")."""
    if not re.match(r"^(?:CHAPTER|Chapter|BOOK|Book|PART|Part|STAVE|Stave)[ \t]", line):
        return False
    heading = classify_heading([line], alone=True)
    return heading is not None and heading.kind in ("chapter", "part") and (heading.numbered or heading.kind == "part")


def entry_like(line: str) -> bool:
    """A line that could be a Contents entry: short, and a heading, numbered, paged or Title Cased."""
    if len(line) > MAX_CONTENTS_ENTRY:
        return False
    if classify_heading([line], alone=True) or re.match(r"^(?:[ivxlcdm]+|\d+)[.):]\s+\S", line, re.I) or re.match(
        r"^(?:[IVXLCDM]+|\d+)\s+[A-Z]{2}", line
    ):  # "I. Title", "12 THE TITLE"; not "I walked"
        return True
    if re.search(r"\d+$", line) or not any(c.islower() for c in line):
        return True
    words = [w for w in re.findall(r"[^\W\d_][\w'\u2019-]*", line) if w.lower() not in SMALL_WORDS]
    return bool(words) and sum(w[0].isupper() for w in words) >= 0.6 * len(words)


def short(block: list[str]) -> bool:
    return len(block) <= 4 and all(len(line) <= 70 for line in block) and classify_heading(block) is None


def caps(block: list[str]) -> bool:
    """A title-page block: short lines without lower-case letters (honours, publisher, printer), or
    a copyright / "Published" line, or an italic note (`_WITH ELEVEN PLATES_`)."""
    text = " ".join(block)
    if len(block) > 8 or any(len(line) > 70 for line in block) or classify_heading(block) is not None or any(
        CONTENTS_RE.match(line) or heading_line(line) for line in block
    ):
        return False
    return (not any(c.islower() for c in text) or bool(PUBLISHER_RE.match(text))
            or (text.startswith("_") and text.endswith("_")))


def by_line(line: str) -> bool:
    return line.lower() == "by" or line.lower().startswith("by ")


def title_block(blocks: list[list[str]], i: int, title_keys: frozenset[str], loose: bool) -> int:
    """If blocks[i] starts the book's title block ("Title" / "[Subtitle]" / "by Author" / honours /
    publisher, place and year / printer), how many blocks it spans; else 0. It starts with the
    known title, or (`loose`, in a PG text) it is a run of short paragraphs with a "by ..." line."""
    titled = bool(title_keys) and heading_key(blocks[i][0]) in title_keys
    if not titled and not (loose and short(blocks[i])):
        return 0
    for j in range(i, min(i + 5, len(blocks))):
        block = blocks[j]
        if j > i and not (short(block) or caps(block)):
            break
        if any(by_line(line) for line in block[1 if j == i else 0 :]):
            end = j + 1
            while end < len(blocks) and end < j + 8 and caps(blocks[end]):
                end += 1  # honours, "_WITH ELEVEN PLATES_", publisher and year, printer
            return end - i
    return 1 if titled else 0


def is_table(blocks: list[list[str]], i: int) -> bool:
    """A text table: most lines of the paragraph are cells between "|" marks or "---+---" rules."""
    lines = blocks[i]
    cells = sum(line.count("|") >= 2 or bool(re.match(r"^[-+=|: ]{5,}$", line)) for line in lines)
    return cells >= 2 and cells >= 0.6 * len(lines)


def title_line(block: list[str], heading: Heading | None, *, second: bool = False) -> bool:
    """A chapter's title standing alone under its number: one line in capitals (or a named heading
    such as "INTRODUCTION")."""
    if len(block) != 1 or len(block[0]) > (60 if second else 80):
        return False
    line = block[0]
    if heading is not None and (heading.kind != "chapter" or heading.numbered):
        return False
    if CONTENTS_RE.match(line) or not any(c.isalpha() for c in line):
        return False
    if not any(c.islower() for c in line):
        return True
    # "The Man Who Came Back": a title in title case, a few words with no sentence punctuation inside
    found = [w for w in re.findall(r"[^\W\d_][\w'\u2019-]*", line) if w.lower() not in SMALL_WORDS]
    return (2 <= len(line.split()) <= 12 and line[-1] not in "!?,;:\"'\u201d\u2019" and not re.search(r"[.!?;] ", line)
            and bool(found) and sum(w[0].isupper() for w in found) >= 0.75 * len(found) and found[0][0].isupper())


def index_follows(blocks: list[list[str]], i: int) -> bool:
    """After an "INDEX" line: entries with page numbers, most of them."""
    lines = [line for b in blocks[i + 1 : i + 30] for line in b]
    return len(lines) >= 5 and sum(bool(re.search(r"\d", line)) for line in lines) >= 0.5 * len(lines)


def contents_end(blocks: list[list[str]], headings: list[Heading | None], indented: list[bool], i: int,
                  title_keys: frozenset[str] = frozenset()) -> int:
    """The index of the first paragraph after the Contents list that starts at blocks[i].

    The list ends at a paragraph that is neither made of entry-like lines nor indented (entries'
    descriptions are indented, prose is not), at the book's title repeated, or at a heading that
    repeats an entry ("I. A SCANDAL IN BOHEMIA" after "I. A Scandal in Bohemia"), or at a heading
    followed by prose."""
    keys: set[str] = set()
    for line in blocks[i][1:]:
        keys.add(heading_key(line))
    j = i + 1
    while j < len(blocks):
        block, heading = blocks[j], headings[j]
        if heading is not None and keys:
            whole, first = heading_key(" ".join(block)), heading_key(block[0])
            if whole in keys or first in keys or any(k.startswith(first + " ") for k in keys):
                return j
            nxt = blocks[j + 1] if j + 1 < len(blocks) else None
            if nxt is None or not (all(entry_like(line) for line in nxt) or indented[j + 1]):
                return j
        if not indented[j] and len(block) == 1 and heading_key(block[0]) in title_keys:
            return j
        if not (all(entry_like(line) for line in block) or indented[j]):
            return j
        keys.update(heading_key(line) for line in block)
        j += 1
    return j
