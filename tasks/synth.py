"""Synthesis of chunks through the content-addressed cache, with take checks and bounded retries.

    synthesize_chunk(chunk, job) -> ChunkResult      (a cache hit costs a checksum, nothing more)
    synthesize_batch(chunks, job) -> BatchResult     (what one Prefect task does)

Retries: a TransientEngineError is retried here a few times with back-off; when those run out it is
raised, and the Prefect task's own retries run the batch again (chunks done meanwhile are cache hits).
Any other EngineError is recorded as a failure of that chunk; the other chunks of the batch go on.

Take checks: a clip much longer or shorter than its text warrants, near-silent or clipped is re-rolled
with a seed derived from the job's seed (bounded by job.max_takes); the last take is kept and named in
the report when none passes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tasks.cache import AudioCache
from tasks.engines import get_engine
from tasks.engines.base import Clip
from tasks.errors import EngineError, TransientEngineError
from tasks.plan import CHARS_PER_SECOND, Chunk, SynthJob

TRANSIENT_TRIES = 3
BACKOFF_S = 0.05


@dataclass(frozen=True)
class ChunkResult:
    key: str
    path: str
    cached: bool
    engine_seconds: float = 0.0
    rerolls: int = 0
    bad_take: str | None = None  # why the kept take failed its checks, when every take failed
    retries: int = 0


@dataclass(frozen=True)
class ChunkFailure:
    chunk: Chunk
    error: str


@dataclass
class BatchResult:
    results: dict[str, ChunkResult] = field(default_factory=dict)
    failures: list[ChunkFailure] = field(default_factory=list)


def chunk_cache(job: SynthJob) -> AudioCache:
    return AudioCache(Path(job.cache_dir) / "chunks", ".flac")


def derive_seed(seed: int, take: int) -> int:
    """The seed of re-roll number `take` (0 is the job's own seed)."""
    if take == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}/take{take}".encode()).digest()[:4], "little")


def check_take(clip: Clip, text: str) -> str | None:
    """Why a take is bad, or None. Bounds are loose on purpose: they catch failures, not style."""
    samples = clip.samples
    duration = clip.duration_s
    expected = max(len(text) / CHARS_PER_SECOND, 0.3)
    if duration < 0.05 or not np.isfinite(samples).all():
        return "empty or invalid audio"
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    if rms < 10 ** (-55 / 20):
        return f"near-silent (RMS {20 * np.log10(max(rms, 1e-12)):.0f} dBFS)"
    if duration > 3.0 * expected + 3.0:
        return f"too long: {duration:.1f} s for {len(text)} characters (expected about {expected:.1f} s)"
    if duration < expected / 4.0:
        return f"too short: {duration:.1f} s for {len(text)} characters (expected about {expected:.1f} s)"
    clipped = float(np.mean(np.abs(samples) >= 0.999))
    if clipped > 0.002:
        return f"clipped ({clipped:.1%} of samples at full scale)"
    return None


def _synthesize_with_retries(chunk: Chunk, job: SynthJob, seed: int) -> tuple[Clip, int]:
    engine = get_engine(job.engine)
    for attempt in range(TRANSIENT_TRIES):
        try:
            return engine.synthesize(chunk.text, job.voice, job.settings, seed, voices_dir=job.voices_dir), attempt
        except TransientEngineError:
            if attempt == TRANSIENT_TRIES - 1:
                raise
            time.sleep(BACKOFF_S * 2**attempt)
    raise AssertionError("unreachable")


def cached_result(chunk: Chunk, cache: AudioCache) -> ChunkResult | None:
    """The chunk's result from the cache, or None when it must be synthesised."""
    hit = cache.lookup(chunk.key)
    if hit is None:
        return None
    meta = cache.meta(chunk.key)
    return ChunkResult(chunk.key, str(hit), True, rerolls=int(meta.get("rerolls", 0)), bad_take=meta.get("bad_take"))


def split_cached(chunks: tuple[Chunk, ...], job: SynthJob) -> tuple[dict[str, ChunkResult], list[Chunk]]:
    """(results of the chunks already cached, the chunks still to synthesise), so that an unchanged
    book submits no synthesis task at all."""
    cache = chunk_cache(job)
    hits: dict[str, ChunkResult] = {}
    missing: list[Chunk] = []
    for chunk in chunks:
        if chunk.key in hits:
            continue
        result = cached_result(chunk, cache)
        if result is None:
            missing.append(chunk)
        else:
            hits[chunk.key] = result
    return hits, missing


@contextlib.contextmanager
def engine_slot(engine: str) -> Iterator[None]:
    """One synthesis at a time per engine in a process (an engine holds one model on one device), so
    the engine time measured inside is the engine's, not time spent waiting for it."""
    with _ENGINE_LOCKS_GUARD:
        lock = _ENGINE_LOCKS.setdefault(engine, threading.Lock())
    with lock:
        yield


_ENGINE_LOCKS: dict[str, threading.Lock] = {}
_ENGINE_LOCKS_GUARD = threading.Lock()


def synthesize_chunk(chunk: Chunk, job: SynthJob) -> ChunkResult:
    """The audio file for `chunk`: from the cache when present and intact, else synthesised and stored."""
    cache = chunk_cache(job)
    hit = cached_result(chunk, cache)
    if hit is not None:
        return hit
    with engine_slot(job.engine):
        return _synthesize_and_store(chunk, job, cache)


def _synthesize_and_store(chunk: Chunk, job: SynthJob, cache: AudioCache) -> ChunkResult:
    started = time.perf_counter()
    retries = 0
    problem: str | None = None
    clip: Clip | None = None
    takes = max(job.max_takes, 1)
    for take in range(takes):
        clip, tries = _synthesize_with_retries(chunk, job, derive_seed(job.seed, take))
        retries += tries
        problem = check_take(clip, chunk.text)
        if problem is None:
            break
    assert clip is not None
    rerolls = take
    engine_seconds = time.perf_counter() - started
    path = cache.store(chunk.key, clip.samples, clip.sample_rate_hz, rerolls=rerolls, bad_take=problem,
                       engine_seconds=round(engine_seconds, 3), worker_pid=os.getpid())
    return ChunkResult(chunk.key, str(path), False, engine_seconds, rerolls, problem, retries)


def synthesize_batch(chunks: list[Chunk], job: SynthJob) -> BatchResult:
    """Synthesise a batch. Permanent failures are collected; every chunk gets its own tries, and a
    transient fault that outlived them is raised after the rest of the batch is done (and cached), so
    the task's retry runs only what is still missing."""
    out = BatchResult()
    transient: list[str] = []
    for chunk in chunks:
        if chunk.key in out.results:
            continue
        try:
            out.results[chunk.key] = synthesize_chunk(chunk, job)
        except TransientEngineError as exc:
            transient.append(f"{chunk.label}: {exc}")
        except EngineError as exc:
            out.failures.append(ChunkFailure(chunk, str(exc)))
    if transient:
        more = f" (and {len(transient) - 1} more)" if len(transient) > 1 else ""
        raise TransientEngineError(f"{transient[0]}{more}")
    return out


def batch_chunks(chunks: tuple[Chunk, ...], *, max_chunks: int = 16, max_chars: int = 2400) -> list[list[Chunk]]:
    """Group chunks into task-sized batches (about 3 minutes of speech at most), in reading order."""
    batches: list[list[Chunk]] = []
    current: list[Chunk] = []
    size = 0
    for chunk in chunks:
        if current and (len(current) >= max_chunks or size + len(chunk.text) > max_chars):
            batches.append(current)
            current, size = [], 0
        current.append(chunk)
        size += len(chunk.text)
    if current:
        batches.append(current)
    return batches
