"""Peak memory of a whole render against the book's length: a 1-hour and a 10-hour book, same chapters.

    .venv/bin/python benchmarks/bench_memory.py [--quick] [--hours H [H ...]] [--chapter-minutes M] [--ship-audio]

Each book renders in a fresh child process through the real `flows.render.render_book` (thread task
runner, as `audiobook render` runs) against a real Prefect server started beforehand (so no ephemeral
server lives in the measured process). The engine is the fake one made instant: every chunk is a slice
of one precomputed harmonic clip as long as the chunk's text warrants (14 characters a second), so
synthesis costs nothing and the audio has speech's length and level. Chapters are long (30 minutes by
default) and the books differ only in how many there are: both have at least two, so both assemble two
chapters at once (AUDIOBOOK_WORKERS threads) and only the book's length differs. (A 1-hour book of one
chapter assembles one chapter at a time: it would compare concurrency, not length.) The book is
encoded to MP3 only (the M4B would add one more ffmpeg process and minutes of wall, not memory in the
render process).

peak_rss_mib is the child's VmHWM (the render process's high-water mark: flow, synthesis, chapter
assembly, report), polled from here; ffmpeg's own processes are not in it. Targets: under 1 GiB at
every size, and the largest book within 20% of the smallest (rss_ratio = largest / smallest).
--ship-audio: every synthesis task returns its chunks as FLAC bytes for the flow to store (the
stateless-worker path, see tasks.synth), though it runs in the flow's threads.
--quick: 0.1 h against 1 h (3-minute chapters). Wall on two shared cores: 1-2.5 min for 1 h, 8-15 min
for 10 h (more under load).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

GIB_MIB = 1024.0


def make_tone_engine() -> Any:
    """The fake engine, instant: each clip is a slice of one precomputed clip, as long as the text warrants."""
    import numpy as np

    from tasks.engines.base import Clip
    from tasks.engines.fake import FakeEngine
    from tasks.plan import CHARS_PER_SECOND

    class ToneEngine(FakeEngine):
        def __init__(self) -> None:
            super().__init__(max_chars=200, sample_rate_hz=24000)
            base = self._speak(" ".join(["harbour lantern keeper"] * 12), seed=3)
            self.base = base[int(0.1 * 24000):]

        def synthesize(self, text: str, voice: str, settings: Any, seed: int, *, voices_dir: str | None = None) -> Clip:
            n = int(max(len(text) / CHARS_PER_SECOND, 0.3) * 24000)
            reps = -(-n // self.base.size)
            samples = self.base[:n] if reps == 1 else np.tile(self.base, reps)[:n]
            return Clip(samples, 24000)

    return ToneEngine()


def write_book(folder: Path, hours: float, chapter_minutes: float) -> Path:
    """A manifest of about `hours` of speech in chapters of about `chapter_minutes` each."""
    from tasks.plan import CHARS_PER_SECOND

    chars = int(hours * 3600 * CHARS_PER_SECOND * 0.93)  # pauses make up the rest
    chapters = max(1, round(hours * 60 / chapter_minutes))
    return common.write_chapters(
        folder, "memory", common.prose(chars, seed=11), chapters,
        "title: Memory Bench\nauthor: Bench\nengine: fake\nvoice: anyone\nseed: 1\n"
        "credits: false\nspeak_titles: false\noutputs: [mp3]\n",
    )


def child(manifest: str, ship_audio: bool = False) -> None:
    """Runs in the measured process: one render, a JSON line of what it did."""
    from tasks.engines import register_engine

    if ship_audio:
        import flows.render

        flows.render.renderer_id = lambda: "elsewhere/0"  # every task sends its audio back as bytes

    engine = make_tone_engine()
    register_engine("fake", lambda: engine)
    from flows.render import render_book

    started = time.perf_counter()
    report = render_book(manifest)
    print(json.dumps({"wall_s": round(time.perf_counter() - started, 1), "chunks": report.chunks_total,
                      "chapters": len(report.chapters), "audio_h": round(report.duration_s / 3600, 3)}))


def measure(manifest: Path, env: dict[str, str], ship_audio: bool = False) -> dict[str, Any]:
    """Render `manifest` in a child process, polling its VmHWM; returns the child's figures and the peak."""
    flags = ["--ship-audio"] if ship_audio else []
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(manifest), *flags], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=str(common.REPO))
    peak = [0.0]
    status = Path(f"/proc/{proc.pid}/status")

    def poll() -> None:
        while proc.poll() is None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]) / 1024.0)
            time.sleep(0.1)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"render of {manifest} failed (exit {proc.returncode})")
    lines = [ln for ln in out.splitlines() if ln.strip().startswith("{")]
    return {**json.loads(lines[-1]), "peak_rss_mib": round(peak[0], 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="0.1 h against 1 h")
    parser.add_argument("--hours", type=float, nargs="+", default=None, help="book lengths (default 1 10)")
    parser.add_argument("--chapter-minutes", type=float, default=30.0)
    parser.add_argument("--ship-audio", action="store_true",
                        help="tasks return FLAC bytes for the flow to store (the stateless-worker path)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.ship_audio)
        return {}
    hours = sorted(args.hours or ([0.1, 1.0] if args.quick else [1.0, 10.0]))
    chapter_minutes = min(args.chapter_minutes, hours[0] * 60 / 2)  # the smallest book has two chapters

    runs: dict[str, dict[str, Any]] = {}
    with common.workdir("bench-memory-") as work:
        common.bench_folders(work, cache=False)
        with common.prefect_server(work) as server:
            for h in hours:
                manifest = write_book(work / f"book-{h:g}h", h, chapter_minutes)
                env = {**os.environ, "AUDIOBOOK_CACHE_DIR": str(work / f"cache-{h:g}h")}
                runs[f"{h:g}h"] = measure(manifest, env, args.ship_audio)
    small, large = runs[f"{hours[0]:g}h"], runs[f"{hours[-1]:g}h"]
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    under = all(r["peak_rss_mib"] < GIB_MIB for r in runs.values())
    result: dict[str, Any] = {
        "peak_rss_mib_small": small["peak_rss_mib"],
        "peak_rss_mib_large": large["peak_rss_mib"],
        "rss_large_over_small": round(ratio, 3),
        "under_1_gib": under,
        "within_20_percent": ratio <= 1.2,
        "sizes": {"hours": hours, "chapter_minutes": chapter_minutes, "cpus": os.cpu_count(),
                  "ship_audio": args.ship_audio},
        "prefect_server_startup_s": server["startup_s"],
        "runs": runs,
    }
    rows: list[tuple[str, Any]] = [
        (f"{name}: chunks / chapters / audio h / wall s", f"{r['chunks']} / {r['chapters']} / {r['audio_h']} / {r['wall_s']}")
        for name, r in runs.items()
    ]
    rows += [(f"{name}: peak RSS MiB", r["peak_rss_mib"]) for name, r in runs.items()]
    rows += [
        (f"peak RSS {hours[-1]:g} h / {hours[0]:g} h [<= 1.2]", f"{ratio:.3f}" + ("  MET" if ratio <= 1.2 else "  MISSED")),
        ("every render under 1 GiB", "yes  MET" if under else "no  MISSED"),
    ]
    print(common.table("render peak memory against book length (instant fake engine, real Prefect server)", rows),
          flush=True)
    return result


if __name__ == "__main__":
    common.cli_entry(main)
