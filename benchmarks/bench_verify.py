"""Planted faults: does the take check (tasks/verify.py) catch words dropped or added, and what does it cost?

    .venv/bin/python benchmarks/bench_verify.py [--quick] [--chunks N] [--compare N] [--book MANIFEST]

Real Piper takes of real chunks (a book's plan: /work/shared/real-books/gutenberg-sherlock by default when
present, else the benchmarks' own prose), each checked clean and with planted defects cut into its audio:
a dropped clause (3-5 words cut out of the middle), a repeated phrase (3-5 words spoken twice), a take
truncated at the end (its last 3-5 words cut) and foreign speech appended (Piper reading unrelated text,
or a second of the take reversed). The word boundaries come from the clean take's own alignment.

Printed against the targets: share of planted defects caught (>= 90%), share of clean takes flagged (<= 2%),
and the check's cost over Piper's synthesis cost for the same audio (<= 15%). The cost is measured side by
side and interleaved: each chunk is synthesised and its clean take checked `--repeats` times, alternating
which goes first; per chunk the median of the repeats is kept; the figure is the sum of the chunks' checks
over the sum of their syntheses. Both CPU seconds (time.process_time: this process, all its threads, so
onnxruntime's pool is counted) and wall seconds are printed. The target is judged on CPU seconds: a
render on the 2-core machine keeps both cores busy (AUDIOBOOK_WORKERS=2 synthesis batches at once), so
what the check costs a render is the core time it takes from synthesis. The wall ratio is printed beside
it with its spread over the repeats, but it measures something else: on a quiet machine it is about twice
the CPU ratio (the check runs on one core, Piper on two; it is what a lone take would wait), and under
load it follows whatever other processes take from this one. Caveat: onnxruntime's threads spin while
they wait, which counts as Piper's CPU time, more so on a loaded machine; "cores used" shows it. The load
average before and after is printed too.
`--compare N` also runs the other method on the first N chunks: transcription with pocketsphinx's
language model and a word-error-rate match against the text, with its own figures.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

REAL_BOOK = Path("/work/shared/real-books/gutenberg-sherlock/book.yaml")
FOREIGN = ("The committee will meet again on Tuesday to discuss the budget for the new bridge.",
           "Please remember to water the tomatoes and feed the cat before you leave.")
KINDS = ("drop", "repeat", "truncate", "foreign")


def book_chunks(manifest: Path | None, n: int, work: Path) -> list[str]:
    """`n` chunk texts of at least 12 words, spread through the book's chapters."""
    texts: list[str] = []
    if manifest is not None and manifest.is_file():
        from tasks.manifest import load_manifest
        from tasks.plan import make_plan

        plan = make_plan(load_manifest(manifest), engine_name="piper", cache_dir=work / "cache",
                         voices_dir=work / "voices")
        texts = [c.text for ch in plan.chapters if ch.kind == "chapter" for c in ch.chunks if len(c.text.split()) >= 12]
    if not texts:
        texts = [p for p in common.prose(400 * n, seed=11) if len(p.split()) >= 12]
    step = max(1, len(texts) // n)
    return texts[::step][:n]


def word_bounds(samples: np.ndarray, sr: int, text: str) -> list[tuple[int, int]] | None:
    """(first sample, end sample) of each word of `text` in the clean take, from its alignment."""
    from tasks.audio import resample
    from tasks.verify import _RECOGNIZER, RATE_HZ, words_of

    x = resample(samples, sr, RATE_HZ)
    segs, _ = _RECOGNIZER.align((np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes(), words_of(text))
    if segs is None:
        return None
    return [(a * sr // 100, (b + 1) * sr // 100) for w, a, b, _ in segs if not w.startswith(("<", "["))]


def plant(kind: str, samples: np.ndarray, sr: int, bounds: list[tuple[int, int]], rng: random.Random,
          foreign: np.ndarray) -> np.ndarray:
    n = rng.randint(3, 5)
    k = rng.randint(1, max(1, len(bounds) - n - 2))
    if kind == "drop":
        return np.concatenate([samples[: bounds[k][0]], samples[bounds[k + n][0]:]])
    if kind == "repeat":
        return np.concatenate([samples[: bounds[k + n - 1][1]], samples[bounds[k][0]: bounds[k + n - 1][1]],
                               samples[bounds[k + n - 1][1]:]])
    if kind == "truncate":
        return samples[: bounds[len(bounds) - n][0]]
    gap = np.zeros(int(0.3 * sr), dtype=np.float32)
    if rng.random() < 0.5:
        return np.concatenate([samples, gap, foreign])
    piece = samples[bounds[k][0]: bounds[k][0] + sr * 2][::-1]  # two seconds of the take, reversed
    return np.concatenate([samples, gap, piece])


def wer_method(samples: np.ndarray, sr: int, text: str) -> tuple[bool, float, float]:
    """Transcription + word match: (flagged, word error rate, CPU seconds)."""
    from tasks.audio import resample
    from tasks.verify import _RECOGNIZER, RATE_HZ, _matched, words_of

    started = time.process_time()
    x = resample(samples, sr, RATE_HZ)
    heard = _RECOGNIZER.transcribe((np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes())
    words = words_of(text)
    hits = sum(_matched(words, heard))
    errors = len(words) - hits + max(0, len(heard) - hits)
    wer = min(errors, len(words) + len(heard)) / len(words)
    flagged = hits / len(words) < 0.8 or len(heard) - len(words) > 3
    return flagged, wer, time.process_time() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 chunks, 4 compared (default 40, 10)")
    parser.add_argument("--chunks", type=int)
    parser.add_argument("--compare", type=int)
    parser.add_argument("--repeats", type=int, help="syntheses and checks of each clean take (default 3, quick 2)")
    parser.add_argument("--book", type=Path, default=REAL_BOOK)
    args = parser.parse_args(argv)
    n = args.chunks or (12 if args.quick else 40)
    n_compare = args.compare if args.compare is not None else (4 if args.quick else 10)
    repeats = max(1, args.repeats or (2 if args.quick else 3))
    load_before = [round(v, 2) for v in os.getloadavg()]

    from tasks.engines.piper import PiperEngine
    from tasks.verify import take_problem, verify_take

    rng = random.Random(7)
    engine = PiperEngine()
    settings = {**engine.settings_for("standard"), "sentence_pause_ms": 300}
    with common.workdir("bench-verify-") as work:
        common.bench_folders(work)
        texts = book_chunks(args.book, n, work)
        warm = engine.synthesize("Warm up the voice and the recogniser.", "joe", settings, 0)
        verify_take(warm.samples, warm.sample_rate_hz, "Warm up the voice and the recogniser.")  # loads the model
        foreign = [engine.synthesize(t, "joe", settings, 3) for t in FOREIGN]
        audio_s = 0.0
        cost: dict[str, list[float]] = {"synth_wall": [], "synth_cpu": [], "check_wall": [], "check_cpu": []}
        per_repeat: list[list[tuple[float, float]]] = [[] for _ in range(repeats)]  # (synth, check) wall
        clean_flagged: list[str] = []
        caught = {k: 0 for k in KINDS}
        planted = {k: 0 for k in KINDS}
        missed: list[str] = []
        scores: list[float] = []
        cmp = {"chunks": 0, "clean_flagged": 0, "planted": 0, "caught": 0, "seconds": 0.0, "audio_s": 0.0,
               "clean_wer": []}
        for i, text in enumerate(texts):
            times: dict[str, list[float]] = {k: [] for k in cost}
            clip = verdict = None
            for r in range(repeats):
                # Alternate the order (synthesis first, then check first on the previous take): neither
                # always runs on caches the other warmed.
                for step in (("synth", "check") if r % 2 == 0 or clip is None else ("check", "synth")):
                    wall, cpu = time.perf_counter(), time.process_time()
                    if step == "synth":
                        clip = engine.synthesize(text, "joe", settings, 5 + i)
                    else:
                        assert clip is not None
                        verdict = verify_take(clip.samples, clip.sample_rate_hz, text)
                    times[f"{step}_wall"].append(time.perf_counter() - wall)
                    times[f"{step}_cpu"].append(time.process_time() - cpu)
                per_repeat[r].append((times["synth_wall"][-1], times["check_wall"][-1]))
            for key, values in times.items():
                cost[key].append(float(np.median(values)))
            assert clip is not None and verdict is not None
            sr, x = clip.sample_rate_hz, clip.samples
            audio_s += clip.duration_s
            scores.append(verdict.score)
            if take_problem(verdict):
                clean_flagged.append(f"{text[:50]!r}: {take_problem(verdict)}")
            compare = i < n_compare
            if compare:
                flagged, wer, secs = wer_method(x, sr, text)
                cmp["chunks"] += 1
                cmp["clean_flagged"] += flagged
                cmp["clean_wer"].append(round(wer, 3))
                cmp["seconds"] += secs  # clean takes only: the cost per take of the other method
                cmp["audio_s"] += clip.duration_s
            bounds = word_bounds(x, sr, text)
            if bounds is None or len(bounds) < 10:
                continue
            for kind in KINDS:
                bad = plant(kind, x, sr, bounds, rng, foreign[i % 2].samples)
                planted[kind] += 1
                problem = take_problem(verify_take(bad, sr, text))
                if problem:
                    caught[kind] += 1
                else:
                    missed.append(f"{kind}: {text[:50]!r}")
                if compare:
                    cmp["planted"] += 1
                    cmp["caught"] += wer_method(bad, sr, text)[0]
    total_planted = sum(planted.values())
    total = {key: sum(values) for key, values in cost.items()}
    synth_s = total["synth_cpu"]
    wall_per_repeat = [round(sum(c for _, c in rows) / max(sum(s for s, _ in rows), 1e-9), 3) for rows in per_repeat]
    result: dict[str, Any] = {
        "chunks": len(texts),
        "audio_minutes": round(audio_s / 60, 2),
        "planted": planted,
        "caught": caught,
        "caught_fraction": round(sum(caught.values()) / max(total_planted, 1), 3),
        "clean_flagged_fraction": round(len(clean_flagged) / max(len(texts), 1), 3),
        "clean_mean_score": round(float(np.mean(scores)), 3) if scores else None,
        "synth_s_per_audio_min": round(total["synth_wall"] / (audio_s / 60), 2),
        "check_s_per_audio_min": round(total["check_wall"] / (audio_s / 60), 2),
        "synth_cpu_s_per_audio_min": round(total["synth_cpu"] / (audio_s / 60), 2),
        "check_cpu_s_per_audio_min": round(total["check_cpu"] / (audio_s / 60), 2),
        # the figure judged against the target (<= 0.15): CPU seconds, see the module's docstring
        "check_cost_vs_synth": round(total["check_cpu"] / total["synth_cpu"], 3),
        "check_cost_vs_synth_wall": round(total["check_wall"] / total["synth_wall"], 3),
        "check_cost_vs_synth_wall_per_repeat": wall_per_repeat,
        "judged_on": "CPU seconds",
        # CPU over wall seconds: the cores each kept busy (Piper's onnxruntime pool counts its spin-waits)
        "synth_cores_used": round(total["synth_cpu"] / max(total["synth_wall"], 1e-9), 2),
        "check_cores_used": round(total["check_cpu"] / max(total["check_wall"], 1e-9), 2),
        "clean_flagged": clean_flagged,
        "missed": missed,
        "transcription_method": {
            "chunks": cmp["chunks"],
            "caught_fraction": round(cmp["caught"] / max(cmp["planted"], 1), 3),
            "clean_flagged_fraction": round(cmp["clean_flagged"] / max(cmp["chunks"], 1), 3),
            "clean_mean_wer": round(float(np.mean(cmp["clean_wer"])), 3) if cmp["clean_wer"] else None,
            # its CPU time on the clean takes over the synthesis CPU time of as much audio
            "cost_vs_synth_alone": round(cmp["seconds"] / max(synth_s * cmp["audio_s"] / max(audio_s, 1e-9), 1e-9), 3),
        },
        "load_average": {"before": load_before, "after": [round(v, 2) for v in os.getloadavg()]},
        "sizes": {"chunks": len(texts), "compared": n_compare, "repeats": repeats},
    }
    tm = result["transcription_method"]
    print(common.table("take check: planted faults on real Piper takes (pocketsphinx alignment)", [
        ("chunks / audio minutes", f"{len(texts)} / {result['audio_minutes']}"),
        ("planted defects caught", f"{result['caught_fraction']:.1%}   target >= 90%  "
                                   + ("MET" if result["caught_fraction"] >= 0.9 else "MISSED")),
        ("  by kind (caught/planted)", ", ".join(f"{k} {caught[k]}/{planted[k]}" for k in KINDS)),
        ("clean takes flagged", f"{result['clean_flagged_fraction']:.1%}   target <= 2%  "
                                + ("MET" if result["clean_flagged_fraction"] <= 0.02 else "MISSED")),
        ("synthesis per audio min", f"{result['synth_cpu_s_per_audio_min']} CPU s, "
                                    f"{result['synth_s_per_audio_min']} wall s"),
        ("check per audio min", f"{result['check_cpu_s_per_audio_min']} CPU s, {result['check_s_per_audio_min']} wall s"),
        ("check cost / synthesis", f"{result['check_cost_vs_synth']:.1%} in CPU seconds   target <= 15%  "
                                   + ("MET" if result["check_cost_vs_synth"] <= 0.15 else "MISSED")
                                   + " (judged on CPU s: the core time a render gives the check)"),
        ("  in wall seconds", f"{result['check_cost_vs_synth_wall']:.1%} (per repeat: "
                              + ", ".join(f"{v:.1%}" for v in wall_per_repeat) + "; follows the machine's load)"),
        (f"  medians of {repeats} interleaved runs", "per chunk: synthesis and check alternate, order swapped"),
        ("cores used (CPU s / wall s)", f"synthesis {result['synth_cores_used']}, check {result['check_cores_used']}"),
        ("transcription+WER instead", f"caught {tm['caught_fraction']:.0%}, clean flagged "
                                      f"{tm['clean_flagged_fraction']:.0%}, clean WER {tm['clean_mean_wer']}, "
                                      f"cost {tm['cost_vs_synth_alone']:.0%} of synthesis ({tm['chunks']} chunks)"),
        ("load average before / after", f"{load_before} / {result['load_average']['after']}"),
    ]), flush=True)
    for line in (clean_flagged + missed)[:12]:
        print("   ", line)
    return result


if __name__ == "__main__":
    common.cli_entry(main)
