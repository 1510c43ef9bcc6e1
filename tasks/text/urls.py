"""URLs and e-mail addresses: a URL read as its domain ("rfc-editor dot org"), an e-mail address whole
("jane dot doe at example dot org"), or either dropped.

The manifest chooses with `reading.urls: domain | drop`. A URL is anything starting with a scheme
(`https://`, `ftp://`, `mailto:`), anything starting with `www.`, or a bare host name with a common
top-level domain ("perma.cc/ABC", "example.com").
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["UrlMode", "speak_urls"]

UrlMode = Literal["domain", "drop"]

# Top-level domains that make a bare host name ("perma.cc/X"), lower-case only; none of them is a
# common word, so "the end.It was" is no URL. With a scheme or "www." any ending is a URL.
_TLDS = "com|org|net|edu|gov|mil|info|io|uk|ca|au|de|fr|nl|eu|cc|jp|cn|ru|br|nz|ie|app|dev|xyz|biz"
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PATH = r"(?:[/?#][^\s<>\"'()\[\]]*)?"
_URL_RE = re.compile(
    rf"""
    <?(?:
        (?:[A-Za-z][A-Za-z0-9+.-]{{1,15}}://|mailto:)[^\s<>"'\[\]]*   # a scheme: anything up to a space
      | (?<![^\W\d_])www\.[^\s<>"'\[\]]*                                # www.host...
      | (?<![\w.+-])[\w.+-]{{1,64}}@{_HOST}(?:\.{_HOST})+               # an e-mail address
      | (?<![\w@.-]){_HOST}(?:\.{_HOST})*\.(?-i:{_TLDS})(?![\w-]){_PATH}   # a bare host name
    )>?
    """,
    re.VERBOSE | re.IGNORECASE,
)
_TRAILING = ".,;:!?)]}'\""  # punctuation after a URL belongs to the sentence, not the URL


def _domain(url: str) -> str:
    """The host of a URL or e-mail address, without "www." and port: "www.rfc-editor.org"."""
    url = url.strip("<>")
    if "@" in url and "://" not in url:
        host = url.rsplit("@", 1)[1]
    else:
        host = re.sub(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|mailto:)", "", url, flags=re.IGNORECASE)
        host = re.split(r"[/?#]", host, maxsplit=1)[0]
        host = host.rsplit("@", 1)[-1]  # user:password@host
    host = host.split(":", 1)[0].strip(".-")
    host = re.sub(r"^(?:www\.)+", "", host, flags=re.IGNORECASE)
    if host.lower() == "www":
        return ""
    labels = [label for label in host.split(".") if re.fullmatch(r"[A-Za-z0-9-]+", label)]
    return " dot ".join(label.lower() for label in labels)


_LOCAL_MARKS = {".": " dot ", "_": " underscore ", "-": " dash ", "+": " plus "}


def _email(address: str) -> str | None:
    """ "jane.doe@example.org" -> "jane dot doe at example dot org"; None when it is no e-mail address."""
    address = address.strip("<>")
    bare = address[7:] if address.lower().startswith("mailto:") else address
    if "@" not in bare or ":" in bare or "/" in bare:
        return None
    local = bare.rpartition("@")[0]
    spoken = re.sub(r"[._+-]", lambda m: _LOCAL_MARKS[m.group(0)], local)
    spoken = " ".join(w for w in spoken.split() if w)
    domain = _domain(address)
    return f"{spoken} at {domain}" if spoken and domain else domain


def speak_urls(text: str, mode: UrlMode = "domain") -> str:
    """Each URL in `text` replaced by its spoken domain, each e-mail address by its spoken form, or
    either removed ("drop")."""

    def _replace(m: re.Match[str]) -> str:
        url = m.group(0)
        opened, closed = url.count("("), url.count(")")
        end = len(url)
        while end and url[end - 1] in _TRAILING and not (url[end - 1] == ")" and opened >= closed):
            closed -= url[end - 1] == ")"
            end -= 1
        url, tail = url[:end], url[end:]
        if mode == "drop":
            return tail
        email = _email(url)
        return f"{email if email is not None else _domain(url)}{tail}"

    return _URL_RE.sub(_replace, text)
