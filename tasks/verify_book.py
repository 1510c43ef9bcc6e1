"""`audiobook verify`: hear a finished book against its script and list the suspicious spans.

    verify_book(target, cache_dir=..., voices_dir=..., output_dir=...) -> list of findings

`target` is a book's output folder (its report.json names the manifest) or a manifest (its book is
looked up under the output folder). The script is the plan of the manifest (the chunk texts); where each
chunk lies in a chapter file comes from the chapter audio the render assembled (the cache records each
chunk's span). Each chapter MP3 is decoded and every chunk's stretch of it heard by tasks.verify; when the
book has no MP3s, the assembled chapter audio in the cache is heard instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tasks.errors import SourceError
from tasks.report import REPORT_NAME, BookReport
from tasks.verify import Verdict, flagged_spans, verify_take

MARGIN_S = 0.1  # heard around each chunk's span: MP3 encoder delay and the fades


@dataclass(frozen=True)
class Finding:
    chapter: str
    time: str
    expected: str
    heard: str
    why: str


def _locate(target: Path, output_dir: Path) -> tuple[Path, Path, str | None]:
    """(manifest, book output folder, the engine it was rendered with) for an output folder or a manifest."""
    if target.is_dir():
        path = target / REPORT_NAME
        try:
            report = BookReport.from_json(path)
        except (OSError, ValueError):
            report = None
        if report is None or not report.manifest:
            raise SourceError("no readable report.json: not a rendered book's folder", file=path,
                              fix="give the book's output folder (output/<book>/) or its manifest")
        return Path(report.manifest), target, report.engine or None
    if not target.is_file():
        raise SourceError("no such file or folder", file=target, fix="give a book's output folder or its manifest")
    return target, output_dir / target.stem, None


def verify_book(target: Path, *, cache_dir: Path, voices_dir: Path, output_dir: Path,
                threshold: float | None = None) -> tuple[list[Finding], int]:
    """(suspicious spans, chunks heard) of the finished book at `target`."""
    from tasks.audio import read_audio
    from tasks.book import cached_chapter_audio, chapter_tail_ms, mp3_name
    from tasks.manifest import load_manifest
    from tasks.plan import make_plan

    manifest_path, out_dir, engine = _locate(target, output_dir)
    manifest = load_manifest(manifest_path)
    plan = make_plan(manifest, engine_name=engine, cache_dir=cache_dir, voices_dir=voices_dir)
    limit = threshold if threshold is not None else manifest.verify_threshold
    tail_ms = chapter_tail_ms(manifest)
    chapters = [(ch, cached_chapter_audio(ch, plan.job, tail_ms)) for ch in plan.chapters]
    missing = [ch.title for ch, audio in chapters if audio is None]
    if missing:
        raise SourceError(
            f"the chapter audio of {missing[0]!r} is not in the cache (the book was not rendered from this "
            "manifest, or the cache was cleared)", file=manifest_path, fix="render the book again, then verify it")
    findings: list[Finding] = []
    heard = 0
    for chapter, audio in chapters:
        assert audio is not None
        mp3 = out_dir / "mp3" / mp3_name(audio, len(chapters))
        samples, sr = read_audio(mp3 if mp3.is_file() else Path(audio.wav))
        for chunk, (start, end) in zip(chapter.chunks, audio.clip_spans_s, strict=True):
            a = max(0, int((start - MARGIN_S) * sr))
            b = min(len(samples), int((end + MARGIN_S) * sr))
            verdict: Verdict = verify_take(samples[a:b], sr, chunk.text)
            heard += 1
            for span in flagged_spans(verdict, chunk.text, a / sr, limit):
                findings.append(Finding(chapter.title, span["time"], span["expected"], span["heard"], span["why"]))
    return findings, heard


def print_findings(findings: list[Finding], heard: int) -> None:
    print(f"{heard} chunks heard, {len(findings)} suspicious span(s)")
    for f in findings:
        print(f"  {f.chapter} at {f.time}: {f.why}")
        print(f"      expected: {f.expected}")
        print(f"      heard:    {f.heard}")

