"""tasks.synth with batching engines: one engine call per round, take checks, retries and the cache."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tasks import synth
from tasks.engines import register_engine, reset_engines
from tasks.engines.base import BatchEngine, Clip, SynthRequest, batch_capacity, synthesize_many
from tasks.engines.fake import FakeEngine
from tasks.errors import EngineError, TransientEngineError
from tasks.plan import Chunk, SynthJob


class BatchFake(FakeEngine):
    """The fake voice with a batch entry point: records each call's requests; per-text scripted faults."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[SynthRequest]] = []
        self.silent_seeds: set[int] = set()  # takes with these seeds come out silent (a bad take)
        self.transient_once: set[str] = set()  # texts whose first outcome is a transient fault
        self.whole_call_faults = 0  # the next calls that raise TransientEngineError for all

    def batch_capacity(self, settings: Mapping[str, Any]) -> int:
        return 4

    def synthesize_many(self, requests: Sequence[SynthRequest]) -> list[Clip | EngineError]:
        self.batches.append(list(requests))
        if self.whole_call_faults:
            self.whole_call_faults -= 1
            raise TransientEngineError("the device went away")
        out: list[Clip | EngineError] = []
        for r in requests:
            if r.text in self.transient_once:
                self.transient_once.discard(r.text)
                out.append(TransientEngineError("out of memory"))
            elif "broken" in r.text:
                out.append(EngineError("cannot say that"))
            else:
                clip = self.synthesize(r.text, r.voice, r.settings, r.seed)
                samples = np.zeros_like(clip.samples) if r.seed in self.silent_seeds else clip.samples
                out.append(Clip(samples, clip.sample_rate_hz))
        return out


@pytest.fixture
def batch_engine() -> Iterator[BatchFake]:
    engine = BatchFake()
    register_engine("batchfake", lambda: engine)
    yield engine
    reset_engines()


def chunk(i: int, text: str) -> Chunk:
    return Chunk(0, i, text, 300, hashlib.sha256(text.encode()).hexdigest())


def job(tmp_path: Path, name: str = "batchfake") -> SynthJob:
    return SynthJob(engine=name, voice="v", settings={}, seed=7, voices_dir=None, cache_dir=str(tmp_path))


TEXTS = ["The first sentence of the book.", "A second one.", "The third sentence is longer than both.",
         "Four.", "The fifth and last sentence."]


def test_a_task_hands_the_engine_all_its_chunks_in_one_call(batch_engine: BatchFake, tmp_path: Path) -> None:
    chunks = [chunk(i, t) for i, t in enumerate(TEXTS)]
    out = synth.synthesize_batch(chunks, job(tmp_path))
    assert [len(b) for b in batch_engine.batches] == [5]
    assert [r.text for r in batch_engine.batches[0]] == TEXTS and {r.seed for r in batch_engine.batches[0]} == {7}
    assert set(out.results) == {c.key for c in chunks} and not any(r.cached for r in out.results.values())
    assert all(r.engine_seconds > 0 for r in out.results.values())
    # Rendered again: all cache hits, no engine call; two evicted entries go back as one call of two.
    again = synth.synthesize_batch(chunks, job(tmp_path))
    assert all(r.cached for r in again.results.values()) and len(batch_engine.batches) == 1
    cache = synth.chunk_cache(job(tmp_path))
    cache.evict(chunks[1].key)
    cache.evict(chunks[3].key)
    synth.synthesize_batch(chunks, job(tmp_path))
    assert [r.text for r in batch_engine.batches[-1]] == [TEXTS[1], TEXTS[3]]


def test_rerolls_and_retries_go_back_as_one_call_per_round(batch_engine: BatchFake, tmp_path: Path) -> None:
    chunks = [chunk(i, t) for i, t in enumerate(TEXTS)]
    batch_engine.silent_seeds = {7}  # every first take is bad...
    batch_engine.transient_once = {TEXTS[2]}  # ...and one chunk's first call is an out-of-memory
    out = synth.synthesize_batch(chunks, job(tmp_path))
    second_seed = synth.derive_seed(7, 1)
    assert [len(b) for b in batch_engine.batches] == [5, 5, 1]
    assert {r.seed for r in batch_engine.batches[1] if r.text != TEXTS[2]} == {second_seed}
    assert [r.seed for r in batch_engine.batches[1] if r.text == TEXTS[2]] == [7]  # a retry keeps its take
    assert [r.text for r in batch_engine.batches[2]] == [TEXTS[2]]  # its own re-roll, in a third round
    assert all(out.results[c.key].rerolls == 1 and out.results[c.key].bad_take is None for c in chunks)
    assert out.results[chunks[2].key].retries == 1


def test_a_failing_chunk_is_recorded_and_a_whole_call_fault_is_retried(batch_engine: BatchFake,
                                                                       tmp_path: Path) -> None:
    chunks = [chunk(0, "Good words."), chunk(1, "broken words.")]
    batch_engine.whole_call_faults = 1
    out = synth.synthesize_batch(chunks, job(tmp_path))
    assert len(batch_engine.batches) == 2  # the fault, then the retry of both
    assert list(out.results) == [chunks[0].key] and out.results[chunks[0].key].retries == 1
    assert [f.chunk for f in out.failures] == [chunks[1]] and "cannot say" in out.failures[0].error
    batch_engine.whole_call_faults = 10
    with pytest.raises(TransientEngineError, match="went away"):
        synth.synthesize_batch([chunk(2, "Fresh words.")], job(tmp_path))
    assert len(batch_engine.batches) == 2 + synth.TRANSIENT_TRIES


def test_engines_that_cannot_batch_get_a_loop_and_capacity_one(tmp_path: Path) -> None:
    plain = FakeEngine(transient_failures=1)
    assert not isinstance(plain, BatchEngine) and batch_capacity(plain, {}) == 1
    outcomes = synthesize_many(plain, [SynthRequest("Hello.", "v", {}, 1), SynthRequest("There.", "v", {}, 2)])
    assert all(isinstance(o, TransientEngineError) for o in outcomes)  # each request's first call
    outcomes = synthesize_many(plain, [SynthRequest("Hello.", "v", {}, 1)])
    assert isinstance(outcomes[0], Clip) and np.abs(outcomes[0].samples).max() > 0
    assert batch_capacity(BatchFake(), {}) == 4


def test_batch_chunks_by_capacity_sorts_by_length(batch_engine: BatchFake, tmp_path: Path) -> None:
    chunks = tuple(chunk(i, t) for i, t in enumerate(TEXTS))
    assert synth.engine_batch_size(job(tmp_path)) == 4
    batches = synth.batch_chunks(chunks, capacity=4)
    assert [[c.text for c in b] for b in batches] == [sorted(TEXTS, key=len)[:4], sorted(TEXTS, key=len)[4:]]
    assert synth.batch_chunks(chunks) == [list(chunks)]  # capacity 1: reading order, as before
