"""Post-processing against plain ffmpeg: stitch + trim + resample + normalise + encode, for a long book.

    .venv/bin/python benchmarks/bench_postprocess.py [--quick] [--no-baseline-large]

A synthetic book of 24 kHz speech-like clips (FakeEngine-style harmonic bursts, ~10 s each; a few
distinct clips stored once as FLAC in a temporary chunk cache and reused many times by key, so making
10 hours of input costs seconds). Two sizes, each in a fresh child process so peak memory is its own:

  - small: N chapters, 1 h in all (default 10 x 6 min; --quick 10 x 0.6 min)
  - large: N chapters of the same length (default 10 x 1 h = 10 h; --quick 10 x 0.1 h = 1 h)

"ours" runs the project's real functions the way the flow does: `tasks.book.assemble_chapter_audio`
for every chapter (on a thread pool of AUDIOBOOK_WORKERS=2 threads, like the flow's task runner;
includes reading the clips, trimming, resampling to 44.1 kHz, room tone, gain, limiter, loudness
stats and streaming the chapter WAV into the chapter cache), then `tasks.book.publish_book` (one MP3
per chapter + the M4B + the retail sample, ENCODE_WORKERS ffmpeg processes at once). "ffmpeg" is
plain ffmpeg doing only the encodes of the same chapter WAVs with the same codec settings (libmp3lame
CBR 192k 44.1 kHz per chapter and for the sample, the first chapter's first 5 minutes faded out; AAC
64k `-aac_coder fast` over the concat demuxer into one .m4b), with the same number of ffmpeg
processes at once. ratio = ours wall / ffmpeg wall.
Peak memory is the child's VmHWM (the Python process; ffmpeg runs in its own processes, whose peak
is sampled from /proc while the baseline's encodes run).
The ffmpeg baseline runs on both books (--no-baseline-large skips the large one: a few minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

CLIP_SR = 24000
DISTINCT_CLIPS = 8
CLIP_CHARS = 140  # ~10 s at the fake engine's 14 characters per second
PAUSE_MS = (300, 300, 300, 800)  # sentence pauses with a paragraph pause every fourth clip


def _clip_keys() -> list[str]:
    from tasks.cache import content_key

    return [content_key("bench-clip", i=i) for i in range(DISTINCT_CLIPS)]


def write_clips(cache_dir: Path) -> dict[str, Any]:
    """The few distinct clips, stored as FLAC in the chunk cache; returns {key: path} and their seconds."""
    from tasks.cache import AudioCache
    from tasks.engines.fake import FakeEngine

    engine = FakeEngine(sample_rate_hz=CLIP_SR)
    cache = AudioCache(cache_dir / "chunks", ".flac")
    words = "quiet harbour evening lantern window morning island shadow river garden".split()
    paths: dict[str, str] = {}
    seconds = []
    for i, key in enumerate(_clip_keys()):
        text, j = "", i
        while len(text) < CLIP_CHARS:
            text += words[j % len(words)] + " "
            j += i + 1
        samples = engine._speak(text.strip(), seed=i)
        paths[key] = str(cache.store(key, samples, CLIP_SR))
        seconds.append(samples.size / CLIP_SR)
    return {"paths": paths, "mean_clip_s": sum(seconds) / len(seconds)}


def _manifest(folder: Path, chapters: int) -> Path:
    lines = ["title: Post-processing Bench", "author: Bench", "engine: fake", "voice: anyone",
             "outputs: [m4b, mp3]", "chapters:"]
    lines += [f"  - {{title: Chapter {i + 1}, text: Chapter {i + 1}.}}" for i in range(chapters)]
    path = folder / "postbench.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """Child: assemble every chapter and publish the book with the project's functions; timings + memory."""
    import tasks.book as book
    from tasks.audio import assemble, dsp, levels, limiter
    from tasks.manifest import load_manifest
    from tasks.plan import ChapterPlan, Chunk, SynthJob
    from tasks.synth import ChunkResult

    work = Path(spec["workdir"])
    paths: dict[str, str] = spec["clip_paths"]
    keys = sorted(paths)
    n_clips = max(1, round(spec["chapter_hours"] * 3600 / (spec["mean_clip_s"] + 0.4)))
    chapters = []
    for c in range(spec["chapters"]):
        chunks = tuple(
            Chunk(c, i, f"clip {i}", PAUSE_MS[i % len(PAUSE_MS)], keys[(i * 3 + c + i // DISTINCT_CLIPS) % len(keys)])
            for i in range(n_clips)
        )  # the order differs per chapter, so every chapter has its own content key (no chapter-cache hit)
        chapters.append(ChapterPlan(c, f"Chapter {c + 1}", chunks, n_clips))
    results = {k: ChunkResult(k, p, True) for k, p in paths.items()}
    job = SynthJob("fake", "anyone", {}, 0, None, str(work / "cache"))
    manifest = load_manifest(_manifest(work, spec["chapters"]))

    iv = common.Intervals()
    patches = [
        (dsp, "trim_silence"), (dsp, "resample"), (levels, "_integrated_lufs"), (levels, "noise_floor_dbfs"),
        (limiter, "_limit_peaks"), (dsp, "room_tone"), (assemble, "room_tone"), (levels, "measure"),
        (assemble, "read_audio"),
        (book, "encode_mp3"), (book, "encode_m4b"),
    ]
    patches = [(obj, name) for obj, name in patches if hasattr(obj, name)]
    originals = [(obj, name, getattr(obj, name)) for obj, name in patches]
    for obj, name, fn in originals:
        setattr(obj, name, iv.wrap(name, fn))
    store = book.AudioCache.adopt
    book.AudioCache.adopt = iv.wrap("chapter_cache_store", store)  # type: ignore[method-assign]
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=spec["workers"]) as pool:
            done = list(pool.map(lambda ch: book.assemble_chapter_audio(ch, results, job, 2000), chapters))
        t1 = time.perf_counter()
        files, encoded = book.publish_book(manifest, done, work / "out-ours")
        t2 = time.perf_counter()
    finally:
        for obj, name, fn in originals:
            setattr(obj, name, fn)
        book.AudioCache.adopt = store  # type: ignore[method-assign]
    audio_s = sum(c.stats.duration_s for c in done)
    return {
        "audio_hours": round(audio_s / 3600, 3),
        "chapters": len(done),
        "clips_per_chapter": n_clips,
        "assemble_s": round(t1 - t0, 2),
        "publish_s": round(t2 - t1, 2),
        "total_s": round(t2 - t0, 2),
        "files_encoded": encoded,
        "breakdown_s_summed_over_threads": {
            label: round(iv.total(label), 2) for label in [*(n for _, n in patches), "chapter_cache_store"]
        },
        "acx_ok": all(c.stats.meets_acx() for c in done),
        "chapter_wavs": [c.wav for c in done],
        "peak_rss_mib": common.peak_rss_mib(),
    }


def run_ffmpeg(spec: dict[str, Any]) -> dict[str, Any]:
    """Child: plain ffmpeg, only the encodes of the same chapter WAVs, same codec settings, serially."""
    import soundfile as sf

    from tasks.encode import ffmpeg_exe

    exe = ffmpeg_exe()
    out = Path(spec["workdir"]) / "out-ffmpeg"
    out.mkdir(parents=True, exist_ok=True)
    wavs = spec["chapter_wavs"]
    base = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    listing = out / "list.ffconcat"
    listing.write_text("ffconcat version 1.0\n" + "".join(f"file '{w}'\n" for w in wavs))
    jobs = [[*base, "-f", "concat", "-safe", "0", "-i", str(listing), "-c:a", "aac", "-aac_coder", "fast",
             "-b:a", "64k", "-f", "ipod", str(out / "book.m4b")]]
    jobs += [[*base, "-i", wav, "-c:a", "libmp3lame", "-b:a", "192k", "-ar", "44100", str(out / f"{i:02d}.mp3")]
             for i, wav in enumerate(wavs)]
    # The retail sample the pipeline also writes: up to 5 minutes of the first chapter, faded out.
    sample_s = min(300.0, sf.info(wavs[0]).duration)
    jobs += [[*base, "-i", wavs[0], "-af", f"atrim=end={sample_s},afade=t=out:st={max(0.0, sample_s - 1)}:d=1",
              "-c:a", "libmp3lame", "-b:a", "192k", "-ar", "44100", str(out / "sample.mp3")]]
    # As many ffmpeg processes at once as the pipeline runs (tasks.book.encode_workers), the M4B first: the same
    # schedule, so the comparison is of work, not of parallelism.
    from tasks.book import encode_workers

    workers = encode_workers()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        peaks = list(pool.map(common.run_polling_rss, jobs))
    t1 = time.perf_counter()
    return {"total_s": round(t1 - t0, 2), "encode_processes_at_once": workers,
            "ffmpeg_peak_rss_mib": round(max(peaks), 1)}


def _child(phase: str, spec: dict[str, Any]) -> dict[str, Any]:
    spec_path = Path(spec["workdir"]) / f"spec-{phase}.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "AUDIOBOOK_CACHE_DIR": str(Path(spec["workdir"]) / "cache")}
    return common.run_child_json([str(Path(__file__).resolve()), "--child", phase, str(spec_path)], env=env)  # type: ignore[no-any-return]


def measure_size(label: str, chapters: int, chapter_hours: float, workers: int, baseline: bool) -> dict[str, Any]:
    with common.workdir(f"bench-post-{label}-") as work:
        clips = write_clips(work / "cache")
        spec = {"workdir": str(work), "clip_paths": clips["paths"], "mean_clip_s": clips["mean_clip_s"],
                "chapters": chapters, "chapter_hours": chapter_hours, "workers": workers}
        ours = _child("ours", spec)
        result: dict[str, Any] = {"label": label, "ours": ours}
        if baseline:
            plain = _child("ffmpeg", {**spec, "chapter_wavs": ours["chapter_wavs"]})
            result["ffmpeg"] = plain
            result["ratio"] = round(ours["total_s"] / plain["total_s"], 3)
        ours.pop("chapter_wavs")
        return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="0.1 h and 1 h (10 x 0.1 h) books")
    parser.add_argument("--chapter-hours", type=float, default=None, help="length of each chapter (hours)")
    parser.add_argument("--chapters", type=int, default=10, help="chapters of the large book")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("AUDIOBOOK_WORKERS", "2")))
    parser.add_argument("--baseline-large", action=argparse.BooleanOptionalAction, default=True,
                        help="also run plain ffmpeg on the large book (default)")
    parser.add_argument("--child", nargs=2, metavar=("PHASE", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        phase, spec_path = args.child
        spec = json.loads(Path(spec_path).read_text())
        out = run_ours(spec) if phase == "ours" else run_ffmpeg(spec)
        print(json.dumps(out))
        return out

    hours = args.chapter_hours if args.chapter_hours is not None else (0.1 if args.quick else 1.0)
    # Both books have the same number of chapters, so the same number are assembled at once: the small
    # one's chapters are 1/chapters as long. Memory must not grow with chapter (or book) length.
    small = measure_size("small", args.chapters, hours / args.chapters, args.workers, baseline=True)
    large = measure_size("large", args.chapters, hours, args.workers, baseline=args.baseline_large or args.quick)
    s_ours, l_ours = small["ours"], large["ours"]
    small_rss, large_rss = s_ours["peak_rss_mib"]["self"], l_ours["peak_rss_mib"]["self"]
    ffmpeg_per_hour = small["ffmpeg"]["total_s"] / s_ours["audio_hours"]
    large_ratio = large.get("ratio")
    result = {
        "sizes": {"small_hours": s_ours["audio_hours"], "large_hours": l_ours["audio_hours"],
                  "chapter_hours": hours, "large_chapters": args.chapters, "assembly_threads": args.workers},
        "postprocess_ratio_vs_ffmpeg": small["ratio"],
        "postprocess_ratio_vs_ffmpeg_large": large_ratio,
        "postprocess_ratio_large_vs_scaled_ffmpeg": round(l_ours["total_s"] / (ffmpeg_per_hour * l_ours["audio_hours"]), 3),
        "postprocess_peak_rss_mib_small": small_rss,
        "postprocess_peak_rss_mib_large": large_rss,
        "postprocess_rss_large_over_small": round(large_rss / small_rss, 3),
        "ffmpeg_peak_rss_mib": small["ffmpeg"]["ffmpeg_peak_rss_mib"],
        "small": small,
        "large": large,
    }
    rows: list[tuple[str, Any]] = [
        ("book sizes (h)", f"small {s_ours['audio_hours']}, large {l_ours['audio_hours']} "
                           f"({args.chapters} chapters of {hours} h)"),
        ("small: ours total s", s_ours["total_s"]),
        ("small:   assemble / publish s", f"{s_ours['assemble_s']} / {s_ours['publish_s']}"),
        ("small: plain ffmpeg s", small["ffmpeg"]["total_s"]),
        ("  ffmpeg processes at once", small["ffmpeg"]["encode_processes_at_once"]),
        ("ratio ours/ffmpeg (small)  [<=1.5]", small["ratio"]),
        ("large: ours total s", l_ours["total_s"]),
        ("large:   assemble / publish s", f"{l_ours['assemble_s']} / {l_ours['publish_s']}"),
    ]
    if large_ratio is not None:
        rows += [("large: plain ffmpeg s", large["ffmpeg"]["total_s"]), ("ratio ours/ffmpeg (large) [<=1.5]", large_ratio)]
    else:
        rows += [("ratio large vs ffmpeg/h x hours (est.)", result["postprocess_ratio_large_vs_scaled_ffmpeg"])]
    rows += [
        ("peak RSS small MiB (python)", small_rss),
        ("peak RSS large MiB (python)", large_rss),
        ("large/small [<=1.2], both [<1024]", result["postprocess_rss_large_over_small"]),
        ("peak RSS of one ffmpeg encode MiB", result["ffmpeg_peak_rss_mib"]),
        ("ACX bar met (all chapters)", s_ours["acx_ok"] and l_ours["acx_ok"]),
    ]
    rows += [(f"  large breakdown {k} s", v) for k, v in l_ours["breakdown_s_summed_over_threads"].items()]
    print(common.table("post-processing vs plain ffmpeg", rows), flush=True)
    return result


if __name__ == "__main__":
    common.cli_entry(main)
