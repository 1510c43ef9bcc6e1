"""What an uploaded file is, by its content, and whether an archive is safe to open.

    sniff(path, filename, limits) -> kind      "epub", "docx", "zip", "text", "html", "jpeg", "png", "audio"
    safe_members(zip, limits, what)  -> infos  members confined to their folder, bounded in count and size
    extract_zip(path, dest, limits)            unpack a manifest folder, counting what is written

A file's kind comes from its bytes; its name's suffix must agree (an EPUB must be a real EPUB, a PNG
named book.txt is refused). EPUB and DOCX are zip archives: their members are bounded like any
archive, and every XML member is parsed with defusedxml first, so entity declarations (billion
laughs, external entities) are refused before any reader sees the file. Every refusal is a Refusal
naming the file and the fix.
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tasks.documents import READERS

from .config import Refusal

# What a document's bytes must be, by the reader that will read it (tasks.documents.READERS: suffix ->
# reader module). A format added there says here how its uploads are checked.
CONTENT_OF_READER = {"plain": "text", "markdown": "text", "html_reader": "html", "epub": "epub",
                     "docx_reader": "docx"}
DOCUMENT_SUFFIXES = {suffix: CONTENT_OF_READER[reader] for suffix, reader in READERS.items()}
DOCUMENT_KINDS = frozenset(DOCUMENT_SUFFIXES.values())
# The documents as refusals name them: each reader's first suffix (".txt, .md, .epub, .html, .docx").
DOCUMENT_NAMES = ", ".join(next(s for s, r in READERS.items() if r == reader) for reader in dict.fromkeys(READERS.values()))
MANIFEST_SUFFIXES = {".yaml", ".yml"}
AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".ogg"}
IMAGE_SUFFIXES = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png"}
XML_MEMBER_SUFFIXES = {".xml", ".opf", ".ncx", ".xhtml", ".html", ".htm", ".svg", ".rels"}
MAX_XML_MEMBER_BYTES = 16 << 20
EPUB_MIMETYPE = b"application/epub+zip"


@dataclass(frozen=True)
class Limits:
    file_bytes: int
    unpacked_bytes: int
    members: int


def expected_kind(filename: str) -> str | None:
    """The kind a file's suffix promises, or None for a suffix we do not take."""
    suffix = Path(filename).suffix.lower()
    if suffix in DOCUMENT_SUFFIXES:
        return DOCUMENT_SUFFIXES[suffix]
    if suffix == ".zip":
        return "zip"
    if suffix in MANIFEST_SUFFIXES:
        return "text"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    return IMAGE_SUFFIXES.get(suffix)


def _head(path: Path, n: int = 64) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _kind_of_bytes(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE" or head.startswith((b"fLaC", b"OggS", b"ID3")):
        return "audio"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "audio"  # an MPEG audio frame without an ID3 tag
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    return None


def _is_utf8_text(path: Path, limit: int) -> bool:
    data = path.read_bytes()[:limit]
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut by the limit is fine
        return exc.start >= len(data) - 3 and len(data) == limit
    return True


def sniff(path: Path, filename: str, limits: Limits) -> str:
    """The file's kind, checked against its name; refuses a file whose content is not what its name says."""
    wanted = expected_kind(filename)
    if wanted is None:
        raise Refusal(415, f"file {filename!r}: unsupported type {Path(filename).suffix or '(no suffix)'!r}: "
                           f"send a document ({DOCUMENT_NAMES}), a cover (.jpg, .png), voice clips "
                           "(.wav, .mp3, .flac, .ogg), a manifest (.yaml) or a .zip of a manifest folder")
    found = _kind_of_bytes(_head(path))
    if found == "zip":
        found = _zip_kind(path, filename, limits)
    elif found is None and wanted in ("text", "html") and _is_utf8_text(path, 1 << 20):
        found = wanted
    if found != wanted:
        said = {"text": "UTF-8 text", "html": "UTF-8 HTML", "jpeg": "a JPEG image", "png": "a PNG image",
                "audio": "audio", "epub": "an EPUB", "docx": "a DOCX document", "zip": "a zip archive"}
        raise Refusal(415, f"file {filename!r}: the name says {said[wanted]} but the content is "
                           f"{said.get(found or '', 'not that')}: send the file itself, with its own suffix")
    if found in ("epub", "docx"):
        check_office_xml(path, filename, found, limits)
    return found


def _zip_kind(path: Path, filename: str, limits: Limits) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = safe_members(archive, limits, filename)
            names = {i.filename for i in infos}
            if infos and infos[0].filename == "mimetype":
                with archive.open(infos[0]) as fh:
                    if fh.read(64).strip() == EPUB_MIMETYPE:
                        return "epub"
            if "[Content_Types].xml" in names and "word/document.xml" in names:
                return "docx"
            return "zip"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise Refusal(422, f"file {filename!r}: not a readable zip archive ({exc}): send the file again, whole") from None


def safe_members(archive: zipfile.ZipFile, limits: Limits, what: str) -> list[zipfile.ZipInfo]:
    """The archive's members, refusing: too many, too large unpacked, absolute paths, '..', links,
    device files, or an entry compressed beyond any honest ratio (a zip bomb)."""
    infos = archive.infolist()
    if len(infos) > limits.members:
        raise Refusal(413, f"file {what!r}: {len(infos)} archive members, over the {limits.members} limit: "
                           "send fewer files")
    total = 0
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name).parts
        if (name.startswith(("/", "\\")) or "\\" in name or "\x00" in name or (len(name) > 1 and name[1] == ":")
                or any(p in ("..",) for p in parts)):
            raise Refusal(422, f"file {what!r}: member {name[:120]!r} points outside the archive's folder "
                               "(absolute path or '..'): pack the folder with relative paths")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise Refusal(422, f"file {what!r}: member {name[:120]!r} is a symbolic link: pack real files only")
        if mode and stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise Refusal(422, f"file {what!r}: member {name[:120]!r} is a device or special file: "
                               "pack regular files only")
        if info.file_size > limits.file_bytes:
            raise Refusal(413, f"file {what!r}: member {name[:120]!r} unpacks to {info.file_size} bytes, over "
                               f"the {limits.file_bytes} byte limit for one file")
        if info.compress_size and info.file_size / info.compress_size > 1000 and info.file_size > 1 << 20:
            raise Refusal(413, f"file {what!r}: member {name[:120]!r} is compressed {info.file_size // info.compress_size}:1, "
                               "as a zip bomb is: send an ordinary archive")
        total += info.file_size
        if total > limits.unpacked_bytes:
            raise Refusal(413, f"file {what!r}: unpacks to over the {limits.unpacked_bytes} byte limit: "
                               "send a smaller book")
    return infos


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    with archive.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise Refusal(413, f"archive member {info.filename[:120]!r} is larger than it says")
    return data


def check_office_xml(path: Path, filename: str, kind: str, limits: Limits) -> None:
    """Parse every XML member with defusedxml (entities, external references refused); the package's
    own structure (EPUB container and package document, DOCX content types) must parse."""
    import defusedxml.ElementTree as SafeET
    from defusedxml import DefusedXmlException

    with zipfile.ZipFile(path) as archive:
        infos = safe_members(archive, limits, filename)
        names = {i.filename for i in infos}
        if kind == "epub" and "META-INF/container.xml" not in names:
            raise Refusal(422, f"file {filename!r}: malformed EPUB: it has no META-INF/container.xml: "
                               "export the book again from its editor")
        structural = {"META-INF/container.xml", "[Content_Types].xml", "word/document.xml"}
        for info in infos:
            if PurePosixPath(info.filename).suffix.lower() not in XML_MEMBER_SUFFIXES:
                continue
            data = _read_member(archive, info, MAX_XML_MEMBER_BYTES)
            try:
                root = SafeET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
            except DefusedXmlException as exc:
                raise Refusal(422, f"file {filename!r}: member {info.filename[:120]!r} declares XML entities "
                                   f"({type(exc).__name__}), which are refused: export the book without them") from None
            except SafeET.ParseError as exc:
                if info.filename in structural or info.filename.endswith(".opf"):
                    raise Refusal(422, f"file {filename!r}: malformed {kind.upper()}: {info.filename} is not "
                                       f"well-formed XML ({exc}): export the book again") from None
                continue  # a content document the reader may still read (or refuse with its own reason)
            if kind == "epub" and info.filename == "META-INF/container.xml":
                paths = [el.get("full-path") for el in root.iter() if el.tag.endswith("rootfile")]
                if not paths or any(p not in names for p in paths):
                    raise Refusal(422, f"file {filename!r}: malformed EPUB: its container names no package "
                                       "document that is in the archive: export the book again")


def extract_zip(path: Path, dest: Path, limits: Limits, what: str) -> list[Path]:
    """Unpack a manifest folder into `dest`: a single top folder is stripped; macOS litter is skipped."""
    written: list[Path] = []
    with zipfile.ZipFile(path) as archive:
        infos = [i for i in safe_members(archive, limits, what)
                 if not i.is_dir() and not i.filename.startswith("__MACOSX/")
                 and PurePosixPath(i.filename).name != ".DS_Store"]
        tops = {PurePosixPath(i.filename).parts[0] for i in infos}
        strip = len(tops) == 1 and all(len(PurePosixPath(i.filename).parts) > 1 for i in infos)
        root = dest.resolve()
        budget = limits.unpacked_bytes
        planned = _layout(infos, strip, what)
        for info, parts in zip(infos, planned, strict=True):
            target = dest.joinpath(*parts)
            if not target.resolve().is_relative_to(root):
                raise Refusal(422, f"file {what!r}: member {info.filename[:120]!r} points outside the folder")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "xb") as out:
                    copied = _copy_bounded(src, out, min(limits.file_bytes, budget))
            except OSError as exc:  # what _layout cannot foresee (a case-insensitive file system, ...)
                raise Refusal(422, f"file {what!r}: cannot unpack member {info.filename[:120]!r}: {exc.strerror}: "
                                   "pack plain, distinct file names") from None
            budget -= copied
            written.append(target)
    return written


MAX_NAME_BYTES = 255


def _layout(infos: list[zipfile.ZipInfo], strip: bool, what: str) -> list[tuple[str, ...]]:
    """Where each member goes (its path parts), refusing before anything is written: hidden names,
    names too long for the file system, the same path twice, and a file where another member needs a
    folder (`a` beside `a/b.txt`)."""
    files: set[tuple[str, ...]] = set()
    folders: set[tuple[str, ...]] = set()
    out: list[tuple[str, ...]] = []
    for info in infos:
        parts = PurePosixPath(info.filename).parts[1 if strip else 0:]
        member = f"file {what!r}: member {info.filename[:120]!r}"
        if any(p.startswith(".") for p in parts):
            raise Refusal(422, f"{member} is hidden: pack visible files only")
        if any(len(p.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for p in parts):
            raise Refusal(422, f"{member} has a name over {MAX_NAME_BYTES} bytes: give it a shorter name")
        if parts in files:
            raise Refusal(422, f"{member} is in the archive twice: pack each file once")
        if parts in folders or any(parts[:i] in files for i in range(1, len(parts))):
            raise Refusal(422, f"{member} is both a file and a folder in the archive: rename one of them")
        files.add(parts)
        folders.update(parts[:i] for i in range(1, len(parts)))
        out.append(parts)
    return out


def _copy_bounded(src: object, out: object, limit: int) -> int:
    copied = 0
    while chunk := src.read(1 << 16):  # type: ignore[attr-defined]
        copied += len(chunk)
        if copied > limit:
            raise Refusal(413, f"an archive member unpacks to more than it says (over {limit} bytes)")
        out.write(chunk)  # type: ignore[attr-defined]
    return copied


