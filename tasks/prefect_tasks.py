"""Thin Prefect wrappers over the plain functions. The only module in tasks/ that imports Prefect.

Caching is ours (content-addressed files, see tasks.cache), so Prefect's own result caching and
persistence are off. Tasks return small records (paths and numbers); the one exception is a synthesis
task run outside the renderer's process, which returns its chunks' FLAC bytes (a few hundred KB each)
for the renderer to store: never kept in memory by Prefect (`cache_result_in_memory=False`), and
dropped by the flow as soon as they are stored.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import book, plan, synth, workers
from tasks.errors import TransientEngineError
from tasks.manifest import Manifest
from tasks.source import BookSource

_COMMON: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


def retry_transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry only TransientEngineError (out of memory, a lost device...)."""
    return isinstance(getattr(state, "data", None), TransientEngineError)


@task(name="plan-book", **_COMMON)
def plan_book(manifest: Manifest, engine: str | None, cache_dir: str, voices_dir: str,
              facts: workers.WorkerFacts | None = None, source: BookSource | None = None,
              checked: plan.BookPlan | None = None) -> plan.BookPlan:
    """`source`: the manifest's sources as the caller read them; else they are read here. `checked`: the
    caller's check_only plan of `source`, used as it is when the worker's facts change none of it."""
    if checked is not None and source is not None and facts is not None:
        if (reused := plan.reuse_checked_plan(checked, facts, source)) is not None:
            return reused
    return plan.make_plan(manifest, engine_name=engine, cache_dir=Path(cache_dir), voices_dir=Path(voices_dir),
                          facts=facts, source=source)


@task(name="worker-facts", task_run_name="worker-facts-{engine}", **_COMMON)
def worker_facts(engine: str, settings: dict[str, Any], prompts: bool = True) -> workers.WorkerFacts:
    """Run where synthesis runs (the same placement): the worker's device, precision and capacity."""
    return workers.worker_facts(engine, settings, prompts=prompts)


@task(
    name="synthesize-chunks", retries=2, retry_delay_seconds=1, retry_condition_fn=retry_transient_only,
    task_run_name="synthesize-ch{chunks[0].chapter_index}-{chunks[0].index}+{n}", cache_result_in_memory=False,
    **_COMMON,
)
def synthesize_chunks(
    chunks: list[plan.Chunk], job: plan.SynthJob, n: int = 0, renderer: str | None = None
) -> synth.BatchResult:
    """`renderer`: the renderer's synth.renderer_id(); run in any other process, the audio comes back as bytes."""
    note_task_start()
    return synth.synthesize_batch(chunks, job, renderer=renderer)


TASK_STARTS = "audiobook-task-start"  # the scheduler's event topic (flows.render.rerun_chunks reads it)


def note_task_start() -> None:
    """On a Dask worker: log on the scheduler that this task began here (a message on the worker's open
    connection, no round trip), so the renderer can count tasks that ran again after a lost worker."""
    if "distributed" not in sys.modules:
        return
    from distributed import get_worker

    try:
        worker = get_worker()
        key = worker.get_current_task()
    except (ValueError, KeyError, AttributeError):  # not in a Dask worker's task
        return
    worker.log_event(TASK_STARTS, {"key": str(key), "worker": worker.address})


@task(name="assemble-chapter", task_run_name="assemble-chapter-{chapter.index}", **_COMMON)
def assemble_chapter(
    chapter: plan.ChapterPlan, results: dict[str, synth.ChunkResult], job: plan.SynthJob, tail_ms: int
) -> book.ChapterAudio:
    return book.assemble_chapter_audio(chapter, results, job, tail_ms)


@task(name="encode-book", **_COMMON)
def encode_book(
    manifest: Manifest, chapters: list[book.ChapterAudio], out_dir: str, cover: str | None = None
) -> tuple[list[Path], int]:
    return book.publish_book(manifest, chapters, Path(out_dir), cover=Path(cover) if cover else None)
