"""An EPUB's package: container.xml -> OPF (metadata, manifest, spine, guide) -> navigation
(EPUB 3 nav document, else the EPUB 2 NCX), and the cover image.

Everything is parsed with tasks.documents.xmlsafe (no entities, no network). Member names are
normalised archive paths ("OEBPS/text/chapter-1.xhtml"); hrefs are resolved against the file that
holds them.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from lxml import etree

from tasks.documents.model import Metadata
from tasks.documents.xmlsafe import parse_xml, read_member
from tasks.errors import SourceError

OPF_NS = "http://www.idpf.org/2007/opf"
DC_NS = "http://purl.org/dc/elements/1.1/"
OPS_NS = "http://www.idpf.org/2007/ops"
NCX_NS = "http://www.daisy.org/z3986/2005/ncx/"
XHTML_NS = "http://www.w3.org/1999/xhtml"
FIX = "re-export the book as EPUB (e.g. with Calibre), or convert it to .txt or .md"
_DOCUMENT_TYPES = frozenset({"application/xhtml+xml", "text/html", "application/x-dtbook+xml"})
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


@dataclass
class NavEntry:
    """One table-of-contents entry: its label, target (member name, fragment) and sub-entries."""

    label: str
    doc: str
    fragment: str
    children: list[NavEntry] = field(default_factory=list)


@dataclass
class Package:
    spine: list[tuple[str, bool]]  # (member name, linear) of content documents, in reading order
    toc: list[NavEntry]
    landmarks: dict[str, str]  # member name -> semantic type, from the guide and the landmarks nav
    metadata: Metadata
    warnings: list[str]
    nav_doc: str | None = None


def local(tag: object) -> str:
    """An element's name without its namespace ("" for comments and processing instructions)."""
    return tag.rpartition("}")[2].lower() if isinstance(tag, str) else ""


def resolve(base: str, href: str) -> tuple[str, str]:
    """An href inside member `base` -> (member name, fragment). External links give ("", "")."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", href):
        return "", ""
    path, _, fragment = href.strip().partition("#")
    if not path:
        return base, unquote(fragment)
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(base), unquote(path)))
    return ("" if joined.startswith("..") else joined.lstrip("/")), unquote(fragment)


def _text(el: etree._Element | None) -> str:
    return " ".join("".join(el.itertext()).split()) if el is not None else ""


def _plain(text: str) -> str:
    """Metadata text that may hold (escaped) HTML -> plain words."""
    if "<" in text:
        import lxml.html

        try:
            text = lxml.html.fragment_fromstring(text, create_parent="div").text_content()
        except (etree.ParserError, ValueError):
            text = re.sub(r"<[^>]*>", " ", text)
    return " ".join(text.split())


def read_package(archive: zipfile.ZipFile, path: Path) -> Package:
    """Parse container.xml, the OPF and its navigation. Raises SourceError for a broken package."""
    names = set(archive.namelist())
    _refuse_drm(archive, names, path)
    if "META-INF/container.xml" not in names:
        raise SourceError("is not an EPUB (META-INF/container.xml is missing)", file=path, fix=FIX)
    container = parse_xml(read_member(archive, "META-INF/container.xml"), path=path, member="META-INF/container.xml")
    opf_name = ""
    for rootfile in container.iter("{*}rootfile"):
        if (rootfile.get("media-type") or "application/oebps-package+xml") == "application/oebps-package+xml":
            opf_name = posixpath.normpath(unquote(rootfile.get("full-path") or "")).lstrip("/")
            break
    if not opf_name or opf_name not in names:
        raise SourceError(
            f"is not an EPUB (container.xml names the package file {opf_name or '(none)'!r}, which is missing)",
            file=path,
            fix=FIX,
        )
    opf = parse_xml(read_member(archive, opf_name), path=path, member=opf_name)
    warnings: list[str] = []

    manifest: dict[str, tuple[str, str, set[str]]] = {}  # id -> (member, media type, properties)
    for item in opf.iterfind("{*}manifest/{*}item"):
        ident, href = item.get("id"), item.get("href")
        if ident and href:
            member, _ = resolve(opf_name, href)
            props = set((item.get("properties") or "").split())
            manifest[ident] = (member, (item.get("media-type") or "").lower(), props)

    spine: list[tuple[str, bool]] = []
    spine_el = opf.find("{*}spine")
    for ref in opf.iterfind("{*}spine/{*}itemref"):
        entry = manifest.get(ref.get("idref") or "")
        if entry is None:
            warnings.append(f"{path}: the spine names {ref.get('idref')!r}, which the manifest lacks; it was left out")
            continue
        member, media, _ = entry
        if media not in _DOCUMENT_TYPES and not member.lower().endswith((".xhtml", ".html", ".htm")):
            continue
        if member not in names:
            warnings.append(f"{path}: spine document {member} is missing from the archive; it was left out")
            continue
        spine.append((member, (ref.get("linear") or "yes").strip().lower() != "no"))
    if not spine:
        raise SourceError("has no readable documents in its spine", file=path, fix=FIX)

    landmarks: dict[str, str] = {}
    for ref in opf.iterfind("{*}guide/{*}reference"):
        member, _ = resolve(opf_name, ref.get("href") or "")
        kind = (ref.get("type") or "").strip().lower()
        if member and kind:
            landmarks.setdefault(member, kind)

    toc: list[NavEntry] = []
    nav_doc = next((m for m, media, props in manifest.values() if "nav" in props and m in names), None)
    if nav_doc is not None:
        try:
            toc = _nav_entries(archive, nav_doc, path, landmarks)
        except SourceError as exc:
            warnings.append(f"{path}: its navigation document could not be read ({exc.reason}); the NCX was used")
    if not toc:
        ncx_id = spine_el.get("toc") if spine_el is not None else None
        ncx = manifest.get(ncx_id or "") or next(
            (v for v in manifest.values() if v[1] == "application/x-dtbncx+xml"), None
        )
        if ncx is not None and ncx[0] in names:
            toc = _ncx_entries(archive, ncx[0], path)

    metadata = _metadata(opf, archive, names, manifest, path, warnings)
    return Package(spine=spine, toc=toc, landmarks=landmarks, metadata=metadata, warnings=warnings, nav_doc=nav_doc)


def _refuse_drm(archive: zipfile.ZipFile, names: set[str], path: Path) -> None:
    """Encrypted content documents (DRM) cannot be read; obfuscated fonts alone are fine."""
    if "META-INF/encryption.xml" not in names:
        return
    try:
        root = parse_xml(read_member(archive, "META-INF/encryption.xml"), path=path, member="encryption.xml")
    except SourceError:
        return
    for ref in root.iter("{*}CipherReference"):
        uri = (ref.get("URI") or "").lower()
        if uri.endswith((".xhtml", ".html", ".htm", ".opf", ".ncx")):
            raise SourceError(
                "is protected by DRM (its text is encrypted)",
                file=path,
                fix="use a DRM-free copy of the book (many shops and all public-domain sources offer one)",
            )


def _label(el: etree._Element) -> str:
    """A nav label's words, without note references."""
    for ref in el.xpath(
        ".//*[contains(@epub:type, 'noteref') or contains(@class, 'noteref')]", namespaces={"epub": OPS_NS}
    ):
        drop(ref)
    return _text(el)


def drop(el: etree._Element) -> None:
    """Remove an element but keep the text that follows it."""
    parent = el.getparent()
    if parent is None:
        return
    if el.tail:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)


def _nav_entries(
    archive: zipfile.ZipFile, nav_doc: str, path: Path, landmarks: dict[str, str]
) -> list[NavEntry]:
    root = parse_xml(read_member(archive, nav_doc), path=path, member=nav_doc)
    toc: list[NavEntry] = []

    def _items(ol: etree._Element) -> list[NavEntry]:
        out: list[NavEntry] = []
        for li in ol:
            if local(li.tag) != "li":
                continue
            head = next((c for c in li if local(c.tag) in ("a", "span")), None)
            sub = next((c for c in li if local(c.tag) == "ol"), None)
            children = _items(sub) if sub is not None else []
            if head is None:
                out.extend(children)
                continue
            doc, fragment = resolve(nav_doc, head.get("href") or "") if local(head.tag) == "a" else ("", "")
            out.append(NavEntry(label=_label(head), doc=doc, fragment=fragment, children=children))
        return out

    for nav in root.iter("{*}nav"):
        types = set((nav.get(f"{{{OPS_NS}}}type") or "").split())
        ol = next((c for c in nav if local(c.tag) == "ol"), None)
        if ol is None:
            continue
        if "toc" in types and not toc:
            toc = _items(ol)
        elif "landmarks" in types:
            for a in ol.iter("{*}a"):
                doc, _ = resolve(nav_doc, a.get("href") or "")
                kinds = (a.get(f"{{{OPS_NS}}}type") or "").split()
                if doc and kinds:
                    landmarks[doc] = kinds[-1]  # "backmatter endnotes" -> endnotes
    return toc


def _ncx_entries(archive: zipfile.ZipFile, ncx: str, path: Path) -> list[NavEntry]:
    root = parse_xml(read_member(archive, ncx), path=path, member=ncx)

    def _points(parent: etree._Element) -> list[NavEntry]:
        out: list[NavEntry] = []
        for point in parent:
            if local(point.tag) != "navpoint":
                continue
            content = point.find("{*}content")
            doc, fragment = resolve(ncx, content.get("src") or "") if content is not None else ("", "")
            label = _text(point.find("{*}navLabel/{*}text"))
            out.append(NavEntry(label=label, doc=doc, fragment=fragment, children=_points(point)))
        return out

    nav_map = root.find("{*}navMap")
    return _points(nav_map) if nav_map is not None else []


def _metadata(
    opf: etree._Element,
    archive: zipfile.ZipFile,
    names: set[str],
    manifest: dict[str, tuple[str, str, set[str]]],
    path: Path,
    warnings: list[str],
) -> Metadata:
    meta = opf.find("{*}metadata")
    if meta is None:
        return Metadata()
    refines: dict[str, dict[str, list[str]]] = {}
    for m in meta.iterfind("{*}meta"):
        target = (m.get("refines") or "").lstrip("#")
        if target and m.get("property"):
            refines.setdefault(target, {}).setdefault(m.get("property", ""), []).append(_text(m))

    titles = meta.findall(f"{{{DC_NS}}}title")
    main = [t for t in titles if "main" in refines.get(t.get("id") or "", {}).get("title-type", [])]
    title = _text((main or titles or [None])[0]) or None

    authors: list[str] = []
    others: list[str] = []
    for creator in meta.iterfind(f"{{{DC_NS}}}creator"):
        name = _text(creator)
        roles = refines.get(creator.get("id") or "", {}).get("role", []) + [
            creator.get(f"{{{OPF_NS}}}role") or creator.get("role") or ""
        ]
        roles = [r for r in roles if r]
        if name:
            (authors if not roles or "aut" in roles else others).append(name)
    language = _text(meta.find(f"{{{DC_NS}}}language")) or None
    description = _plain(_text(meta.find(f"{{{DC_NS}}}description"))) or None

    cover, cover_type = _cover(meta, archive, names, manifest, path, warnings)
    return Metadata(
        title=title,
        authors=tuple(authors or others),
        language=language,
        description=description,
        cover=cover,
        cover_media_type=cover_type,
    )


def _cover(
    meta: etree._Element,
    archive: zipfile.ZipFile,
    names: set[str],
    manifest: dict[str, tuple[str, str, set[str]]],
    path: Path,
    warnings: list[str],
) -> tuple[bytes | None, str | None]:
    """The cover image: EPUB 3 properties="cover-image", else EPUB 2 <meta name="cover">. An SVG
    cover yields the raster image it embeds or links; one that is only vector art is skipped."""
    entry = next((v for v in manifest.values() if "cover-image" in v[2]), None)
    if entry is None:
        for m in meta.iterfind("{*}meta"):
            if (m.get("name") or "").lower() == "cover":
                ref = m.get("content") or ""
                entry = manifest.get(ref) or next((v for v in manifest.values() if v[0].endswith(ref)), None)
                break
    if entry is None or entry[0] not in names:
        return None, None
    member, media, _ = entry
    try:
        data = read_member(archive, member)
    except (KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
        warnings.append(f"{path}: its cover {member} could not be read ({exc}); no cover was taken from it")
        return None, None
    if media in _IMAGE_TYPES:
        return data, media
    if media == "image/svg+xml" or member.lower().endswith(".svg"):
        found = _raster_in_svg(data, member, archive, names)
        if found is None:
            warnings.append(
                f"{path}: its cover {member} is vector art (SVG) with no embedded picture; no cover was taken from it "
                "(set `cover:` in the manifest)"
            )
        return found if found is not None else (None, None)
    warnings.append(f"{path}: its cover {member} has an unusable type {media!r}; no cover was taken from it")
    return None, None


def _raster_in_svg(
    data: bytes, member: str, archive: zipfile.ZipFile, names: set[str]
) -> tuple[bytes, str] | None:
    """The first JPEG/PNG an SVG embeds (data: URI) or links (a file in the archive)."""
    try:
        root = parse_xml(data, path=Path(member), member=member)
    except SourceError:
        return None
    for image in root.iter("{*}image"):
        href = image.get("{http://www.w3.org/1999/xlink}href") or image.get("href") or ""
        m = re.match(r"data:(image/(?:jpeg|png|gif|webp));base64,(.*)", href.strip(), re.DOTALL)
        if m:
            try:
                return base64.b64decode("".join(m.group(2).split()), validate=True), m.group(1)
            except (binascii.Error, ValueError):
                continue
        linked, _ = resolve(member, href)
        if linked in names:
            ext = linked.rsplit(".", 1)[-1].lower()
            media = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png"}.get(ext)
            if media:
                return read_member(archive, linked), media
    return None
