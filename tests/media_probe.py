"""Reading back what tasks.encode wrote, for the tests: an M4B's chapters in both chapter formats,
a file's playing time, and its loudness as ffmpeg measures it (independent of tasks.audio.levels)."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Any

import mutagen
from mutagen.mp4 import MP4, Atoms

from tasks.encode import _run_ffmpeg


def read_m4b_chapters(path: Path) -> list[tuple[str, float]]:
    """(title, start in seconds) of each chapter atom in an M4B/MP4 file; [] when it has none."""
    chapters = MP4(str(path)).chapters
    if chapters is None:
        return []
    return [(str(c.title), float(c.start)) for c in chapters]


def m4b_chapter_formats(path: Path) -> dict[str, int]:
    """How many chapters each of the two chapter formats in an MP4 holds (0 when absent): "nero", the
    `moov/udta/chpl` atom (mutagen, VLC, Android players), and "quicktime", a text track that the audio
    track's `tref/chap` names (Apple Books, iTunes, QuickTime). ffmpeg's ipod muxer writes both."""
    with open(path, "rb") as fh:
        atoms = Atoms(fh)

        def body(atom: Any) -> bytes:
            fh.seek(atom.offset + 8)
            return fh.read(atom.length - 8)

        moov = atoms[b"moov"]
        nero = 0
        for atom in moov.findall(b"udta"):
            for chpl in atom.findall(b"chpl"):
                data = body(chpl)  # version, flags, 4 reserved bytes (version 1), the count
                nero = data[8] if data[0] == 1 else data[4]
        tracks: dict[int, Any] = {}
        chapter_ids: set[int] = set()
        for trak in moov.findall(b"trak"):
            tkhd = body(next(trak.findall(b"tkhd")))
            tracks[struct.unpack(">I", tkhd[20:24] if tkhd[0] == 1 else tkhd[12:16])[0]] = trak
            for tref in trak.findall(b"tref"):
                data, pos = body(tref), 0
                while pos + 8 <= len(data):
                    size, kind = struct.unpack(">I4s", data[pos:pos + 8])
                    if kind == b"chap":
                        chapter_ids.update(struct.unpack(f">{(size - 8) // 4}I", data[pos + 8:pos + size]))
                    pos += max(size, 8)
        quicktime = 0
        for track_id in chapter_ids & tracks.keys():
            mdia = next(tracks[track_id].findall(b"mdia"))
            if body(next(mdia.findall(b"hdlr")))[8:12] != b"text":
                continue
            stsz = body(mdia[b"minf", b"stbl", b"stsz"])
            quicktime = struct.unpack(">I", stsz[8:12])[0]
    return {"nero": nero, "quicktime": quicktime}


def media_duration_s(path: Path) -> float:
    """Playing time in seconds of an audio file mutagen understands (MP3, M4B, ...)."""
    f = mutagen.File(str(path))
    if f is None or f.info is None:
        raise AssertionError(f"cannot read the duration of {path}: unknown format")
    return float(f.info.length)


_EBUR_I = re.compile(r"Integrated loudness:\s*\n\s*I:\s*(-?[\d.]+|-inf)\s*LUFS")
_EBUR_PEAK = re.compile(r"Sample peak:\s*\n\s*Peak:\s*(-?[\d.]+|-inf)\s*dBFS")
_ASTATS = r"\[Parsed_astats[^\]]*\]\s*{key}:\s*(-?[\d.]+|-?inf)"


def measure_file_loudness(path: Path) -> dict[str, float]:
    """Loudness of an encoded file as ffmpeg measures it (decoded, all channels).

    Runs `astats` and `ebur128=peak=sample` in one pass and returns `lufs` (integrated, BS.1770),
    `rms_dbfs` and `peak_dbfs` (astats, overall) and `sample_peak_dbfs` (ebur128).
    """
    stderr = _run_ffmpeg(
        [
            "-loglevel",
            "info",
            "-nostats",
            "-i",
            str(path),
            "-map",
            "0:a:0",
            "-af",
            "astats=measure_perchannel=none,ebur128=peak=sample",
            "-f",
            "null",
            "-",
        ],
        what=f"measure {Path(path).name}",
        output=Path(os.devnull),
    )

    def num(text: str) -> float:
        return float(text)  # float() reads "-inf" too

    def astat(key: str) -> float:
        found = re.findall(_ASTATS.format(key=re.escape(key)), stderr)
        if not found:
            raise AssertionError(f"ffmpeg astats gave no '{key}' for {path}")
        return num(found[-1])

    lufs = _EBUR_I.findall(stderr)
    peak = _EBUR_PEAK.findall(stderr)
    if not lufs or not peak:
        raise AssertionError(f"ffmpeg ebur128 gave no summary for {path}")
    return {
        "lufs": num(lufs[-1]),
        "rms_dbfs": astat("RMS level dB"),
        "peak_dbfs": astat("Peak level dB"),
        "sample_peak_dbfs": num(peak[-1]),
    }
