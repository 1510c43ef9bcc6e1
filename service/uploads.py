"""A book as one upload: read the multipart request within its limits, check every file by its
content, and lay the book out in a staging folder ready to be moved into `manifests/<name>/`.

    read_form(request, config)            -> Form (the fields and the files, spooled to a folder)
    stage_book(form, staging, config)     -> StagedBook (manifest written, files in place, clips apart)
    document_metadata(path)               -> what a document says about itself (POST /inspect)

Nothing here touches the manifests or voices folders: the caller validates the staged book and only
then moves it in. The manifest comes from a `manifest` field, from a .zip of a manifest folder, or is
built from the form's fields and the document's own metadata (title, author, cover).
"""

from __future__ import annotations

import errno
import re
import unicodedata
import zipfile
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from starlette.datastructures import UploadFile
from starlette.requests import Request

from tasks.errors import UserError
from tasks.manifest import parse_yaml

from .config import Refusal, ServiceConfig, check_name
from .filetypes import DOCUMENT_KINDS, DOCUMENT_NAMES, Limits, expected_kind, extract_zip, sniff

FORM_FIELDS = ("name", "title", "author", "narrator", "engine", "voice", "quality", "overwrite")
MAX_FILES = 200
MAX_NAME_BYTES = 255  # a file name's length limit on Linux file systems (ENAMETOOLONG past it)


@dataclass
class Upload:
    field: str
    filename: str
    path: Path
    kind: str


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[Upload] = field(default_factory=list)
    manifest_text: bytes | None = None  # a `manifest` sent as a plain field


@dataclass
class StagedBook:
    name: str
    folder: Path  # holds <name>.yaml and the files it names
    manifest_file: Path
    manifest_yaml: bytes
    voice: str
    clips: list[Path]  # a new voice's reference clips (to go to voices/<voice>/)
    generated: bool  # built from the form and the document, not sent


def limits_of(config: ServiceConfig) -> Limits:
    return Limits(config.max_file_bytes, config.max_unpacked_bytes, config.max_members)


def _bounded_receive(request: Request, limit: int) -> Callable[[], Awaitable[MutableMapping[str, Any]]]:
    """The request's `receive`, refusing (413) once the body passes `limit` bytes."""
    seen = 0
    receive = request.receive

    async def bounded() -> MutableMapping[str, Any]:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise Refusal(413, f"the request is over the {limit} byte limit for one upload: send fewer or "
                                   "smaller files (AUDIOBOOK_MAX_REQUEST_BYTES)")
        return message

    return bounded


def plain_filename(raw: str | None, what: str) -> str:
    name = (raw or "").strip()
    if (not name or "/" in name or "\\" in name or "\x00" in name or name.startswith(".") or len(name) > 200
            or any(unicodedata.category(c).startswith("C") for c in name)):
        raise Refusal(400, f"field {what!r}: bad file name {name[:80]!r}: give a plain name such as book.epub")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise Refusal(400, f"field {what!r}: file name {name[:40]!r}... is over {MAX_NAME_BYTES} bytes in UTF-8: "
                           "give the file a shorter name")
    return name


async def read_form(request: Request, config: ServiceConfig, spool: Path) -> Form:
    """Read the multipart body (bounded as it arrives); copy each file into `spool` and check its type."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > config.max_request_bytes:
        raise Refusal(413, f"the request is over the {config.max_request_bytes} byte limit for one upload: "
                           "send fewer or smaller files (AUDIOBOOK_MAX_REQUEST_BYTES)")
    bounded = Request(request.scope, _bounded_receive(request, config.max_request_bytes))
    try:
        raw = await bounded.form(max_files=MAX_FILES, max_fields=len(FORM_FIELDS) + 5,
                                 max_part_size=config.max_upload_bytes)
    except Refusal:
        raise
    except Exception as exc:  # malformed multipart: starlette raises MultiPartException / HTTPException
        detail = str(getattr(exc, "detail", None) or exc)
        if detail.startswith(("Too many files", "Too many fields")):  # starlette's words for max_files/fields
            raise Refusal(413, f"{detail.rstrip('.')}: send at most {MAX_FILES} files in one request") from None
        raise Refusal(400, f"malformed multipart upload: {detail}") from None
    form = Form()
    limits = limits_of(config)
    try:
        for key, value in raw.multi_items():
            if isinstance(value, UploadFile):
                if key not in ("file", "manifest"):
                    raise Refusal(400, f"unknown file field {key[:40]!r}: send files as 'file' (and a manifest "
                                       "as 'manifest')")
                filename = plain_filename(value.filename, key)
                if any(u.filename == filename for u in form.files):
                    raise Refusal(400, f"field {key!r}: two files named {filename!r}: give each file its own name")
                if value.size is not None and value.size > config.max_file_bytes:
                    raise Refusal(413, f"file {filename!r} is {value.size} bytes, over the {config.max_file_bytes} "
                                       "byte limit for one file (AUDIOBOOK_MAX_FILE_BYTES)")
                target = spool / filename
                try:
                    copied = await _spool(value, target, filename, config.max_file_bytes)
                except OSError as exc:
                    raise Refusal(400 if exc.errno in (errno.ENAMETOOLONG, errno.EEXIST, errno.EINVAL) else 507,
                                  f"field {key!r}: cannot store {filename[:80]!r}: {exc.strerror}: "
                                  "give the file a shorter, plain name") from None
                if key == "manifest":
                    if expected_kind(filename) != "text" or Path(filename).suffix.lower() not in (".yaml", ".yml"):
                        raise Refusal(415, f"field 'manifest': {filename!r} is not a .yaml file: send the manifest")
                    if copied > config.max_upload_bytes:
                        raise Refusal(413, f"the manifest is over the {config.max_upload_bytes} byte limit")
                kind = sniff(target, filename, limits)
                form.files.append(Upload(key, filename, target, kind))
            elif key == "manifest":
                form.manifest_text = value.encode("utf-8")
            elif key in FORM_FIELDS:
                form.fields[key] = value.strip()
            else:
                raise Refusal(400, f"unknown field {key[:40]!r}: use {', '.join(FORM_FIELDS)}, 'manifest' or 'file'")
    finally:
        await raw.close()
    return form


async def _spool(upload: UploadFile, target: Path, filename: str, limit: int) -> int:
    with open(target, "xb") as out:
        copied = 0
        while chunk := await upload.read(1 << 16):
            copied += len(chunk)
            if copied > limit:
                raise Refusal(413, f"file {filename!r} is over the {limit} byte limit for one file "
                                   "(AUDIOBOOK_MAX_FILE_BYTES)")
            out.write(chunk)
    return copied


def name_from_title(title: str) -> str:
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:64].rstrip("-")
    return text or "book"


def document_metadata(path: Path) -> dict[str, Any]:
    """Title, authors, language, description and cover of a document, from its reader (a SourceError
    when it cannot be read)."""
    from tasks.documents import read_document

    meta = read_document(path).metadata
    return {
        "title": meta.title, "authors": list(meta.authors), "author": ", ".join(meta.authors) or None,
        "language": meta.language, "description": meta.description,
        "cover": meta.cover, "cover_media_type": meta.cover_media_type,
    }


def _overwrite(fields: dict[str, str]) -> bool:
    value = fields.get("overwrite", "").lower()
    if value not in ("", "0", "1", "true", "false", "on", "off", "yes", "no"):
        raise Refusal(400, f"field 'overwrite': {value[:20]!r} is not true or false")
    return value in ("1", "true", "on", "yes")


def stage_book(form: Form, staging: Path, config: ServiceConfig) -> tuple[StagedBook, bool]:
    """Lay the upload out as a book folder in `staging`; returns it and whether to overwrite."""
    overwrite = _overwrite(form.fields)
    folder = staging / "book"
    folder.mkdir()
    files = [u for u in form.files if u.field == "file"]
    manifest_upload = next((u for u in form.files if u.field == "manifest"), None)
    yamls = [u for u in files if Path(u.filename).suffix.lower() in (".yaml", ".yml")]
    if yamls and (manifest_upload is not None or form.manifest_text is not None or len(yamls) > 1):
        raise Refusal(400, "field 'file': send one manifest (.yaml), in the 'manifest' field or as a file")
    if yamls:  # a manifest sent as one of the files
        manifest_upload = yamls[0]
        files.remove(manifest_upload)
    if manifest_upload is not None and manifest_upload.path.stat().st_size > config.max_upload_bytes:
        raise Refusal(413, f"file {manifest_upload.filename!r}: over the {config.max_upload_bytes} byte limit for "
                           "a manifest: keep it short (chapter text goes in files beside it)")
    manifest_yaml = form.manifest_text if manifest_upload is None else manifest_upload.path.read_bytes()
    name_hint = Path(manifest_upload.filename).stem if manifest_upload else None
    zips = [u for u in files if u.kind == "zip"]
    if zips:
        if len(files) != 1 or manifest_yaml is not None:
            raise Refusal(400, "field 'file': send a .zip of a manifest folder on its own, without other files")
        _refuse_big_manifest_member(zips[0], config)
        extract_zip(zips[0].path, folder, limits_of(config), zips[0].filename)
        top_yamls = [p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()]
        if len(top_yamls) > 1:
            raise Refusal(422, f"file {zips[0].filename!r}: {len(top_yamls)} manifests at the top of the archive: "
                               "keep exactly one .yaml there")
        if top_yamls:
            size = top_yamls[0].stat().st_size
            if size > config.max_upload_bytes:  # before reading, let alone parsing, it
                raise Refusal(413, f"file {zips[0].filename!r}: the manifest {top_yamls[0].name!r} is {size} bytes, "
                                   f"over the {config.max_upload_bytes} byte limit for a manifest: keep it short "
                                   "(chapter text goes in files beside it)")
            manifest_yaml, name_hint = top_yamls[0].read_bytes(), top_yamls[0].stem
            top_yamls[0].unlink()
        contents = [Upload("file", str(p.relative_to(folder)), p, expected_kind(p.name) or "")
                    for p in sorted(folder.rglob("*")) if p.is_file()]
        for upload in contents:  # every unpacked file is checked by content as an upload is
            upload.kind = sniff(upload.path, upload.path.name, limits_of(config))
    else:
        contents = []
        for upload in files:
            target = folder / upload.filename
            upload.path.rename(target)
            contents.append(Upload("file", upload.filename, target, upload.kind))
    voices = staging / "voices"
    clips = [u for u in contents if u.kind == "audio"]
    generated = manifest_yaml is None
    if manifest_yaml is None:
        manifest_yaml, name_hint = _build_manifest(form.fields, contents, folder, config)
    raw_name = form.fields.get("name") or name_hint
    if not raw_name:
        raise Refusal(400, "field 'name': give the book a name (letters, digits, '.', '_', '-')")
    try:
        name = check_name(raw_name)
    except Refusal as exc:
        raise Refusal(400, f"field 'name': {exc.error}") from None
    voice = _voice_of(manifest_yaml, config)
    moved: list[Path] = []
    if clips:
        if not voice or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", voice) or ".." in voice:
            raise Refusal(422, "field 'voice': voice clips need a new voice name (letters, digits, '.', '_', '-')")
        (voices / voice).mkdir(parents=True)
        for upload in clips:
            target = voices / voice / Path(upload.filename).name
            if target.exists():
                raise Refusal(400, f"field 'file': two clips named {target.name!r}: give each clip its own name")
            upload.path.rename(target)
            moved.append(target)
    manifest_file = folder / f"{name}.yaml"
    manifest_file.write_bytes(manifest_yaml)
    return StagedBook(name, folder, manifest_file, manifest_yaml, voice or "", moved, generated), overwrite


def _refuse_big_manifest_member(upload: Upload, config: ServiceConfig) -> None:
    """A manifest at the top of the archive (or of its one folder) over the manifest limit, refused from
    the archive's directory: before anything is unpacked."""
    with zipfile.ZipFile(upload.path) as archive:
        infos = [i for i in archive.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    parts = [PurePosixPath(i.filename).parts for i in infos]
    strip = len({p[0] for p in parts if p}) == 1 and all(len(p) > 1 for p in parts)
    for info, p in zip(infos, parts, strict=True):
        if len(p) == 1 + strip and PurePosixPath(info.filename).suffix.lower() in (".yaml", ".yml") \
                and info.file_size > config.max_upload_bytes:
            raise Refusal(413, f"file {upload.filename!r}: the manifest {p[-1]!r} is {info.file_size} bytes, over "
                               f"the {config.max_upload_bytes} byte limit for a manifest: keep it short (chapter "
                               "text goes in files beside it)")


def _voice_of(manifest_yaml: bytes, config: ServiceConfig) -> str | None:
    """The manifest's voice, read only after its size is checked, with the manifest's own parser
    (bounded depth, no aliases); None when it does not parse (validation then says why)."""
    if len(manifest_yaml) > config.max_upload_bytes:
        raise Refusal(413, f"field 'manifest': {len(manifest_yaml)} bytes, over the {config.max_upload_bytes} "
                           "byte limit for a manifest: keep it short (chapter text goes in files beside it)")
    try:
        data = parse_yaml(manifest_yaml, Path("manifest.yaml"))
    except UserError:
        return None
    voice = data.get("voice") if isinstance(data, dict) else None
    return str(voice) if isinstance(voice, str) else None


def _build_manifest(fields: dict[str, str], contents: list[Upload], folder: Path,
                    config: ServiceConfig) -> tuple[bytes, str]:
    """A manifest from the form's fields and the document's own metadata."""
    documents = [u for u in contents if u.kind in DOCUMENT_KINDS]
    if len(documents) != 1:
        raise Refusal(422, f"field 'file': without a manifest, send exactly one document ({DOCUMENT_NAMES}); "
                           f"got {len(documents)}")
    document = documents[0]
    from tasks.documents import SUFFIXES

    if Path(document.filename).suffix.lower() not in SUFFIXES:
        raise Refusal(415, f"file {document.filename!r}: this server cannot read {Path(document.filename).suffix} "
                           f"documents yet: send one of {', '.join(SUFFIXES)}")
    meta = document_metadata(document.path)
    title = fields.get("title") or meta["title"]
    author = fields.get("author") or meta["author"]
    if not title:
        raise Refusal(422, f"field 'title': {document.filename!r} names no title: fill in the title")
    if not author:
        raise Refusal(422, f"field 'author': {document.filename!r} names no author: fill in the author")
    from tasks.engines import engine_names, engine_status, known_engines
    from tasks.manifest import Manifest

    engine = fields.get("engine") or str(Manifest.model_fields["engine"].default)
    if engine not in known_engines():
        raise Refusal(422, f"field 'engine': unknown engine {engine[:40]!r}: use one of {', '.join(engine_names())}")
    voice = fields.get("voice") or engine_status(engine, config.voices).default_voice or ""
    if not voice:
        raise Refusal(422, f"field 'voice': choose a voice for {engine}")
    manifest: dict[str, Any] = {"title": title, "author": author}
    if fields.get("narrator"):
        manifest["narrator"] = fields["narrator"]
    if meta["language"] and isinstance(meta["language"], str) and re.fullmatch(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]+)*",
                                                                                 meta["language"]):
        manifest["language"] = meta["language"]
    manifest.update(engine=engine, voice=voice, quality=fields.get("quality") or "standard")
    images = [u for u in contents if u.kind in ("jpeg", "png")]
    if len(images) > 1:
        raise Refusal(422, f"field 'file': {len(images)} images: send one cover")
    if images:
        manifest["cover"] = images[0].filename
    elif meta["cover"] and meta["cover"][:3] == b"\xff\xd8\xff" or (meta["cover"] or b"")[:4] == b"\x89PNG":
        cover = folder / ("cover.jpg" if meta["cover"][:3] == b"\xff\xd8\xff" else "cover.png")
        if not cover.exists():
            cover.write_bytes(meta["cover"])
            manifest["cover"] = cover.name
    manifest["source"] = document.filename
    text = "# Built by the service from the upload; edit it and submit it again to change the book.\n"
    return (text + yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True)).encode("utf-8"), name_from_title(title)
