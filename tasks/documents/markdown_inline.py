"""Markdown parsing for speech: the markdown-it parser with its plugins, and inline tokens -> words.

    markdown_parser(front_matter=True)       -> MarkdownIt (CommonMark + front matter, footnotes,
                                                tables, strikethrough, $math$, Liquid/kramdown tags)
    inline_words(token, options, tally)      -> str (what is read of one inline token)
    html_block_text(html, options)           -> list of paragraphs, or None (not readable prose)

Read: text, link text (never the target), emphasis content, entities decoded. Not read: images
(their alt text with ReadOptions.image_alt), footnote reference marks (collected in the tally), inline
HTML tags, `$math$`, Liquid tags `{% ... %}` / `{{ ... }}` and kramdown attribute lists `{: ... }` (a
`{% include figure.html alt="..." caption="..." %}` is read as its alt text, or caption, with
image_alt). Inline code keeps its words but not its markup characters (`*italics*` -> italics,
`Resize()` -> Resize).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.front_matter import front_matter_plugin

from tasks.documents.model import ReadOptions

_LIQUID_CLOSE = {"{%": "%}", "{{": "}}", "{:": "}"}
_ATTR_RE = re.compile(r"""(\w[\w-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_CODE_MARKUP_RE = re.compile(r"[`*_\[\]<>{}()|~\\#^]+")
_PROMPT_RE = re.compile(r"^\s*[$>%]\s+")
# HTML that holds no prose to read: tables, code, scripts, media, forms
_UNREAD_TAGS = ("table", "pre", "code", "script", "style", "svg", "math", "iframe", "form", "object",
                "video", "audio", "canvas", "select", "textarea", "noscript")
_BLOCK_TAGS = ("p", "div", "li", "br", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "section",
               "figcaption", "dt", "dd", "tr", "hr", "aside", "details", "summary", "article", "header",
               "footer", "ul", "ol", "dl", "figure")


def _liquid_rule(state: StateInline, silent: bool) -> bool:
    """`{% tag %}`, `{{ value }}` and kramdown `{: .class}`: one 'liquid' token, never text."""
    opener = state.src[state.pos : state.pos + 2]
    close = _LIQUID_CLOSE.get(opener)
    if close is None:
        return False
    end = state.src.find(close, state.pos + 2)
    if end < 0:
        return False
    if not silent:
        token = state.push("liquid", "", 0)
        token.content = state.src[state.pos + 2 : end].strip()
        token.markup = opener
    state.pos = end + len(close)
    return True


@lru_cache(maxsize=2)
def markdown_parser(front_matter: bool = True) -> MarkdownIt:
    md = MarkdownIt("commonmark")
    if front_matter:
        md.use(front_matter_plugin)
    md.use(footnote_plugin).enable(["table", "strikethrough"])
    # $x^2$ and $$...$$; "$5 and $10" and "$ pwd $" stay text
    md.use(dollarmath_plugin, allow_space=False, allow_digits=False)
    md.inline.ruler.after("text", "liquid", _liquid_rule)
    return md


def liquid_figure_text(content: str) -> str:
    """The words of a Liquid figure include: its alt text, else its caption ("" for other tags)."""
    if not re.match(r"include\s+figure\b", content):
        return ""
    attrs = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
             for m in _ATTR_RE.finditer(content)}
    return " ".join((attrs.get("alt") or attrs.get("caption") or "").split())


def code_words(content: str) -> str:
    """Inline code as words: a shell prompt and markup characters dropped (`$ ls` -> ls,
    `<www.eff.org>` -> www.eff.org, `ad_data` -> ad data)."""
    return " ".join(_CODE_MARKUP_RE.sub(" ", _PROMPT_RE.sub("", content)).split())


@dataclass
class Tally:
    """What inline_words met but did not (all) read."""

    refs: list[int] = field(default_factory=list)  # footnote ids referred to, in order
    images: list[str] = field(default_factory=list)  # alt text of each image (and figure tag)
    tags: int = 0  # Liquid / kramdown tags
    math: int = 0  # inline $math$
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) left out: comments, markup


def inline_words(token: Token, options: ReadOptions, tally: Tally) -> str:
    """What is read of an inline token's children (one paragraph, heading or table cell)."""
    out: list[str] = []
    children = token.children or []
    for k, child in enumerate(children):
        kind = child.type
        if kind == "text":
            between_refs = 0 < k < len(children) - 1 and children[k - 1].type == children[k + 1].type == "footnote_ref"
            if not (between_refs and child.content.strip() in (",", ";", "")):  # "fairness[^4],[^5],"
                out.append(child.content)
        elif kind in ("softbreak", "hardbreak"):
            out.append(" ")
        elif kind == "code_inline":
            out.append(code_words(child.content))
        elif kind == "image":
            alt = inline_words(child, options, Tally())
            tally.images.append(alt)
            if options.image_alt and alt:
                out.append(f" {alt} ")
        elif kind == "footnote_ref":
            tally.refs.append(int(child.meta["id"]))
        elif kind == "html_inline":
            if child.content.startswith("<!--"):
                tally.dropped.append(("HTML comment", child.content[4:].removesuffix("-->")))
                out.append(" ")
            else:
                out.append(" " if re.match(r"<br\b", child.content, re.IGNORECASE) else "")
        elif kind == "math_inline":
            tally.math += 1
            tally.dropped.append(("formula", child.content))
        elif kind == "liquid":
            alt = liquid_figure_text(child.content)
            if alt:
                tally.images.append(alt)
                if options.image_alt:
                    out.append(f" {alt} ")
            else:
                tally.tags += 1
                tally.dropped.append(("template markup", child.content))
        # link_open/close, em/strong/s open/close: markup only
    text = " ".join("".join(out).split())
    attrs = _HEADING_ATTRS_RE.search(text)
    if attrs:  # "## Ports {#ports}": a heading's anchor, not its words
        tally.dropped.append(("heading anchor", attrs.group(0)))
        text = text[: attrs.start()].rstrip()
    return text


_HEADING_ATTRS_RE = re.compile(r"\s*\{[#.:][^{}\n]{0,200}\}\s*$")


def html_block_text(html: str, options: ReadOptions, dropped: list[tuple[str, str]]) -> list[str] | None:
    """The paragraphs of prose in a raw HTML block (`<div class="alert">text <a>link</a></div>`),
    [] for markup without text (`</div>`, comments), None for a table, code, script or media."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    if soup.find(_UNREAD_TAGS):
        return None
    from bs4 import Comment

    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        dropped.append(("HTML comment", str(comment)))
        comment.extract()
    for img in soup.find_all("img"):
        alt = " ".join(str(img.get("alt") or "").split())
        if alt and not options.image_alt:
            dropped.append(("image", alt))
        img.replace_with(f" {alt} " if options.image_alt and alt else " ")
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    text = soup.get_text()
    return [p for p in (" ".join(b.split()) for b in re.split(r"\n\s*\n", text)) if p]
