"""The readers' word ledger: per chapter, the words read and the words skipped, by reason.

    ledger(document)        -> list of LedgerRow (chapters in reading order, then what lay outside them)
    totals(document)        -> (words kept, {reason: words skipped})
    ledger_lines(document)  -> printable lines ("  412 kept  Chapter I ... | 12 page number, 30 image")
    source_words(document)  -> Counter of every word a reader accounted for (kept or skipped), as
                               `words(text)` counts them: lower case, letters and digits only

A word is a run of letters and digits ("don't" is "don" and "t"), so punctuation and markup alone
are never words. A Skipped entry's reason in the ledger is its `kind` (else its `what`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from tasks.documents.model import Document, Skipped

_WORD_RE = re.compile(r"[^\W_]+")
OUTSIDE = "(outside the chapters)"


def words(text: str) -> list[str]:
    """The words of a text, lower-cased: runs of letters and digits."""
    return _WORD_RE.findall(text.casefold())


def reason(entry: Skipped) -> str:
    return entry.kind or entry.what


@dataclass
class LedgerRow:
    """One chapter (or, titled OUTSIDE, the front and back matter around the chapters)."""

    title: str
    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def ledger(document: Document) -> list[LedgerRow]:
    """Rows in reading order: each chapter with its kept words (title and paragraphs, counted as
    `str.split` counts) and the words skipped inside it; skipped parts that sat in no chapter, or in
    one that was left out, go to a last row titled OUTSIDE."""
    rows = [LedgerRow(c.title, len(c.title.split()) + sum(len(p.split()) for p in c.paragraphs))
            for c in document.chapters]
    by_title: dict[str, LedgerRow] = {}
    for row in rows:
        by_title.setdefault(row.title, row)  # two chapters of one title: what was skipped goes to the first
    outside = LedgerRow(OUTSIDE)
    for entry in document.skipped:
        if not entry.words:
            continue  # markup without words (a style sheet, an empty anchor): nothing to account for
        row = by_title.get(entry.chapter or "", outside)
        row.skipped[reason(entry)] = row.skipped.get(reason(entry), 0) + entry.words
    return [*rows, *([outside] if outside.skipped else [])]


def totals(document: Document) -> tuple[int, dict[str, int]]:
    kept = 0
    skipped: Counter[str] = Counter()
    for row in ledger(document):
        kept += row.kept
        skipped.update(row.skipped)
    return kept, dict(skipped)


def ledger_lines(document: Document) -> list[str]:
    """The ledger as text, one line per row and a total."""
    out = []
    for row in ledger(document):
        skipped = ", ".join(f"{n} {r}" for r, n in sorted(row.skipped.items(), key=lambda kv: -kv[1]))
        out.append(f"{row.kept:7d} kept  {row.title}" + (f"  | skipped: {skipped}" if skipped else ""))
    kept, skipped_total = totals(document)
    out.append(f"{kept:7d} kept in all; skipped {sum(skipped_total.values())}: " + (
        ", ".join(f"{n} {r}" for r, n in sorted(skipped_total.items(), key=lambda kv: -kv[1])) or "nothing"))
    return out


def source_words(document: Document) -> Counter[str]:
    """Every word the document accounts for: chapter titles, paragraphs and skipped text."""
    found: Counter[str] = Counter()
    for chapter in document.chapters:
        found.update(words(chapter.title))
        for paragraph in chapter.paragraphs:
            found.update(words(paragraph))
    for entry in document.skipped:
        found.update(words(entry.text))
    return found
