"""Markup that slipped past a reader never reaches an engine: HTML tags and entities, Markdown links,
heading attributes ("{#ports}"), page numbers ("[Pg 29]"), footnote references ("[^1]", "[12]"), emphasis markers ("_italic_",
"*emphasis*"), and stray characters (* _ # | { } < > ` \\ ^ ~).

Square brackets are text unless the book's manifest turns prompts on: "[are]" is read "are", and a
ligature marker is its letters ("Ph[oe]be" -> "Phoebe"). With prompts on they survive only as
balanced "[...]" prompts.
"""

from __future__ import annotations

import html
import re

__all__ = ["MARKUP_STEPS", "remove_brackets", "remove_emphasis", "remove_markup", "sweep_markup"]

_ENTITY_RE = re.compile(r"&(?:#\d{1,7}|#x[0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_TAG_RE = re.compile(r"</?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?>")
_COMMENT_RE = re.compile(r"<!--.*?-->")
_ATTRIBUTES_RE = re.compile(r"\s*\{#[A-Za-z][\w:.-]*(?:\s+[.#]?[\w-]+(?:=[^\s{}]*)?)*\}")  # "## Ports {#ports}"
# A printed page number left in the text: "[Pg 29]", "[Pg vii]", "[p. 12]" (inside a word, "Balti[Pg 29]more").
_PAGE_RE = re.compile(r"\s*\[(?:Pg|Page|p)\.?\s?(?:\d{1,4}|[ivxlcdm]{1,7}|[IVXLCDM]{1,7})\]\s*")
_LIGATURE_RE = re.compile(r"(?<=[^\W\d_])\[(oe|ae|OE|AE|Oe|Ae)\]|\[(oe|ae|OE|AE|Oe|Ae)\](?=[^\W\d_])")
_TEMPLATE_RE = re.compile(r"\{%.*?%\}|\{\{.*?\}\}")  # Liquid / Jinja tags: "{% include toc.html %}"
_MD_LINK_RE = re.compile(r"!?\[([^\[\]]*)\]\(([^()\s]*)(?:\s+\"[^\"]*\")?\)")
_FOOTNOTE_REF_RE = re.compile(r"\[\^[^\[\]\s]*\]|\[\d{1,4}\]|\{\^?\d{1,4}\}")
_MARKUP_RUN_RE = re.compile(r"[*_#|{}<>`\\^~]+")
_EMPHASIS_RE = re.compile(r"[*_`|{}\\^~]+")


def _join_or_drop(m: re.Match[str]) -> str:
    """A markup run between two letters or digits becomes a space ("snake_case"); elsewhere it goes."""
    before = m.string[m.start() - 1] if m.start() > 0 else ""
    after = m.string[m.end()] if m.end() < len(m.string) else ""
    return " " if before.isalnum() and after.isalnum() else ""


def _entities(text: str) -> str:
    return _ENTITY_RE.sub(lambda m: html.unescape(m.group(0)), text) if "&" in text else text


def _comments(text: str) -> str:
    return _COMMENT_RE.sub(" ", text) if "<!--" in text else text


def _tags(text: str) -> str:
    return _TAG_RE.sub(" ", text) if "<" in text else text


def _templates(text: str) -> str:
    return _TEMPLATE_RE.sub(" ", text) if "{" in text else text


def _attributes(text: str) -> str:
    return _ATTRIBUTES_RE.sub("", text) if "{#" in text else text


def _links(text: str) -> str:
    return _MD_LINK_RE.sub(lambda m: m.group(1), text) if "](" in text else text


def _footnote_refs(text: str) -> str:
    return _FOOTNOTE_REF_RE.sub("", text) if "[" in text or "{" in text else text


def _page(m: re.Match[str]) -> str:
    before = m.string[m.start() - 1] if m.start() > 0 else ""
    after = m.string[m.end()] if m.end() < len(m.string) else ""
    if before.isalpha() and after.isalpha() and not m.group(0)[0].isspace() and not m.group(0)[-1].isspace():
        return ""  # "Balti[Pg 29]more": one word
    return " " if m.group(0)[0].isspace() or m.group(0)[-1].isspace() else ""


def _page_numbers(text: str) -> str:
    return _PAGE_RE.sub(_page, text) if "[" in text else text


def _ligatures(text: str) -> str:
    return _LIGATURE_RE.sub(lambda m: m.group(1) or m.group(2), text) if "[" in text else text


# remove_markup's steps in order, each with the reason the word ledger gives for what it changes or removes.
MARKUP_STEPS = (
    ("markup", _entities), ("HTML comment", _comments), ("markup", _tags), ("template tag", _templates),
    ("heading attribute", _attributes), ("link target", _links), ("page number", _page_numbers),
    ("footnote marker", _footnote_refs),
    ("ligature", _ligatures),
)


def remove_markup(text: str) -> str:
    """HTML entities decoded, tags, comments, template tags, heading attributes and footnote references
    removed, a Markdown link kept as its text ("[the docs](https://x.org)" -> "the docs"), a ligature
    marker as its letters ("Ph[oe]be" -> "Phoebe"). Emphasis markers are left for remove_emphasis (after
    URLs, which may hold "_"), and characters that matter for reading symbols (# < > before numbers or
    between words) for sweep_markup."""
    for _, step in MARKUP_STEPS:
        text = step(text)
    return text


def remove_brackets(text: str) -> str:
    """Square brackets as text: the words inside are read, the brackets go ("there [are] not" ->
    "there are not"); a space where a bracket stood between two words."""
    if "[" not in text and "]" not in text:
        return text
    return re.sub(r"[\[\]]+", _join_or_drop, text)


def remove_emphasis(text: str) -> str:
    """Emphasis and code markers and other pure markup (* _ ` | { } \\ ^ ~) removed, or a space
    where one joined two words ("snake_case" -> "snake case")."""
    return _EMPHASIS_RE.sub(_join_or_drop, text)


def _keep_prompt_brackets(text: str) -> str:
    """Square brackets only as balanced prompts with words in them ("[sad]", "[[very] sad]", as
    strip_prompts reads them); an unmatched bracket, or a pair with no letter inside, is removed."""
    if "[" not in text and "]" not in text:
        return text
    opened: list[int] = []
    pairs: list[tuple[int, int]] = []
    for i, c in enumerate(text):
        if c == "[":
            opened.append(i)
        elif c == "]" and opened:
            pairs.append((opened.pop(), i))
    keep = {i for a, b in pairs if any(ch.isalpha() for ch in text[a + 1:b]) for i in (a, b)}
    return "".join(c for i, c in enumerate(text) if c not in "[]" or i in keep)


def sweep_markup(text: str, *, prompts: bool = False) -> str:
    """The last guard: every markup character left ( * _ # | { } < > ` \\ ^ ~) removed, or a space
    where it joined two words; square brackets too, unless `prompts` keeps balanced ones."""
    text = _MARKUP_RUN_RE.sub(_join_or_drop, text)
    return _keep_prompt_brackets(text) if prompts else remove_brackets(text)
