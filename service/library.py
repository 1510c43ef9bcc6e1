"""The books on disk: where a book's manifest is, its downloadable files, its report and cover.

A book NAME is `manifests/NAME/NAME.yaml` (a folder of its own, as POST /books stores it) or
`manifests/NAME.yaml` (as POST /manifests and hand-written manifests are), and `output/NAME/`.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from tasks import atomic
from tasks.errors import UserError
from tasks.manifest import parse_yaml
from tasks.report import REPORT_NAME, BookReport

from .config import DEFAULT_MAX_UPLOAD_BYTES, NAME_RE, ServiceConfig

STAGING_PREFIX = ".incoming-"  # an upload's staging folder in manifests/
log = logging.getLogger("audiobook.service")
MEDIA_TYPES = {".m4b": "audio/mp4", ".mp3": "audio/mpeg", ".json": "application/json",
               ".epub": "application/epub+zip", ".vtt": "text/vtt", ".srt": "application/x-subrip"}
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
REPORT_SUMMARY_KEYS = (
    "title", "author", "engine", "voice", "quality", "duration_s", "chunks_total", "chunks_synthesized",
    "chunks_cached", "wall_seconds", "engine_seconds", "estimated_cost", "rerolls", "retries", "bad_takes",
    "warnings",
)


def book_dir(config: ServiceConfig, name: str) -> Path:
    return config.output_dir / name


def manifest_path(config: ServiceConfig, name: str) -> Path | None:
    """The book's manifest: its own folder's first, else the flat file; None when neither is there."""
    for path in (config.manifests_dir / name / f"{name}.yaml", config.manifests_dir / f"{name}.yaml"):
        if path.is_file() and not path.is_symlink():
            return path
    return None


def book_exists(config: ServiceConfig, name: str) -> bool:
    return ((config.manifests_dir / f"{name}.yaml").exists() or (config.manifests_dir / name).exists()
            or book_dir(config, name).exists())


def book_files(config: ServiceConfig, name: str) -> list[str]:
    """Downloadable files of a book (relative to output/NAME): the M4B, the EPUB, the MP3s and their
    captions, report.json."""
    folder = book_dir(config, name)
    if not folder.is_dir() or folder.is_symlink():
        return []
    found: list[str] = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or path.suffix.lower() not in MEDIA_TYPES:
            continue
        if path.is_symlink() or not path.is_file():
            continue
        if path.suffix.lower() == ".json" and rel.as_posix() != "report.json":
            continue
        found.append(rel.as_posix())
    order = {".m4b": 0, ".epub": 0, ".mp3": 1, ".vtt": 1, ".srt": 1, ".json": 2}
    return sorted(found, key=lambda f: (order[Path(f).suffix.lower()], f))


def download_url(name: str, rel: str) -> str:
    return f"/books/{urllib.parse.quote(name)}/download/{urllib.parse.quote(rel)}"


def read_report(config: ServiceConfig, name: str) -> BookReport | None:
    """The book's report.json (tasks.report), or None when there is none or it is not a report."""
    path = book_dir(config, name) / REPORT_NAME
    try:
        if path.is_symlink() or path.stat().st_size > 4 << 20:
            return None
        return BookReport.from_json(path)
    except (OSError, ValueError):
        return None


def report_summary(report: BookReport) -> dict[str, Any]:
    summary: dict[str, Any] = {k: getattr(report, k) for k in REPORT_SUMMARY_KEYS}
    summary["chapters"] = [
        {"title": c.title, "duration_s": c.duration_s, "rms_dbfs": c.rms_dbfs, "peak_dbfs": c.peak_dbfs}
        for c in report.chapters
    ]
    return summary


_PARSED: dict[Path, tuple[tuple[int, int], dict[str, Any] | None]] = {}  # path -> ((size, mtime_ns), data)
_PARSED_LOCK = threading.Lock()


def manifest_data(config: ServiceConfig, name: str) -> dict[str, Any] | None:
    """The book's manifest as a mapping (unvalidated; for titles and the cover), or None. Parsed once
    per version of the file: a listing of hundreds of books does not parse hundreds of YAML files."""
    path = manifest_path(config, name)
    try:
        if path is None or (stat := path.stat()).st_size > DEFAULT_MAX_UPLOAD_BYTES:
            return None
        version = (stat.st_size, stat.st_mtime_ns)
        with _PARSED_LOCK:
            hit = _PARSED.get(path)
        if hit is not None and hit[0] == version:
            return hit[1]
        data = parse_yaml(path.read_bytes(), path)
    except (OSError, UserError):
        return None
    result = data if isinstance(data, dict) else None
    with _PARSED_LOCK:
        if len(_PARSED) > 10_000:
            _PARSED.clear()
        _PARSED[path] = (version, result)
    return result


def manifest_title(config: ServiceConfig, name: str) -> str | None:
    data = manifest_data(config, name)
    title = data.get("title") if data else None
    return str(title) if isinstance(title, str | int | float) else None


def cover_file(config: ServiceConfig, name: str, data: dict[str, Any] | None = None) -> Path | None:
    """The book's cover image (JPEG or PNG inside its manifest folder), or None. `data`: the manifest
    as read already (else it is read here)."""
    data = manifest_data(config, name) if data is None else data
    manifest = manifest_path(config, name)
    cover = data.get("cover") if data else None
    if manifest is None or not isinstance(cover, str) or Path(cover).suffix.lower() not in IMAGE_TYPES:
        return None
    folder = manifest.parent.resolve()
    try:
        real = (folder / cover).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return real if real.is_relative_to(folder) and real.is_file() else None


def list_names(config: ServiceConfig) -> list[str]:
    names: set[str] = set()
    if config.manifests_dir.is_dir():
        for path in config.manifests_dir.iterdir():
            if path.is_symlink():
                continue
            if path.suffix == ".yaml" and path.is_file():
                names.add(path.stem)
            elif path.is_dir() and (path / f"{path.name}.yaml").is_file():
                names.add(path.name)
    if config.output_dir.is_dir():
        names.update(p.name for p in config.output_dir.iterdir() if p.is_dir() and not p.is_symlink())
    return sorted(n for n in names if NAME_RE.fullmatch(n) and ".." not in n)


def write_new(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write `data` to `path` atomically; without `overwrite`, fail with FileExistsError if it exists."""
    atomic.write_bytes(path, data, overwrite=overwrite)


def remove_stale_staging(manifests_dir: Path) -> None:
    """Remove the staging folders of uploads a killed server left behind (`.incoming-*`)."""
    try:
        stale = [p for p in manifests_dir.glob(f"{STAGING_PREFIX}*") if p.is_dir() and not p.is_symlink()]
    except OSError:
        return
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed %s, left by an upload that never finished", path)


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(?:/[^\s'\"/:,;()]+)+/?")


def public_message(message: str) -> str:
    """A failure's reason without the server's absolute paths: each is cut to its last part
    ("/srv/audiobook/cache/chunks/ab/x.flac" -> "x.flac"); the full text goes to the log."""
    return _ABSOLUTE_PATH.sub(lambda m: Path(m[0].rstrip("/")).name or "/", message)
