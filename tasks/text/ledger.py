"""The word ledger of the text stage: every word given to it is in the script, as written ("kept") or
rewritten ("changed": a number in words, an abbreviation spelt out), or removed with a reason.

A WordTracker follows one paragraph through the steps of the spoken form. Each step hands it the
new text; the tracker lines up the words before and after (difflib on the words, so a step needs no
bookkeeping of its own) and carries, for every word, the input words it came from. At the end an
input word is "kept" when it reaches the script unchanged, "changed" when something made from it
does (the reason of the last step that rewrote it), and "removed" when nothing made from it does
(the reason of the step that removed its last piece).

A word is a run without spaces that holds a letter or digit; brackets next to punctuation or a space
also separate words (so "type.[1]" is "type." and "1", and the link target of "[a](b)" is a word of
its own), as do brackets around a space ("sign[Pg 253]"), dashes ("word\u2014word", "word--word") and a
digit after a letter and a full stop ("patterns.1", a footnote mark).
Punctuation around a word is not part of it: "[are]" and "are" are the same word.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Removal", "TextLedger", "WordTracker", "ledger_words"]

_SPLIT_RE = re.compile(
    r"\s+|[\u2012-\u2015]+|-{2,}"  # spaces and dashes
    r"|(?<![^\W_])[\[\](){}<>]|[\[\](){}<>](?![^\W_])"  # a bracket with a space or punctuation beside it
    r"|(?<=[^\W\d_][.,;:!?\"'])(?=\d)"  # "patterns.1": a footnote mark after a word's punctuation
)
_EDGE_RE = re.compile(r"^[\W_]+|[\W_]+$")
_SPACED_BRACKETS_RE = re.compile(r"\[([^\[\]]*\s[^\[\]]*)\]")  # "sign[Pg 253] of": "[Pg 253]" is words of its own


def ledger_words(text: str) -> list[str]:
    """The words of `text` as the ledger counts them (see the module docstring), as written."""
    if "[" in text:
        text = _SPACED_BRACKETS_RE.sub(r" [\1] ", text)
    return [t for t in _SPLIT_RE.split(text) if t and any(c.isalnum() for c in t)]


def _key(word: str) -> str:
    return _EDGE_RE.sub("", word) or word


@dataclass(frozen=True)
class Removal:
    """Words of the input that are not in the script: why, and which (as written, joined by spaces)."""

    reason: str
    text: str
    words: int


@dataclass(frozen=True)
class TextLedger:
    """One paragraph's, chapter's or book's account: kept + sum(changed) + removed words == input words."""

    kept: int = 0
    changed: tuple[tuple[str, int], ...] = ()  # (reason, words), one entry per reason
    removed: tuple[Removal, ...] = ()

    @property
    def words(self) -> int:
        """The words given to the text stage."""
        return self.kept + self.changed_words + self.removed_words

    @property
    def changed_words(self) -> int:
        return sum(n for _, n in self.changed)

    @property
    def removed_words(self) -> int:
        return sum(r.words for r in self.removed)

    def removed_by_reason(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for r in self.removed:
            out[r.reason] += r.words
        return dict(out)

    def __add__(self, other: TextLedger) -> TextLedger:
        changed = Counter(dict(self.changed))
        changed.update(dict(other.changed))
        return TextLedger(self.kept + other.kept, tuple(sorted(changed.items())), self.removed + other.removed)

    @staticmethod
    def total(ledgers: Iterable[TextLedger]) -> TextLedger:
        kept = 0
        changed: Counter[str] = Counter()
        removed: list[Removal] = []
        for ledger in ledgers:
            kept += ledger.kept
            changed.update(dict(ledger.changed))
            removed.extend(ledger.removed)
        return TextLedger(kept, tuple(sorted(changed.items())), tuple(removed))

    def to_dict(self, *, examples: int = 5) -> dict[str, Any]:
        """For the render report: counts, and the first few removed passages of each reason."""
        samples: dict[str, list[str]] = {}
        for r in self.removed:
            if len(samples.setdefault(r.reason, [])) < examples:
                samples[r.reason].append(r.text[:120])
        return {
            "words": self.words, "kept": self.kept, "changed": dict(self.changed),
            "removed": self.removed_by_reason(), "removed_examples": samples,
        }


@dataclass
class _Word:
    text: str
    origins: tuple[int, ...]  # indexes of the input words it was made from


@dataclass
class WordTracker:
    """Follows the words of one text through the steps that rewrite it (see the module docstring)."""

    text: str
    _input: list[str] = field(init=False)
    _words: list[_Word] = field(init=False)
    _changed: dict[int, str] = field(init=False, default_factory=dict)
    _removed: dict[int, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._input = ledger_words(self.text)
        self._words = [_Word(w, (i,)) for i, w in enumerate(self._input)]

    def step(self, reason: str, new_text: str) -> str:
        """The text after a step that gave `new_text` for `reason`; returns `new_text`."""
        if new_text == self.text:
            return new_text
        self.text = new_text
        new = ledger_words(new_text)
        old_keys = [_key(w.text) for w in self._words]
        new_keys = [_key(w) for w in new]
        if old_keys == new_keys:
            self._words = [_Word(t, w.origins) for t, w in zip(new, self._words, strict=True)]
            return new_text
        out: list[_Word] = []
        matcher = difflib.SequenceMatcher(None, old_keys, new_keys, autojunk=False)
        for op, a1, a2, b1, b2 in matcher.get_opcodes():
            if op == "equal":
                out.extend(_Word(new[b1 + k], self._words[a1 + k].origins) for k in range(a2 - a1))
                continue
            origins = tuple(o for w in self._words[a1:a2] for o in w.origins)
            if op == "delete":
                for o in origins:
                    self._removed[o] = reason
            elif op == "replace":
                for o in origins:
                    self._changed[o] = reason
                out.extend(_Word(w, origins) for w in new[b1:b2])
            else:  # "insert": words the step added ("the" of "the third of May")
                out.extend(_Word(w, ()) for w in new[b1:b2])
        self._words = out
        return new_text

    def statuses(self) -> list[tuple[str, str, str]]:
        """(input word, "kept" | "changed" | "removed", reason) for every input word, in order."""
        alive: dict[int, bool] = {}  # origin -> reaches the script as written
        for w in self._words:
            for o in w.origins:
                same = len(w.origins) == 1 and _key(w.text) == _key(self._input[o]) and o not in self._changed
                alive[o] = alive.get(o, False) or same
        out = []
        for i, word in enumerate(self._input):
            if i not in alive:
                out.append((word, "removed", self._removed.get(i, "")))
            elif alive[i]:
                out.append((word, "kept", ""))
            else:
                out.append((word, "changed", self._changed.get(i, "spoken form")))
        return out

    def ledger(self) -> TextLedger:
        kept = 0
        changed: Counter[str] = Counter()
        removed: list[Removal] = []
        run: list[str] = []
        run_reason = ""
        for word, status, reason in [*self.statuses(), ("", "end", "")]:
            if run and (status != "removed" or reason != run_reason):
                removed.append(Removal(run_reason, " ".join(run), len(run)))
                run = []
            if status == "kept":
                kept += 1
            elif status == "changed":
                changed[reason] += 1
            elif status == "removed":
                run_reason = reason
                run.append(word)
        return TextLedger(kept, tuple(sorted(changed.items())), tuple(removed))
