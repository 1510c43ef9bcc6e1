"""Orchestration overhead: a many-chunk book through the real render flow with an engine that costs nothing.

    .venv/bin/python benchmarks/bench_overhead.py [--quick] [--chunks N] [--ship-audio]

The real `flows.render.render_book` on a real Prefect server (`prefect server start` on a free port,
SQLite, started before timing; a 3-chunk warm-up render runs first so imports and the client's first
connection are not counted). The engine is registered as "fake" and returns a slice of one precomputed
clip (24 kHz, just long enough to pass the take checks: ~0.25 s per chunk), so synthesis costs ~0.

Definitions (all wall-clock, in the flow process):
  overhead_ms_per_chunk = (first render wall - engine wall - chapter assembly wall - encode wall) / chunks
     where engine wall / assembly wall are the union of the intervals during which the engine's
     synthesize() / `tasks.book.assemble_chapter_audio` ran (threads overlap), and encode wall is
     `tasks.book.publish_book`. What is left is planning, Prefect task submission and state reporting,
     the chunk cache (FLAC write, sha256, sidecar), take checks, report and artifacts.
  total_ms_per_chunk    = first render wall / chunks
  cached_rerender_fraction = wall of rendering the same manifest again (everything cached) / first wall
  ship_audio_overhead_vs_paths = wall of the same first render (fresh cache) with its synthesis tasks
     returning FLAC bytes that the flow stores (the stateless-worker path, see --ship-audio) / first wall - 1
A last run renders the same book with the plain functions and no Prefect (fresh cache), so Prefect's
share of the overhead can be read off directly.

The third render (fresh cache) takes the stateless-worker path although its tasks run in the flow's own
threads: each returns its chunks' audio as FLAC bytes and the flow stores them (tasks.synth
receive_batch), as with workers on other machines; the first, as on one machine by default, has each
task store its chunks as they are spoken. --ship-audio: every render ships its audio (no third render).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

SYLLABLES = ["ba", "ko", "di", "mu", "re", "so", "ta", "li", "ne", "vo", "pa", "gu", "fe", "zi", "lo", "ma",
             "ru", "ke", "no", "sa"]


def pseudo_sentence(i: int) -> str:
    """A unique short sentence ("Bako dimu.") for chunk i: ~10 characters, one chunk each."""
    n = len(SYLLABLES)
    a, b, c, d = i % n, (i // n) % n, (i // n**2) % n, (i // n**3) % n
    return f"{(SYLLABLES[a] + SYLLABLES[b]).capitalize()} {SYLLABLES[c]}{SYLLABLES[d]}."


def write_book(folder: Path, chunks: int, chapters: int, name: str = "overhead") -> Path:
    """`chunks` one-sentence paragraphs (each its own chunk) spread over `chapters` text files."""
    return common.write_chapters(
        folder, name, [pseudo_sentence(i) for i in range(chunks)], chapters,
        "title: Overhead Bench\nauthor: Bench\nengine: fake\nvoice: anyone\nseed: 1\n"
        "credits: false\nspeak_titles: false\n"
        "pacing: {sentence_pause_ms: 200, paragraph_pause_ms: 200, chapter_pause_ms: 1000}\n",
    )


def make_instant_engine() -> Any:
    """A FakeEngine whose synthesize() returns a slice of one precomputed clip, timing itself."""
    import threading

    from tasks.engines.base import Clip
    from tasks.engines.fake import FakeEngine
    from tasks.plan import CHARS_PER_SECOND

    class InstantEngine(FakeEngine):
        def __init__(self) -> None:
            super().__init__(max_chars=60, sample_rate_hz=24000)
            base = self._speak(" ".join(["harbour lantern"] * 12), seed=3)
            self.base = base[int(0.1 * 24000):]
            self.seconds = 0.0
            self.count = 0
            self._time_lock = threading.Lock()

        def synthesize(self, text: str, voice: str, settings: Any, seed: int, *, voices_dir: str | None = None) -> Clip:
            start = time.perf_counter()
            expected = max(len(text) / CHARS_PER_SECOND, 0.3)
            n = int(max(0.2, expected / 3.0) * 24000)
            clip = Clip(self.base[:n], 24000)
            with self._time_lock:
                self.seconds += time.perf_counter() - start
                self.count += 1
            return clip

    return InstantEngine()


def _instrument(iv: common.Intervals) -> list[tuple[Any, str, Any]]:
    import flows.render as render
    import tasks.book as book
    import tasks.plan as plan
    import tasks.synth as synth
    from tasks.cache import AudioCache

    targets = [(book, "assemble_chapter_audio"), (book, "publish_book"), (plan, "make_plan"),
               (synth, "synthesize_batch"), (render, "synthesize_all"), (render, "publish_artifacts"),
               (AudioCache, "entry"), (AudioCache, "store")]  # entry: every lookup, whichever way it is asked
    saved = [(obj, name, getattr(obj, name)) for obj, name in targets]
    for obj, name, fn in saved:
        setattr(obj, name, iv.wrap(name, fn))
    return saved


def _restore(saved: list[tuple[Any, str, Any]]) -> None:
    for obj, name, fn in saved:
        setattr(obj, name, fn)


def timed_render(manifest: Path, engine: Any) -> dict[str, Any]:
    from flows.render import render_book

    iv = common.Intervals()
    saved = _instrument(iv)
    engine.seconds, engine.count = 0.0, 0
    try:
        t0 = time.perf_counter()
        report = render_book(str(manifest))
        wall = time.perf_counter() - t0
    finally:
        _restore(saved)
    chunks = report.chunks_total
    assembly, encode = iv.covered("assemble_chapter_audio"), iv.covered("publish_book")
    overhead = wall - engine.seconds - assembly - encode
    return {
        "chunks": chunks,
        "chunks_synthesized": report.chunks_synthesized,
        "audio_minutes": round(report.duration_s / 60, 2),
        "wall_s": round(wall, 3),
        "engine_s": round(engine.seconds, 3),
        "assembly_wall_s": round(assembly, 3),
        "encode_wall_s": round(encode, 3),
        "overhead_s": round(overhead, 3),
        "overhead_ms_per_chunk": round(1000 * overhead / chunks, 3),
        "total_ms_per_chunk": round(1000 * wall / chunks, 3),
        "plan_s": round(iv.total("make_plan"), 3),
        "synthesis_phase_wall_s": round(iv.total("synthesize_all"), 3),
        "synthesize_batch_wall_s_in_tasks": round(iv.covered("synthesize_batch"), 3),
        "synthesize_batch_calls": iv.count("synthesize_batch"),
        "cache_lookup_s_summed": round(iv.total("entry"), 3),
        "cache_store_s_summed": round(iv.total("store"), 3),
        "artifacts_s": round(iv.total("publish_artifacts"), 3),
    }


def plain_render(manifest: Path, cache: Path, out: Path) -> dict[str, Any]:
    """The same work with the plain functions, no Prefect: plan, synthesise every chunk, assemble, encode."""
    from tasks import book, plan, synth
    from tasks.manifest import load_manifest

    t0 = time.perf_counter()
    the_manifest = load_manifest(manifest)
    the_plan = plan.make_plan(the_manifest, engine_name=None, cache_dir=cache, voices_dir=cache)
    t1 = time.perf_counter()
    results = synth.synthesize_batch(list(the_plan.chunks), the_plan.job).results
    t2 = time.perf_counter()
    chapters = [book.assemble_chapter_audio(ch, results, the_plan.job, 1000) for ch in the_plan.chapters]
    t3 = time.perf_counter()
    book.publish_book(the_manifest, chapters, out)
    t4 = time.perf_counter()
    n = len(the_plan.chunks)
    return {"plan_s": round(t1 - t0, 3), "synth_s": round(t2 - t1, 3), "synth_ms_per_chunk": round(1000 * (t2 - t1) / n, 3),
            "assemble_s": round(t3 - t2, 3), "encode_s": round(t4 - t3, 3), "wall_s": round(t4 - t0, 3)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 chunks instead of 5,000")
    parser.add_argument("--chunks", type=int, default=None)
    parser.add_argument("--chapters", type=int, default=10)
    parser.add_argument("--ship-audio", action="store_true",
                        help="tasks return FLAC bytes for the flow to store (the stateless-worker path)")
    args = parser.parse_args(argv)
    chunks = args.chunks or (1000 if args.quick else 5000)

    with common.workdir("bench-overhead-") as work:
        common.bench_folders(work)
        warm = write_book(work / "book", 3, 1, name="warmup")
        manifest = write_book(work / "book", chunks, args.chapters)
        with common.prefect_server(work) as server:
            from tasks.engines import register_engine, reset_engines
            from tasks.engines.fake import FakeEngine

            engine = make_instant_engine()
            register_engine("fake", lambda: engine)
            if args.ship_audio:
                import flows.render

                flows.render.renderer_id = lambda: "elsewhere/0"  # every task ships its audio back
            try:
                from flows.render import render_book
                from tasks.settings import WORKERS as worker_threads

                os.environ["AUDIOBOOK_CACHE_DIR"] = str(work / "cache-warmup")  # its chunks must not warm the book's
                t0 = time.perf_counter()
                render_book(str(warm))
                warmup_s = time.perf_counter() - t0
                os.environ["AUDIOBOOK_CACHE_DIR"] = str(work / "cache")
                first = timed_render(manifest, engine)
                cached = timed_render(manifest, engine)
                shipped = None
                if not args.ship_audio:  # the same book again, fresh cache, its audio shipped as FLAC bytes
                    import flows.render

                    os.environ["AUDIOBOOK_CACHE_DIR"] = str(work / "cache-shipped")
                    with common.patched(flows.render, "renderer_id", lambda: "elsewhere/0"):
                        shipped = timed_render(manifest, engine)
                    os.environ["AUDIOBOOK_CACHE_DIR"] = str(work / "cache")
                plain = plain_render(manifest, work / "cache-plain", work / "output-plain")
            finally:
                register_engine("fake", FakeEngine)
                reset_engines()
    fraction = cached["wall_s"] / first["wall_s"]
    ship_over = round(shipped["wall_s"] / first["wall_s"] - 1, 4) if shipped else None
    result = {
        "overhead_ms_per_chunk": first["overhead_ms_per_chunk"],
        "total_ms_per_chunk": first["total_ms_per_chunk"],
        "cached_rerender_fraction": round(fraction, 4),
        "cached_rerender_ms_per_chunk": cached["total_ms_per_chunk"],
        "ship_audio_overhead_vs_paths": ship_over,
        "definition": ("overhead_ms_per_chunk = (first render wall - engine wall - chapter assembly wall - "
                       "encode wall) / chunks; cached_rerender_fraction = cached re-render wall / first render "
                       "wall; both on a real Prefect server, after a warm-up render"),
        "sizes": {"chunks": chunks, "chapters": args.chapters, "workers": worker_threads.get(), "ship_audio": args.ship_audio},
        "prefect_server_startup_s": server["startup_s"],
        "warmup_render_s": round(warmup_s, 3),
        "first": first,
        "cached": cached,
        "shipped": shipped,
        "no_prefect": plain,
    }
    rows: list[tuple[str, Any]] = [
        ("chunks / chapters / worker threads", f"{chunks} / {args.chapters} / {worker_threads.get()}"),
        ("audio from tasks", "FLAC bytes, stored by the flow" if args.ship_audio else "stored by the task"),
        ("audio minutes", first["audio_minutes"]),
        ("first render wall s", first["wall_s"]),
        ("  engine / assembly / encode wall s", f"{first['engine_s']} / {first['assembly_wall_s']} / {first['encode_wall_s']}"),
        ("  plan s", first["plan_s"]),
        ("  synthesis phase wall s", first["synthesis_phase_wall_s"]),
        ("  of which inside synthesize_batch s", first["synthesize_batch_wall_s_in_tasks"]),
        ("  batches (Prefect tasks)", first["synthesize_batch_calls"]),
        ("overhead ms/chunk (first) [<=20]", first["overhead_ms_per_chunk"]),
        ("total ms/chunk (first)", first["total_ms_per_chunk"]),
        ("cached re-render wall s", cached["wall_s"]),
        ("  chunks synthesised on re-render", cached["chunks_synthesized"]),
        ("  plan / synthesis phase s", f"{cached['plan_s']} / {cached['synthesis_phase_wall_s']}"),
        ("  cache lookups s (summed)", cached["cache_lookup_s_summed"]),
        ("cached/first [<=0.05]", round(fraction, 4)),
        *([("audio shipped as FLAC bytes: first render wall s", shipped["wall_s"]),
           ("  shipped over stored by the task [<=0.05]", ship_over)] if shipped else []),
        ("no Prefect: plan / synth / assemble / encode s",
         f"{plain['plan_s']} / {plain['synth_s']} / {plain['assemble_s']} / {plain['encode_s']}"),
        ("no Prefect: synth ms/chunk (cache write etc.)", plain["synth_ms_per_chunk"]),
    ]
    print(common.table("orchestration overhead (instant engine, real Prefect server)", rows), flush=True)
    return result


if __name__ == "__main__":
    common.cli_entry(main)
