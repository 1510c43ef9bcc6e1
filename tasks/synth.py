"""Synthesis of chunks through the content-addressed cache, with take checks and bounded retries.

    synthesize_chunk(chunk, job) -> ChunkResult      (a cache hit costs a checksum, nothing more)
    synthesize_batch(chunks, job) -> BatchResult     (what one Prefect task does)
    batch_chunks(chunks, capacity=...)               (how the flow groups chunks into tasks)

A task hands the engine every chunk it still needs in one `synthesize_many` call (engines that cannot
batch get a loop over `synthesize`, see tasks.engines.base); re-rolls and retries go back to the engine
as one call per round. A chunk's audio does not depend on the chunks that share its call.

Retries: a TransientEngineError is retried here a few times per chunk with back-off; when those run out
it is raised, and the Prefect task's own retries run the batch again (chunks done meanwhile are cache
hits). Any other EngineError is recorded as a failure of that chunk; the other chunks of the batch go on.

Where the audio goes: a task running in the renderer's own process (threads) stores each chunk in the
renderer's content-addressed cache as soon as it is spoken, as a plain call does. A task on any other
worker (a Dask or process-pool worker, another machine) writes nothing to disk: it returns each chunk's
audio as FLAC bytes in its ChunkResult (`audio`), and the renderer stores them with `receive_batch` as the
task's result arrives. A worker that happens to see the renderer's cache folder still serves verified
hits from it, but no result depends on a shared disk.

Take checks: a clip much longer or shorter than its text warrants, near-silent or clipped is re-rolled
with a seed derived from the job's seed (bounded by job.max_takes); the last take is kept and named in
the report when none passes. With `job.verify` on, a take that passes is also heard by speech recognition
(tasks.verify): "reroll" re-rolls a take with words missing or added, "flag" keeps it; the kept take's
verdict goes into the chunk's cache metadata.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from tasks.cache import AudioCache
from tasks.engines import get_engine
from tasks.engines.base import BatchEngine, Clip, SynthRequest, batch_capacity, synthesize_many
from tasks.errors import EngineError, TransientEngineError
from tasks.plan import CHARS_PER_SECOND, Chunk, SynthJob, speakable
from tasks.verify import judge_take
from tasks.workers import check_job

TRANSIENT_TRIES = 3
BACKOFF_S = 0.05


@dataclass(frozen=True)
class ChunkResult:
    key: str
    path: str  # the audio in the renderer's cache; "" while it still travels in `audio`
    cached: bool
    engine_seconds: float = 0.0
    rerolls: int = 0
    bad_take: str | None = None  # why the kept take failed its checks, when every take failed
    retries: int = 0
    audio: bytes | None = None  # FLAC bytes from a worker outside the renderer's process (see receive_batch)
    worker_pid: int | None = None  # the process that spoke it (recorded in the cache's sidecar)
    verify: dict[str, Any] | None = None  # the kept take's speech-recognition verdict (tasks.verify)
    heard_rerolls: int = 0  # re-rolls because words were missing or added


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


def renderer_id() -> str:
    """Who this process is, for `synthesize_batch(..., renderer=...)`: host and process id."""
    return f"{socket.gethostname()}/{os.getpid()}"


def flac_bytes(samples: np.ndarray, sample_rate_hz: int) -> bytes:
    """A clip as the cache stores it (FLAC, 16-bit), in memory."""
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(samples, dtype=np.float32), sample_rate_hz, subtype="PCM_16", format="FLAC")
    return buffer.getvalue()


def receive_batch(batch: BatchResult, job: SynthJob) -> BatchResult:
    """Store the audio a worker returned (ChunkResult.audio) into the renderer's cache, atomically, and
    drop the bytes: the results keep only paths. A chunk already cached here (a worker that shares this
    disk, another render) is not written again."""
    cache = chunk_cache(job)
    for key, result in list(batch.results.items()):
        if result.audio is None:
            continue
        hit = cache.lookup(key)
        if hit is None:
            meta = {"rerolls": result.rerolls, "bad_take": result.bad_take,
                    "engine_seconds": round(result.engine_seconds, 3), "worker_pid": result.worker_pid,
                    "verify": result.verify, "heard_rerolls": result.heard_rerolls}
            hit = cache.store_bytes(key, result.audio, **meta)
        batch.results[key] = replace(result, path=str(hit), audio=None)
    return batch


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


def cached_result(chunk: Chunk, cache: AudioCache) -> ChunkResult | None:
    """The chunk's result from the cache, or None when it must be synthesised. An entry that holds no
    audio (an empty take stored by an older version) or that cannot be read is deleted: the chunk is
    rendered again instead of failing the book at assembly."""
    found = cache.entry(chunk.key)  # one read of the sidecar; empty or damaged entries are deleted there
    if found is None:
        return None
    hit, meta = found
    return ChunkResult(chunk.key, str(hit), True, rerolls=int(meta.get("rerolls", 0)), bad_take=meta.get("bad_take"),
                       verify=meta.get("verify"), heard_rerolls=int(meta.get("heard_rerolls", 0)))


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


def _readable(path: Path, frames: int) -> bool:
    """Whether a cached take holds audio that reads back: its header parses and has `frames` frames
    (-1: not recorded), more than none."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError):
        return False
    return info.frames > 0 and frames in (-1, info.frames)


def _no_audio(clip: Clip) -> bool:
    return len(clip.samples) == 0 or not np.isfinite(clip.samples).all()


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
    """The audio file for `chunk`: from the cache when present and intact, else synthesised and stored.
    Raises the chunk's EngineError when it cannot be rendered."""
    out = synthesize_batch([chunk], job)
    if out.failures:
        raise EngineError(out.failures[0].error)
    return out.results[chunk.key]


@dataclass
class _Takes:
    """One chunk's progress through its takes."""

    take: int = 0
    attempt: int = 0  # transient faults of the current take
    retries: int = 0
    seconds: float = 0.0
    heard_rerolls: int = 0


def _render(chunks: list[Chunk], job: SynthJob, cache: AudioCache, out: BatchResult, *, ship: bool = False) -> list[str]:
    """Synthesise `chunks` in rounds of one engine call each (first takes, then re-rolls and retries of
    what is left); store each finished chunk (or, with `ship`, put its FLAC bytes in its result).
    Returns the transient faults that outlived their tries."""
    engine = get_engine(job.engine)
    takes = max(job.max_takes, 1)
    state = {c.key: _Takes() for c in chunks}
    transient: list[str] = []
    # A batching engine gets every chunk of the task in one call (it halves the batch itself when memory
    # runs out). Any other engine gets one chunk per call, each stored as soon as it is spoken, so a crash
    # mid-task loses nothing already rendered.
    step = len(chunks) if isinstance(engine, BatchEngine) else 1
    queue = chunks
    while queue:
        pending, queue = queue[:step], queue[step:]
        requests = [SynthRequest(c.text, job.voice, job.settings, derive_seed(job.seed, state[c.key].take),
                                 job.voices_dir) for c in pending]
        started = time.perf_counter()
        try:
            outcomes = synthesize_many(engine, requests)
        except TransientEngineError as exc:  # the whole call: every chunk of it spends a try
            outcomes = [exc] * len(pending)
        elapsed = time.perf_counter() - started
        chars = sum(len(c.text) for c in pending) or 1
        again: list[Chunk] = []
        backoff = 0
        for chunk, outcome in zip(pending, outcomes, strict=True):
            st = state[chunk.key]
            st.seconds += elapsed * len(chunk.text) / chars  # the call's time, shared by text length
            if isinstance(outcome, TransientEngineError):
                st.attempt += 1
                if st.attempt >= TRANSIENT_TRIES:
                    transient.append(f"{chunk.label}: {outcome}")
                else:
                    st.retries += 1
                    backoff = max(backoff, st.attempt)
                    again.append(chunk)
                continue
            if isinstance(outcome, EngineError):
                out.failures.append(ChunkFailure(chunk, str(outcome)))
                continue
            st.attempt = 0
            problem = check_take(outcome, chunk.text)
            if _no_audio(outcome) and st.take + 1 >= takes:  # never stored: it would fail every later render
                out.failures.append(ChunkFailure(chunk, f"the engine gave no audio for {chunk.text[:80]!r} in "
                                                        f"{st.take + 1} takes"))
                continue
            verdict, unheard = judge_take(outcome.samples, outcome.sample_rate_hz, chunk.text, job.verify,
                                          job.verify_threshold) if problem is None else (None, None)
            problem = problem or unheard
            heard = verdict.as_meta() if verdict is not None else None
            if problem is None or st.take + 1 >= takes:
                if ship:
                    audio: bytes | None = flac_bytes(outcome.samples, outcome.sample_rate_hz)
                    path = ""
                else:
                    audio = None
                    stored = cache.store(chunk.key, outcome.samples, outcome.sample_rate_hz, rerolls=st.take,
                                         bad_take=problem, engine_seconds=round(st.seconds, 3),
                                         worker_pid=os.getpid(), verify=heard, heard_rerolls=st.heard_rerolls)
                    if not _readable(stored, len(outcome.samples)):
                        cache.evict(chunk.key)
                        out.failures.append(ChunkFailure(chunk, "the take did not read back from the cache"))
                        continue
                    path = str(stored)
                out.results[chunk.key] = ChunkResult(chunk.key, path, False, st.seconds, st.take, problem,
                                                     st.retries, audio, os.getpid(), heard, st.heard_rerolls)
            else:
                st.heard_rerolls += unheard is not None
                st.take += 1
                again.append(chunk)
        if backoff:
            time.sleep(BACKOFF_S * 2 ** (backoff - 1))
        queue = again + queue
    return transient


def synthesize_batch(chunks: list[Chunk], job: SynthJob, *, renderer: str | None = None) -> BatchResult:
    """Synthesise a batch. Permanent failures are collected; every chunk gets its own tries, and a
    transient fault that outlived them is raised after the rest of the batch is done (and cached), so
    the task's retry runs only what is still missing.

    `renderer` is the `renderer_id()` of the process that renders the book (None: this one). Run
    anywhere else, the batch writes nothing to disk and returns every chunk's audio as FLAC bytes;
    chunks finished before a transient fault are held in this process for the task's retry."""
    out = BatchResult()
    ship = renderer is not None and renderer != renderer_id()
    cache = chunk_cache(job)
    todo: list[Chunk] = []
    for chunk in chunks:
        if chunk.key in out.results or any(c.key == chunk.key for c in todo):
            continue
        if not speakable(chunk.text):  # never sent to an engine (plans leave such chunks out)
            out.failures.append(ChunkFailure(chunk, f"nothing to speak in {chunk.text[:40]!r} (no letters or digits)"))
            continue
        hit = _take_held(chunk.key) if ship else None
        if hit is None:
            hit = cached_result(chunk, cache)
            if hit is not None and ship:  # a cache this worker happens to see: send its bytes all the same
                hit = replace(hit, audio=Path(hit.path).read_bytes(), path="")
        if hit is None:
            todo.append(chunk)
        else:
            out.results[chunk.key] = hit
    transient: list[str] = []
    if todo:
        check_job(job)  # a worker that runs another engine version (precision) than the keys name refuses
        with engine_slot(job.engine):
            transient = _render(todo, job, cache, out, ship=ship)
    if transient:
        if ship:
            _hold(out.results.values())
        more = f" (and {len(transient) - 1} more)" if len(transient) > 1 else ""
        raise TransientEngineError(f"{transient[0]}{more}")
    return out


# Shipped chunks of a batch that then raised a transient fault: the Prefect task's retry runs in the same
# worker process and takes them from here instead of speaking them again. Bounded; oldest dropped first.
_HELD: OrderedDict[str, ChunkResult] = OrderedDict()
_HELD_MAX = 256
_HELD_LOCK = threading.Lock()


def _hold(results: Iterable[ChunkResult]) -> None:
    with _HELD_LOCK:
        for result in results:
            if result.audio is not None and not result.cached:
                _HELD[result.key] = result
        while len(_HELD) > _HELD_MAX:
            _HELD.popitem(last=False)


def _take_held(key: str) -> ChunkResult | None:
    with _HELD_LOCK:
        return _HELD.pop(key, None)


def engine_batch_size(job: SynthJob) -> int:
    """How many chunks the job's engine renders in one call (1 for engines that cannot batch)."""
    return batch_capacity(get_engine(job.engine), job.settings)


def batch_chunks(chunks: tuple[Chunk, ...], *, max_chunks: int = 16, max_chars: int = 2400,
                 capacity: int = 1) -> list[list[Chunk]]:
    """Group chunks into task-sized batches. For an engine that renders one chunk per call (capacity 1):
    about 3 minutes of speech at most, in reading order. For a batching engine: `capacity` chunks per
    task, sorted by length so that the chunks of one engine call finish together."""
    if capacity > 1:
        ordered = sorted(chunks, key=lambda c: len(c.text))
        return [ordered[i:i + capacity] for i in range(0, len(ordered), capacity)]
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
