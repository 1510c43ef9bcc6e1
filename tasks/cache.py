"""Content-addressed cache: one pure key function, files named by their key, atomic writes.

A key is sha256 over canonical JSON of everything that changes the output. The same key names the
cached file. Every entry is written to a temp file and renamed (tasks.atomic, without fsync: a torn
entry fails the checks below), with a sidecar that records the audio file's own sha256 and frame
count: an entry whose file is missing, truncated or altered, or that holds no audio, is a miss (and is
removed), never a hit.

    <cache>/chunks/ab/<key>.flac + <key>.json     one synthesised chunk (engine's own sample rate)
    <cache>/chapters/ab/<key>.wav + <key>.json    one assembled, normalised chapter (44.1 kHz)
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from tasks.atomic import atomic_path, write_bytes

# Bump when a change to the pipeline changes the audio of an unchanged input.
PIPELINE_VERSION = "2"  # 2: chunks hold the spoken form of the text (tasks/text)


def content_key(kind: str, **parts: Any) -> str:
    """sha256 hex of canonical JSON over `parts`, namespaced by `kind` and the pipeline version."""
    payload = json.dumps(
        {"kind": kind, "pipeline": PIPELINE_VERSION, **parts},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def chunk_key(
    *, text: str, voice_fingerprint: str, engine: str, engine_version: str, settings: Mapping[str, Any], seed: int
) -> str:
    """The content key of one synthesised chunk."""
    return content_key(
        "chunk", text=text, voice=voice_fingerprint, engine=engine, engine_version=engine_version,
        settings=dict(settings), seed=seed,
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def audio_header(data: bytes) -> tuple[int, int]:
    """(sample rate, frames) of an encoded file in memory: read from a FLAC stream's STREAMINFO block
    (the first, 34 bytes after "fLaC" and a 4-byte block header), else by libsndfile. Raises
    ValueError (or soundfile's error) on bytes that are not audio."""
    if data[:4] == b"fLaC" and len(data) >= 42 and data[4] & 0x7F == 0:  # block type 0: STREAMINFO
        bits = int.from_bytes(data[18:26], "big")  # rate (20 bits), channels-1 (3), bps-1 (5), frames (36)
        rate, frames = bits >> 44, bits & ((1 << 36) - 1)
        if rate > 0 and frames > 0:
            return rate, frames
    if data[:4] == b"fLaC":
        raise ValueError("a FLAC stream without a sample rate or frame count in its STREAMINFO")
    info = sf.info(io.BytesIO(data))
    return int(info.samplerate), int(info.frames)


@dataclass(frozen=True)
class AudioCache:
    """A folder of content-addressed audio files (`suffix` .flac or .wav)."""

    root: Path
    suffix: str = ".flac"

    def path_for(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{self.suffix}"

    def _sidecar(self, key: str) -> Path:
        return self.path_for(key).with_suffix(".json")

    def lookup(self, key: str) -> Path | None:
        """The verified file for `key`, or None (a damaged or empty entry is deleted). See `entry`."""
        found = self.entry(key)
        return found[0] if found is not None else None

    def entry(self, key: str) -> tuple[Path, dict[str, Any]] | None:
        """The verified file for `key` and its record (the sidecar, read once), or None; a damaged
        entry, or one recorded with no audio (an empty take an older version stored), is deleted.

        Fast path: the file's size and modification time equal those recorded when it was stored (any
        write changes them). Otherwise its sha256 must match the record (a copied cache), and the
        record is refreshed."""
        path, sidecar = self.path_for(key), self._sidecar(key)
        try:
            meta = json.loads(sidecar.read_text())
            stat = path.stat()
            if meta.get("key") != key:
                raise ValueError("foreign record")
            frames = meta.get("frames")
            if frames is None:  # a record from before frame counts were kept: the header says
                frames = sf.info(str(path)).frames
            if not isinstance(frames, int) or isinstance(frames, bool) or frames <= 0:
                raise ValueError("no audio")
            if stat.st_size == meta.get("size") and stat.st_mtime_ns == meta.get("mtime_ns"):
                return path, meta
            if file_sha256(path) != meta.get("sha256"):
                raise ValueError("checksum mismatch")
            meta.update(size=stat.st_size, mtime_ns=stat.st_mtime_ns)
            write_bytes(sidecar, json.dumps(meta, sort_keys=True).encode(), durable=False)
        except FileNotFoundError:
            if path.exists() or sidecar.exists():
                self.evict(key)
            return None
        except (OSError, ValueError, TypeError, AttributeError, RuntimeError, sf.LibsndfileError):
            self.evict(key)
            return None
        return path, meta

    def evict(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)
        self._sidecar(key).unlink(missing_ok=True)

    def store(self, key: str, samples: np.ndarray, sample_rate_hz: int, **meta: Any) -> Path:
        """Write audio for `key` atomically (file first, then the sidecar that makes it a hit)."""
        path = self.path_for(key)
        fmt = "FLAC" if self.suffix == ".flac" else "WAV"
        with atomic_path(path, durable=False) as tmp:
            sf.write(str(tmp), np.asarray(samples, dtype=np.float32), sample_rate_hz, subtype="PCM_16", format=fmt)
        stat = path.stat()
        record = {"key": key, "sha256": file_sha256(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                  "sample_rate_hz": sample_rate_hz, "frames": int(len(samples)), **meta}
        write_bytes(self._sidecar(key), json.dumps(record, sort_keys=True).encode(), durable=False)
        return path

    def store_bytes(self, key: str, data: bytes, **meta: Any) -> Path:
        """Store an encoded file (as `store` writes it, e.g. FLAC bytes a worker sent) for `key`:
        the file atomically, then the sidecar that makes it a hit. The bytes are checked (they must
        decode) and digested in memory: the file is written once and never read back."""
        sample_rate_hz, frames = audio_header(data)  # raises on bytes that are not audio, before any write
        path = self.path_for(key)
        write_bytes(path, data, durable=False)
        stat = path.stat()
        record = {"key": key, "sha256": hashlib.sha256(data).hexdigest(), "size": stat.st_size,
                  "mtime_ns": stat.st_mtime_ns, "sample_rate_hz": sample_rate_hz, "frames": frames, **meta}
        write_bytes(self._sidecar(key), json.dumps(record, sort_keys=True).encode(), durable=False)
        return path

    def adopt(self, key: str, **meta: Any) -> Path:
        """Make the finished file already written (atomically) at `path_for(key)` an entry: its sidecar."""
        path = self.path_for(key)
        info = sf.info(str(path))
        stat = path.stat()
        record = {"key": key, "sha256": file_sha256(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                  "sample_rate_hz": int(info.samplerate), "frames": int(info.frames), **meta}
        write_bytes(self._sidecar(key), json.dumps(record, sort_keys=True).encode(), durable=False)
        return path

    def meta(self, key: str) -> dict[str, Any]:
        try:
            data = json.loads(self._sidecar(key).read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}
