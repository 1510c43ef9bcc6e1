"""The render-book flow: a manifest in, a chaptered audiobook out. Reads like a table of contents."""

from __future__ import annotations

import contextlib
import queue
import sys
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from tasks import book, paths, progress, settings
from tasks.errors import RenderError, UserError
from tasks.inputs import ReadBook, book_inputs_digest
from tasks.lock import book_lock
from tasks.manifest import Manifest, load_manifest
from tasks.plan import BookPlan, Chunk, job_settings
from tasks.prefect_tasks import (
    TASK_STARTS,
    assemble_chapter,
    encode_book,
    plan_book,
    synthesize_chunks,
    worker_facts,
)
from tasks.report import REPORT_NAME, BookReport, build_report, write_report
from tasks.synth import (
    BatchResult,
    ChunkFailure,
    ChunkResult,
    batch_chunks,
    chunk_cache,
    engine_batch_size,
    receive_batch,
    renderer_id,
    split_cached,
)
from tasks.workers import WorkerFacts, check_gpu, check_precision

_HANDED: dict[Path, ReadBook] = {}  # manifest path -> what render_read hands to the flow run it starts


def render_read(read: ReadBook, runner: Any, *, output_dir: str | None = None,
                engine: str | None = None) -> BookReport:
    """Run `runner` (render_book, or it on another task runner: with_cluster) on a book already read:
    the flow plans from `read` instead of reading the manifest and its sources again."""
    path = read.source.manifest.path
    _HANDED[path.resolve()] = read
    try:
        return runner(str(path), output_dir=output_dir, engine=engine)  # type: ignore[no-any-return]
    finally:
        _HANDED.pop(path.resolve(), None)


class RenderThreads(ThreadPoolTaskRunner):  # type: ignore[type-arg]
    """Threads in this process for a render's tasks: AUDIOBOOK_WORKERS of them, read when a run starts."""

    def __enter__(self) -> RenderThreads:
        self._max_workers = settings.WORKERS.get()
        return super().__enter__()  # type: ignore[no-any-return]


@flow(name="render-book", task_runner=RenderThreads(), log_prints=True)  # type: ignore[arg-type]
def render_book(manifest: str, output_dir: str | None = None, engine: str | None = None) -> BookReport:
    """Render one book. `manifest` is a path (or a name under manifests/); `engine` overrides the manifest's."""
    started = time.perf_counter()
    manifest_path = paths.resolve_manifest(manifest)
    read = _HANDED.pop(manifest_path.resolve(), None)
    if read is None:  # a deployment's run, nightly: the manifest is read here, its sources by plan_book
        the_manifest = load_manifest(manifest_path)
        # Digest the inputs before planning reads them: an edit made during the render re-renders next night.
        inputs_digest = book_inputs_digest(the_manifest, paths.voices_dir())
        source, checked = None, None
    else:
        the_manifest, inputs_digest, source, checked = (
            read.source.manifest, read.inputs_digest, read.source, read.checked)
    facts = ask_worker(the_manifest, engine)  # before any chunk: GPU or a clear no
    plan = plan_book(the_manifest, engine, str(paths.cache_dir()), str(paths.voices_dir()), facts, source, checked)
    del read, source, checked  # the plan holds what synthesis needs; the parsed documents can go
    out_dir = Path(output_dir or paths.output_dir()).absolute() / the_manifest.stem
    stats: dict[str, int] = {}
    results = synthesize_all(plan, stats)
    tail_ms = book.chapter_tail_ms(the_manifest)
    chapters = assemble_all(plan, results, tail_ms)
    progress.report(1, 1, "encoding")
    with book_lock(out_dir):
        files, _ = encode_book(the_manifest, chapters, str(out_dir), plan.cover)
        report = build_report(
            the_manifest, plan, results, chapters, files, out_dir, wall_seconds=time.perf_counter() - started,
            dollars_per_hour=settings.DOLLARS_PER_ENGINE_HOUR.get(),
            chunks_run_twice=stats.get("chunks_run_twice", 0), inputs_digest=inputs_digest,
        )
        write_report(report, out_dir)
    publish_artifacts(report, out_dir)
    return report


def synthesize_all(plan: BookPlan, stats: dict[str, int] | None = None) -> dict[str, ChunkResult]:
    """Fan the chunks out in batches; take each batch's result as it completes (a worker elsewhere sends
    its chunks' audio, stored here at once, see tasks.synth); fail naming each chunk that never rendered.
    `stats` receives "chunks_run_twice" (see rerun_chunks).

    Batches that finish while later ones are still being submitted are taken between submissions.
    The terminal's progress moves with every batch; the Prefect progress artifact (a call to the
    server) at most once a second, and at the end.

    Memory stays flat in the book's length: a finished future is dropped as soon as its result is
    taken, and the results kept are paths and numbers, never audio."""
    results, missing = split_cached(plan.chunks, plan.job)  # cached chunks need no task
    # A batching engine gets tasks of its capacity, sorted by length; others, reading-order batches.
    capacity = (plan.worker.capacity if plan.worker else engine_batch_size(plan.job)) if missing else 1
    batches = batch_chunks(tuple(missing), capacity=capacity)
    total = len(plan.chunks)
    cached = total - len(missing)
    del missing
    artifact = ProgressArtifact(total, cached, f"Synthesising {total} chunks of {plan.title!r} ({cached} cached)")
    finished: queue.SimpleQueue[PrefectFuture[BatchResult]] = queue.SimpleQueue()
    pending: dict[PrefectFuture[BatchResult], list[Chunk]] = {}
    dask_keys: dict[Any, int] = {}  # a Dask task's key -> its chunk count
    failures: list[ChunkFailure] = []
    done = cached
    progress.report(done, total, "synthesising")

    def take(future: PrefectFuture[BatchResult]) -> None:
        """One finished batch: its audio stored, its results kept (paths), the progress shown."""
        nonlocal done
        chunks = pending.pop(future)
        try:
            batch = receive_batch(future.result(), plan.job)
        except Exception as exc:  # a transient fault outlived its retries: blame only what is missing
            batch = recover_batch(chunks, plan, f"{type(exc).__name__}: {exc}")
        results.update(batch.results)
        failures.extend(batch.failures)
        done += len(chunks)
        progress.report(done, total, "synthesising")
        artifact.update(done)

    renderer = renderer_id()
    with tts_placement():
        for i, chunks in enumerate(batches):
            with fair_share(i):
                future = synthesize_chunks.submit(chunks, plan.job, len(chunks), renderer)
            pending[future] = chunks
            if (wrapped := getattr(future, "wrapped_future", None)) is not None and hasattr(wrapped, "key"):
                dask_keys[wrapped.key] = len(chunks)
            future.add_done_callback(finished.put)
            del future
            while True:  # batches finished while the later ones are submitted are taken at once
                try:
                    take(finished.get_nowait())
                except queue.Empty:
                    break
    del batches
    while pending:  # nothing of a consumed batch stays referenced here
        take(finished.get())
    artifact.update(done, final=True)
    if stats is not None:
        stats["chunks_run_twice"] = rerun_chunks(dask_keys)
    if failures:
        first = failures[0]
        more = f" ({len(failures) - 1} more chunks failed)" if len(failures) > 1 else ""
        raise RenderError(
            f"{plan.chapters[first.chunk.chapter_index].title!r}, {first.chunk.label} could not be rendered: "
            f"{first.error}{more}. Finished chunks are cached; fix the cause and render again."
        )
    return results


class ProgressArtifact:
    """The render's Prefect progress artifact (what the service and the UI show), updated at most once
    every PROGRESS_ARTIFACT_EVERY_S seconds: each update is a call to the Prefect server."""

    def __init__(self, total: int, done: int, description: str) -> None:
        self.total = max(total, 1)
        self.shown = done
        self.at = time.monotonic()
        self.id = create_progress_artifact(100.0 * done / self.total, description=description)

    def update(self, done: int, *, final: bool = False) -> None:
        if done == self.shown or not (final or time.monotonic() - self.at >= PROGRESS_ARTIFACT_EVERY_S):
            return
        update_progress_artifact(self.id, 100.0 * done / self.total)  # type: ignore[arg-type]
        self.shown, self.at = done, time.monotonic()


PROGRESS_ARTIFACT_EVERY_S = 1.0


def ask_worker(manifest: Manifest, engine: str | None) -> WorkerFacts:
    """The facts of a worker where synthesis runs (one small task, placed like synthesis): its engine
    version (the chunk keys name its precision), device and batch capacity. This process builds the
    engine only to know its settings (no model, no torch). A Tortoise render with no GPU there stops
    here (exit 2) unless AUDIOBOOK_TORTOISE_DEVICE=cpu."""
    from tasks.engines import get_engine

    name = engine or manifest.engine
    engine_here = get_engine(name)
    engine_settings = job_settings(engine_here, manifest)
    with tts_placement():
        future = worker_facts.submit(name, engine_settings, engine_here.info.supports_prompts and manifest.prompts)
    wait_s = settings.WORKER_WAIT_S.get()
    try:
        facts = future.result(timeout=wait_s)
    except TimeoutError:
        resource = settings.TTS_RESOURCE.get()
        raise UserError(
            f"no worker answered in {wait_s:.0f} s" + (f": is there one with the resource {resource}?" if resource else ""),
            field="AUDIOBOOK_TTS_RESOURCE" if resource else "--cluster",
            fix="start a worker (dask worker ... --resources GPU=1), list them with 'audiobook doctor --cluster "
                "ADDRESS', or wait longer with AUDIOBOOK_WORKER_WAIT_S",
        ) from None
    check_gpu(facts)
    check_precision(facts)
    return facts


def assemble_all(plan: BookPlan, results: dict[str, ChunkResult], tail_ms: int) -> list[book.ChapterAudio]:
    """Every chapter's audio: from the cache where it is there (no task), else one task per chapter.

    Assembly reads the chunks from this process's cache, so it runs here (threads), whichever runner
    the synthesis went to."""
    cached = {ch.index: book.with_word_times(audio, ch, results) if audio is not None else None
              for ch in plan.chapters for audio in [book.cached_chapter_audio(ch, plan.job, tail_ms)]}
    todo = [ch for ch in plan.chapters if cached[ch.index] is None]
    if not todo:
        return [audio for audio in cached.values() if audio is not None]
    context = FlowRunContext.get()
    if context is not None and isinstance(context.task_runner, ThreadPoolTaskRunner):
        futures = {ch.index: assemble_chapter.submit(ch, {c.key: results[c.key] for c in ch.chunks}, plan.job, tail_ms)
                   for ch in todo}
        return [cached[ch.index] or futures[ch.index].result() for ch in plan.chapters]
    with ThreadPoolTaskRunner(max_workers=settings.WORKERS.get()) as local:  # type: ignore[var-annotated]
        local_futures = {ch.index: local.submit(assemble_chapter, {  # type: ignore[arg-type]
            "chapter": ch, "results": {c.key: results[c.key] for c in ch.chunks}, "job": plan.job,
            "tail_ms": tail_ms}) for ch in todo}
        return [cached[ch.index] or local_futures[ch.index].result() for ch in plan.chapters]


def rerun_chunks(dask_keys: dict[Any, int]) -> int:
    """Chunks whose synthesis task began on more than one Dask worker: a worker lost mid-task (a machine
    gone, a process killed) has that task run again on another worker, which speaks its chunks again
    (the lost worker had spoken some of them; their audio never arrived). Read from the task starts that
    the workers log on the scheduler (tasks.prefect_tasks.note_task_start; it keeps the last 1,000).
    0 on threads, or when the scheduler cannot say."""
    context = FlowRunContext.get()
    client = getattr(context.task_runner, "client", None) if context is not None and dask_keys else None
    if client is None:
        return 0
    try:
        events = client.get_events(TASK_STARTS)
    except Exception:  # noqa: BLE001 (a figure for the report; the render itself succeeded)
        return 0
    wanted = {str(key): n for key, n in dask_keys.items()}
    workers: dict[str, set[str]] = {}
    for _, msg in events:
        if isinstance(msg, dict) and (key := str(msg.get("key"))) in wanted:
            workers.setdefault(key, set()).add(str(msg.get("worker")))
    return sum(wanted[key] for key, where in workers.items() if len(where) > 1)


def recover_batch(chunks: list[Chunk], plan: BookPlan, error: str) -> BatchResult:
    """A failed batch: its chunks that reached the cache count as done, the others as failed."""
    cache = chunk_cache(plan.job)
    batch = BatchResult()
    for chunk in chunks:
        if (hit := cache.lookup(chunk.key)) is not None:
            batch.results[chunk.key] = ChunkResult(chunk.key, str(hit), cached=False)
        else:
            batch.failures.append(ChunkFailure(chunk, error))
    return batch


def tts_placement() -> contextlib.AbstractContextManager[Any]:
    """On a Dask cluster, send synthesis only to workers that declare the resource named by
    AUDIOBOOK_TTS_RESOURCE (e.g. GPU: workers started with `--resources GPU=1`). One at a time each."""
    resource = settings.TTS_RESOURCE.get()
    if not resource:
        return contextlib.nullcontext()
    import dask

    return dask.annotate(resources={resource: 1})


def fair_share(batch_index: int) -> contextlib.AbstractContextManager[Any]:
    """On Dask (shared workers, e.g. `audiobook serve`'s resident ones), the i-th batch of every book
    gets the same priority, so books rendering at once take turns batch by batch instead of the later
    book waiting for all of the earlier one's. Threads in one process: nothing to share."""
    if "dask" not in sys.modules:
        return contextlib.nullcontext()
    import dask

    return dask.annotate(priority=-batch_index)


def with_cluster(cluster: str | None) -> Any:
    """The render flow on a task runner: threads in this process (None), a temporary local Dask
    cluster of N worker processes ("local:N"), or an existing Dask scheduler ("tcp://host:8786")."""
    if not cluster:
        return render_book
    from prefect_dask import DaskTaskRunner

    if cluster.startswith("local:"):
        workers = int(cluster.removeprefix("local:"))
        runner = DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                                "dashboard_address": ":0"})  # 8787 may be taken
    else:
        runner = DaskTaskRunner(address=cluster)
    return render_book.with_options(task_runner=runner)  # type: ignore[arg-type]


def file_link(book: str, file: str) -> str:
    """A download link through the HTTP service when one is known (AUDIOBOOK_PUBLIC_URL), else the name."""
    base = settings.PUBLIC_URL.get()
    return f"[{file}]({base.rstrip('/')}/books/{book}/download/{file})" if base else f"`{file}`"


def publish_artifacts(report: BookReport, out_dir: Path) -> None:
    """The summary and per-chapter table as Prefect artifacts, beside report.json."""
    logger = get_run_logger()
    summary = (
        f"# {report.title}\n\n"
        f"- engine: `{report.engine}`, voice `{report.voice}`, quality `{report.quality}`\n"
        f"- chunks: {report.chunks_total} ({report.chunks_synthesized} synthesised, "
        f"{report.chunks_cached} from cache)\n"
        f"- duration: {report.duration_s / 60:.1f} min; wall {report.wall_seconds:.1f} s; "
        f"engine {report.engine_seconds:.1f} s\n"
        + (f"- sample: {report.sample.duration_s:.0f} s from {report.sample.chapter!r}\n"
           if report.sample else "")
        + f"- output: `{out_dir}`\n"
        + "".join(f"- file: {file_link(out_dir.name, f)}\n" for f in [*report.files, REPORT_NAME])
        + "".join(f"- warning: {w}\n" for w in report.warnings)
    )
    create_markdown_artifact(summary, key="book-summary", description="Render summary")
    create_table_artifact(report.to_dict()["chapters"], key="book-chapters",
                          description="Chapters: duration and loudness")
    logger.info("rendered %s: %s", report.title, ", ".join(report.files))
