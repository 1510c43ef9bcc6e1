"""Safe XML and zip handling for documents that come from strangers (EPUB, DOCX, XHTML).

XML is parsed by lxml with no network, no DTD loading and no entity resolution; a package file that
declares its own entities (<!ENTITY ...>, the way "billion laughs" and external-entity attacks begin)
is refused before parsing. Zip archives are checked for their member count and unpacked size before
anything is read. An (X)HTML page's bytes -> its encoding (byte-order mark, declared, detected:
page_encoding) and its element tree (parse_document: as XML when well-formed, else lxml's HTML parser,
with entities HTML does not define dropped).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from lxml import etree

from tasks.errors import SourceError

MAX_ZIP_MEMBERS = 20_000
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024  # 1 GiB unpacked: far above any real book, well below a zip bomb
MAX_MEMBER_BYTES = 256 * 1024 * 1024  # one member read into memory

_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_INTERNAL_SUBSET = re.compile(rb"<!DOCTYPE[^\[>]*\[.*?\]\s*>", re.DOTALL | re.IGNORECASE)


def _parser(*, recover: bool = False) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        recover=recover,
    )


def declares_entities(data: bytes) -> bool:
    """True when the XML declares entities of its own (an internal DTD subset with <!ENTITY>)."""
    return _ENTITY_DECL.search(data) is not None


def strip_internal_subset(data: bytes) -> bytes:
    """Remove a DOCTYPE's internal subset ([...]) and so any entities declared in it."""
    return _INTERNAL_SUBSET.sub(b"", data, count=1)


def parse_xml(data: bytes, *, path: Path, member: str) -> etree._Element:
    """Parse a package file (container.xml, OPF, NCX, nav): entity declarations are refused, and
    malformed XML is a SourceError naming the archive and the member."""
    if declares_entities(data):
        raise SourceError(
            f"has {member} declaring XML entities (<!ENTITY>), which a book never needs; it was refused for safety",
            file=path,
            fix="re-export the book from its source (e.g. with Calibre) without the DOCTYPE entities",
        )
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise SourceError(
            f"has a malformed {member} ({exc})",
            file=path,
            fix="re-export the book as EPUB (e.g. with Calibre), or convert it to .txt or .md",
        ) from None
    if root is None:
        raise SourceError(f"has an empty {member}", file=path, fix="re-export the book as EPUB")
    return root


def parse_content_xml(data: bytes) -> etree._Element | None:
    """Parse an XHTML content document strictly as XML (entities never expanded); None when it is not
    well-formed (the caller then falls back to the HTML parser)."""
    try:
        root = etree.fromstring(strip_internal_subset(data), _parser())
    except (etree.XMLSyntaxError, ValueError):
        return None
    return root


def open_zip(path: Path, *, kind: str, fix: str) -> zipfile.ZipFile:
    """Open a zip archive after checking it is one, and that its members and unpacked size are sane."""
    if not zipfile.is_zipfile(path):
        raise SourceError(f"is not {kind} (it is not a zip archive)", file=path, fix=fix)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise SourceError(f"is not {kind} (a damaged zip archive: {exc})", file=path, fix=fix) from exc
    members = archive.infolist()
    total = sum(info.file_size for info in members)
    if len(members) > MAX_ZIP_MEMBERS or total > MAX_UNPACKED_BYTES:
        archive.close()
        raise SourceError(
            f"unpacks to {len(members)} files and {total / 2**20:.0f} MiB, more than any book needs "
            f"(limits: {MAX_ZIP_MEMBERS} files, {MAX_UNPACKED_BYTES / 2**20:.0f} MiB); it was refused",
            file=path,
            fix=fix,
        )
    return archive


def read_member(archive: zipfile.ZipFile, name: str) -> bytes:
    """A member's bytes (KeyError when it is missing); members over MAX_MEMBER_BYTES are refused."""
    info = archive.getinfo(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise ValueError(f"{name} is {info.file_size / 2**20:.0f} MiB unpacked")
    return archive.read(info)


_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9_.:-]{1,40})""")


def page_encoding(data: bytes) -> tuple[str, str]:
    """(codec, what to report) for a page: a byte-order mark, else its declared encoding (<meta
    charset>, <meta http-equiv="Content-Type" content="...; charset=...">, the XML declaration; a
    declared ISO-8859-1 with bytes in 0x80-0x9F is Windows-1252, as browsers read it), else UTF-8
    when it decodes as UTF-8, else charset-normalizer's guess (Windows-1252 when it has none)."""
    from tasks.documents.files import codec, detect

    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8", "utf-8 (with byte-order mark)"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16", "utf-16 (with byte-order mark)"
    for pattern in (_META_CHARSET, _XML_ENCODING):
        m = pattern.search(data[:4096])
        if m:
            label = m.group(1).decode("ascii", "replace").lower()
            name = codec(label)
            if name is None:
                continue
            if name in ("latin_1", "iso8859-1") and re.search(rb"[\x80-\x9f]", data):
                return "cp1252", "windows-1252 (declared iso-8859-1)"
            return label, f"{label} (declared)"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        guess = detect(data) or "cp1252"
        return guess, f"{ {'cp1252': 'windows-1252', 'latin_1': 'iso-8859-1'}.get(guess, guess)} (detected)"
    return "utf-8", "utf-8"


def sniff_encoding(data: bytes) -> str:
    """The codec to decode a page with (see page_encoding)."""
    return page_encoding(data)[0]


def parse_document(data: bytes, *, xml_first: bool, encoding: str | None = None) -> etree._Element:
    """XHTML as XML (never expanding entities); HTML, or XHTML that is not well-formed, with lxml's
    forgiving HTML parser (in `encoding` when given)."""
    if xml_first:
        root = parse_content_xml(data)
        if root is not None:
            return root
    import lxml.html

    parser = lxml.html.HTMLParser(
        no_network=True, remove_comments=True, remove_pis=True, encoding=encoding or sniff_encoding(data)
    )
    return lxml.html.document_fromstring(drop_unknown_entities(strip_internal_subset(data)) or b"<html></html>",
                                         parser=parser)


_ENTITY_REF = re.compile(rb"&([A-Za-z][A-Za-z0-9]{0,31});")


def drop_unknown_entities(data: bytes) -> bytes:
    """`data` less its references to entities HTML does not define (`&xxe;`, declared in a DOCTYPE that
    was removed): the HTML parser would keep them as text and the voice would read them out."""
    from html.entities import html5

    return _ENTITY_REF.sub(lambda m: m[0] if m[1].decode() + ";" in html5 else b"", data)
