"""The cover image: chosen, checked and made embeddable (JPEG or PNG), never a reason to fail a render.

    prepare_cover(manifest, metadata, work_dir) -> (path of a JPEG/PNG to embed, or None; warnings)

The manifest's `cover:` wins; without one, the cover the source document carries (EPUB/DOCX
metadata) is used. JPEG and PNG are embedded as they are. Other raster formats Pillow reads (WebP,
GIF, BMP, TIFF...) are converted to JPEG. An SVG is not rasterised (that needs the system's cairo
library): an SVG that embeds a base64 JPEG or PNG `<image>` yields that image; any other SVG, and a
file that is not an image, is skipped with a warning. ACX asks for a square cover of at least
2400x2400 pixels: a smaller or non-square one gives a warning. Converted and extracted images are
written content-addressed into `work_dir` (temp then rename).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from tasks.atomic import write_bytes
from tasks.documents import Metadata
from tasks.manifest import Manifest

ACX_MIN_SIDE_PX = 2400
MAX_COVER_BYTES = 50 << 20  # a cover is a few MB; anything far larger is not read
_DATA_URI = re.compile(r"^\s*data:image/(jpeg|jpg|png);base64,(.*)$", re.S | re.I)


@dataclass(frozen=True)
class _Image:
    data: bytes
    format: str  # "JPEG" or "PNG"
    width: int
    height: int


def prepare_cover(manifest: Manifest, metadata: Metadata, work_dir: Path) -> tuple[Path | None, list[str]]:
    """The cover to embed and the warnings about it. Never raises for a bad image: it is skipped."""
    if manifest.cover:
        path = manifest.resolve(manifest.cover, "cover")
        name = f"the cover {manifest.cover!r}"
        try:
            if path.stat().st_size > MAX_COVER_BYTES:
                return None, [f"{name} is over {MAX_COVER_BYTES >> 20} MB; the book has no cover"]
            data = path.read_bytes()
        except OSError as exc:
            return None, [f"{name} cannot be read ({exc.strerror or exc}); the book has no cover"]
        media_type = None
    elif metadata.cover:
        path, name, data, media_type = None, "the source document's cover", metadata.cover, metadata.cover_media_type
    else:
        return None, []
    image, notes = embeddable(data, media_type, name)
    if image is None:
        return None, notes
    notes += acx_notes(image, name)
    if path is not None and image.data is data:  # a JPEG or PNG file as given: embed it from where it is
        return path, notes
    suffix = ".jpg" if image.format == "JPEG" else ".png"
    target = work_dir / f"{hashlib.sha256(image.data).hexdigest()}{suffix}"
    try:
        if not target.is_file():
            write_bytes(target, image.data)
    except OSError as exc:
        return None, [*notes, f"{name} could not be stored in {work_dir} ({exc.strerror or exc}); the book has no cover"]
    return target, notes


def acx_notes(image: _Image, name: str) -> list[str]:
    """Warnings where the image misses ACX's cover rules (square, at least 2400x2400 pixels)."""
    notes = []
    if min(image.width, image.height) < ACX_MIN_SIDE_PX:
        notes.append(
            f"{name} is {image.width}x{image.height} pixels; ACX asks for at least "
            f"{ACX_MIN_SIDE_PX}x{ACX_MIN_SIDE_PX}"
        )
    if image.width != image.height:
        notes.append(f"{name} is not square ({image.width}x{image.height}); audiobook stores ask for a square cover")
    return notes


def embeddable(data: bytes, media_type: str | None, name: str) -> tuple[_Image | None, list[str]]:
    """`data` as a JPEG or PNG to embed, converting or extracting where needed; or None and why."""
    if _looks_like_svg(data, media_type):
        embedded = _image_in_svg(data)
        if embedded is None:
            return None, [
                f"{name} is an SVG without an embedded JPEG or PNG image; it cannot be converted here, so the "
                "book has no cover (convert it to a JPEG or PNG of at least 2400x2400 pixels)"
            ]
        image, why = _raster(embedded)
        if image is None:
            return None, [f"{name} is an SVG whose embedded image cannot be read ({why}); the book has no cover"]
        return image, [f"{name} is an SVG; the JPEG or PNG image inside it is used"]
    image, why = _raster(data)
    if image is None:
        return None, [f"{name} cannot be read as an image ({why}); the book has no cover"]
    if image.data is not data:
        return image, [f"{name} is not a JPEG or PNG; it was converted to JPEG"]
    return image, []


def _raster(data: bytes) -> tuple[_Image | None, str]:
    """A raster image: JPEG/PNG as they are, any other format Pillow reads as a JPEG; or (None, why)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # refuse huge pixel counts
            with Image.open(io.BytesIO(data)) as img:
                fmt, width, height = img.format, img.width, img.height
                if fmt in ("JPEG", "PNG"):
                    img.load()  # a truncated file fails here rather than in the encoder
                    return _Image(data, fmt, width, height), ""
                rgb = img.convert("RGBA")
                flat = Image.new("RGB", rgb.size, "white")
                flat.paste(rgb, mask=rgb.getchannel("A"))
                out = io.BytesIO()
                flat.save(out, "JPEG", quality=92)
                return _Image(out.getvalue(), "JPEG", width, height), ""
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        return None, str(exc).split(". ")[0] if str(exc) else type(exc).__name__
    except Exception as exc:  # Pillow raises many kinds (OSError, ValueError, SyntaxError...) for damaged files
        return None, str(exc) or type(exc).__name__


def _looks_like_svg(data: bytes, media_type: str | None) -> bool:
    if media_type and "svg" in media_type.lower():
        return True
    head = data[:2048].lstrip().lower()
    return head.startswith((b"<svg", b"<?xml", b"<!doctype svg")) and b"<svg" in data[:65536].lower()


def _image_in_svg(data: bytes) -> bytes | None:
    """The largest base64 JPEG or PNG an SVG embeds in an `<image>` (href or xlink:href), or None."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    found: list[bytes] = []
    for element in root.iter("{*}image"):
        for attr, value in element.attrib.items():
            if not str(attr).endswith("href") or not (m := _DATA_URI.match(str(value))):
                continue
            try:
                found.append(base64.b64decode("".join(m.group(2).split()), validate=True))
            except (binascii.Error, ValueError):
                continue
    return max(found, key=len) if found else None
