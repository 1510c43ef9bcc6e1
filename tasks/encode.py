"""Encode chapter WAVs into the deliverables: one MP3 per chapter and one chaptered M4B.

Plain functions over the ffmpeg binary (subprocess) and mutagen; no Prefect. Every output is
written to a hidden temp name in its own folder and renamed into place when complete, so a crash or a
full disk never leaves a half file under the final name.

- MP3: libmp3lame CBR 192 kbps, 44.1 kHz, channels as given (mono stays mono); ID3v2.4 tags and
  cover are written with mutagen after encoding.
- M4B: the chapter WAVs joined with ffmpeg's concat demuxer (no re-decode of a filter graph), AAC
  (64 kbps default, ffmpeg's `fast` AAC coder: *measured* on Piper speech at 64k mono, the default
  `twoloop` coder distorted an onset to +1.3 dBFS peaks from a -3.5 dBFS input with 20 dB SNR, while
  `fast` kept peaks at -3.4 dBFS with 30 dB SNR) in an MP4 container (`-f ipod`), chapters and tags from an FFMETADATA file given as
  an input (`-map_metadata`/`-map_chapters`), the cover as an attached picture.
"""

from __future__ import annotations

import errno
import functools
import io
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import soundfile as sf

from tasks.atomic import atomic_path
from tasks.errors import AudiobookError, DependencyError, SourceError, os_error_from_text, output_error

__all__ = [
    "BookTags",
    "encode_m4b",
    "encode_mp3",
    "ffmpeg_exe",
]

MP3_BITRATE = "192k"  # ACX: CBR 192 kbps or more
MP3_SAMPLE_RATE_HZ = 44100
_STDERR_TAIL_LINES = 15


@dataclass(frozen=True)
class BookTags:
    """Book-level tags written into every output file."""

    title: str
    author: str
    narrator: str | None = None
    year: str | None = None
    genre: str | None = "Audiobook"
    description: str | None = None
    language: str | None = None


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: a system `ffmpeg` on PATH, else the imageio-ffmpeg wheel's binary."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        raise DependencyError(
            f"ffmpeg is needed to encode MP3 and M4B files but was not found ({exc})",
            fix="pip install imageio-ffmpeg, or install ffmpeg (e.g. apt-get install ffmpeg)",
        ) from exc


def _run_ffmpeg(args: Sequence[str], *, what: str, output: Path) -> str:
    """Run ffmpeg; return stderr. A failure raises OutputError (disk full, read-only) or AudiobookError."""
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-y", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-_STDERR_TAIL_LINES:])
        os_err = os_error_from_text(tail)
        if os_err.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT) or (
            os_err.errno == errno.EACCES and output.name in tail
        ):
            raise output_error(os_err, output.parent)
        raise AudiobookError(f"ffmpeg failed to {what} (exit {proc.returncode}):\n{tail}")
    return proc.stderr


def _cover_mime(cover: Path) -> str:
    try:
        with open(cover, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise SourceError(
            f"cannot read the cover image: {exc.strerror}",
            file=cover,
            fix="check the cover path in the manifest",
        ) from exc
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    raise SourceError("the cover is neither JPEG nor PNG", file=cover, fix="convert the cover to JPEG or PNG")


def _publish(write: Callable[[Path], None], out: Path) -> Path:
    """Call write(tmp) on a temp file beside `out` (same extension, for ffmpeg), then rename it onto out
    (tasks.atomic); on any failure the temp file is removed, and OS errors are mapped."""
    out = Path(out)
    try:
        with atomic_path(out, suffix=out.suffix) as tmp:
            write(tmp)
    except OSError as exc:
        raise output_error(exc, out.parent) from exc
    return out


def _check_input(path: Path) -> None:
    if not Path(path).is_file():
        raise AudiobookError(
            f"chapter audio {path} is missing (it should have been rendered before encoding)"
        )


def _wav_info(path: Path) -> sf._SoundFileInfo:
    _check_input(path)
    try:
        return sf.info(str(path))
    except sf.LibsndfileError as exc:
        raise AudiobookError(f"chapter audio {path} is unreadable: {exc}") from exc


def encode_mp3(
    wav: Path,
    out: Path,
    *,
    tags: BookTags,
    chapter_title: str,
    track: int,
    total_tracks: int,
    cover: Path | None = None,
    until_s: float | None = None,
    fade_out_ms: int = 0,
) -> Path:
    """Encode one chapter WAV to MP3 (CBR 192 kbps, 44.1 kHz) with ID3v2.4 tags and cover. Returns out.

    With `until_s`, only the WAV's first `until_s` seconds are encoded (cut at that sample), the last
    `fade_out_ms` of them faded out: a retail sample.
    """
    from mutagen.id3 import (
        APIC,
        COMM,
        ID3,
        TALB,
        TCOM,
        TCON,
        TDRC,
        TIT2,
        TLAN,
        TPE1,
        TPE2,
        TRCK,
        PictureType,
    )

    _check_input(wav)
    cover_mime = _cover_mime(cover) if cover is not None else None
    trim: list[str] = []
    if until_s is not None:
        rate = _wav_info(wav).samplerate
        end = max(1, round(until_s * rate))
        fade = min(end, round(fade_out_ms * rate / 1000))
        trim = ["-af", f"atrim=end_sample={end},afade=t=out:ss={end - fade}:ns={fade}" if fade else f"atrim=end_sample={end}"]

    def write(tmp: Path) -> None:
        # ffmpeg writes the audio to a side file; the final file is the ID3 tag followed by that audio,
        # copied in blocks (tagging the finished file would hold a whole chapter's MP3 in memory).
        audio = tmp.parent / f"{tmp.name}.audio"
        try:
            _encode_and_tag(tmp, audio)
        finally:
            audio.unlink(missing_ok=True)

    def _encode_and_tag(tmp: Path, audio: Path) -> None:
        _run_ffmpeg(
            [
                "-loglevel",
                "error",
                "-i",
                str(wav),
                "-map",
                "0:a:0",
                "-map_metadata",
                "-1",
                *trim,
                "-c:a",
                "libmp3lame",
                "-b:a",
                MP3_BITRATE,
                "-ar",
                str(MP3_SAMPLE_RATE_HZ),
                "-write_id3v2",
                "0",
                "-f",
                "mp3",
                str(audio),
            ],
            what=f"encode {wav.name} to MP3",
            output=audio,
        )
        id3 = ID3()
        id3.add(TIT2(encoding=3, text=chapter_title))
        id3.add(TPE1(encoding=3, text=tags.author))
        id3.add(TPE2(encoding=3, text=tags.author))
        id3.add(TALB(encoding=3, text=tags.title))
        id3.add(TRCK(encoding=3, text=f"{track}/{total_tracks}"))
        if tags.narrator:
            id3.add(TCOM(encoding=3, text=tags.narrator))
        if tags.genre:
            id3.add(TCON(encoding=3, text=tags.genre))
        if tags.year:
            id3.add(TDRC(encoding=3, text=tags.year))
        if tags.description:
            id3.add(COMM(encoding=3, lang="eng", desc="", text=tags.description))
        if tags.language:
            id3.add(TLAN(encoding=3, text=tags.language))
        if cover is not None and cover_mime is not None:
            id3.add(
                APIC(
                    encoding=3,
                    mime=cover_mime,
                    type=PictureType.COVER_FRONT,
                    desc="Cover",
                    data=Path(cover).read_bytes(),
                )
            )
        tag = io.BytesIO()
        id3.save(tag, v2_version=4)
        with open(tmp, "wb") as final, open(audio, "rb") as source:
            final.write(tag.getvalue())
            shutil.copyfileobj(source, final, 1 << 20)

    return _publish(write, Path(out))


_FFMETA_SPECIAL = re.compile(r"([=;#\\\n])")


def _ffmeta_escape(value: str) -> str:
    r"""Escape a value for an FFMETADATA file: `= ; # \` and newline get a backslash before them."""
    return _FFMETA_SPECIAL.sub(r"\\\1", value.replace("\r\n", "\n").replace("\r", "\n"))


def _chapter_bounds_ms(chapter_wavs: Sequence[Path]) -> list[tuple[int, int]]:
    """(start, end) of each chapter in ms, from exact sample counts (no drift from per-file rounding)."""
    bounds: list[tuple[int, int]] = []
    t = Fraction(0)
    for wav in chapter_wavs:
        info = _wav_info(wav)
        start = t
        t += Fraction(info.frames, info.samplerate)
        bounds.append((round(start * 1000), round(t * 1000)))
    return bounds


def _ffmetadata(tags: BookTags, titles: Sequence[str], bounds: Sequence[tuple[int, int]]) -> str:
    fields = {
        "title": tags.title,
        "artist": tags.author,
        "album_artist": tags.author,
        "album": tags.title,
        "composer": tags.narrator,
        "genre": tags.genre,
        "date": tags.year,
        "comment": tags.description,
        "description": tags.description,
        "media_type": "2",  # MP4 stik 2 = audiobook
    }
    lines = [";FFMETADATA1"]
    lines += [f"{key}={_ffmeta_escape(value)}" for key, value in fields.items() if value]
    for title, (start, end) in zip(titles, bounds, strict=True):
        lines += [
            "",
            "[CHAPTER]",
            "TIMEBASE=1/1000",
            f"START={start}",
            f"END={end}",
            f"title={_ffmeta_escape(title)}",
        ]
    return "\n".join(lines) + "\n"


def _concat_list(chapter_wavs: Sequence[Path]) -> str:
    lines = ["ffconcat version 1.0"]
    for wav in chapter_wavs:
        quoted = str(Path(wav).resolve()).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
    return "\n".join(lines) + "\n"


def encode_m4b(
    chapter_wavs: Sequence[Path],
    chapter_titles: Sequence[str],
    out: Path,
    *,
    tags: BookTags,
    cover: Path | None = None,
    bitrate: str = "64k",
) -> Path:
    """Join chapter WAVs into one M4B: AAC at `bitrate`, chapter atoms, tags and cover. Returns out.

    All WAVs must share one sample rate and channel count (the concat demuxer copies their packets).
    """
    if not chapter_wavs:
        raise ValueError("encode_m4b needs at least one chapter")
    if len(chapter_wavs) != len(chapter_titles):
        raise ValueError(f"{len(chapter_wavs)} chapter files but {len(chapter_titles)} titles")
    formats = {(i.samplerate, i.channels) for i in (_wav_info(w) for w in chapter_wavs)}
    if len(formats) != 1:
        raise AudiobookError(f"chapter WAVs differ in sample rate or channels: {sorted(formats)}")
    cover_mime = _cover_mime(cover) if cover is not None else None
    bounds = _chapter_bounds_ms(chapter_wavs)

    def write(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="m4b-") as work:
            listing = Path(work, "chapters.ffconcat")
            listing.write_text(_concat_list(chapter_wavs), encoding="utf-8")
            meta = Path(work, "metadata.ffmeta")
            meta.write_text(_ffmetadata(tags, chapter_titles, bounds), encoding="utf-8")
            args = ["-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-i", str(meta)]
            if cover is not None:
                args += ["-i", str(cover)]
            args += [
                "-map",
                "0:a:0",
                "-map_metadata",
                "1",
                "-map_chapters",
                "1",
                "-c:a",
                "aac",
                "-aac_coder",
                "fast",
                "-b:a",
                bitrate,
            ]
            if cover is not None and cover_mime is not None:
                args += ["-map", "2:v:0", "-c:v", "copy", "-disposition:v:0", "attached_pic"]
            args += ["-movflags", "+faststart", "-f", "ipod", str(tmp)]
            _run_ffmpeg(args, what=f"encode {out.name}", output=tmp)

    return _publish(write, Path(out))
