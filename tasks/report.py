"""The render report (report.json): one typed record, built here and read through it everywhere.

    build_report(manifest, plan, results, chapters, files, out_dir, ...) -> BookReport
    write_report(report, out_dir)                                        -> output/<book>/report.json
    BookReport.from_json(path) / BookReport.from_dict(data)              -> BookReport (older reports too)

report.json carries `schema_version` (SCHEMA_VERSION); a report written before the version existed
reads as version 0 with the same fields. Fields missing from an older (or hand-written) report take
their defaults; keys this version does not know are ignored when reading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

if TYPE_CHECKING:
    from tasks.book import ChapterAudio
    from tasks.manifest import Manifest
    from tasks.plan import BookPlan, ChapterLedger
    from tasks.synth import ChunkResult

SCHEMA_VERSION = 1
REPORT_NAME = "report.json"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class FlaggedSpan(_Record):
    """A stretch of a chapter where speech recognition did not hear the script (tasks.verify.flagged_spans)."""

    time_s: float = 0.0
    time: str = ""
    why: str = ""
    expected: str = ""
    heard: str = ""
    chunk_text: str = ""


class HeardSummary(_Record):
    """A chapter's take check (tasks.verify.chapter_summary); absent when the check was off."""

    words_verified: int = 0
    rerolls_missing_words: int = 0
    flagged: list[FlaggedSpan] = []


class SkippedPassage(_Record):
    what: str = ""
    reason: str = ""
    words: int = 0


class LedgerEntry(_Record):
    """Where the words of one source chapter went (tasks.plan.ChapterLedger)."""

    title: str = ""
    words: int = 0
    kept: int = 0
    changed: dict[str, int] = {}
    removed: dict[str, int] = {}
    removed_examples: dict[str, list[str]] = {}
    skipped: list[SkippedPassage] = []

    @classmethod
    def of(cls, ledger: ChapterLedger) -> LedgerEntry:
        return cls.model_validate(ledger.to_dict())


class ChapterReport(_Record):
    title: str = ""
    duration_s: float = 0.0
    rms_dbfs: float = 0.0
    peak_dbfs: float = 0.0
    lufs: float = 0.0
    noise_floor_dbfs: float = 0.0
    chunks: int = 0
    kind: str = "chapter"
    words: int = 0
    words_per_minute: float = 0.0
    heard: HeardSummary | None = None


class SampleReport(_Record):
    file: str
    chapter: str
    duration_s: float


class BookReport(_Record):
    """What one render made and what it cost. Serialised field by field, in this order, to report.json."""

    schema_version: int = 0  # 0: written before the report had a version
    title: str = ""
    author: str = ""
    manifest: str = ""
    engine: str = ""
    engine_version: str | None = None
    device: str | None = None
    voice: str = ""
    quality: str = ""
    seed: int = 0
    chunks_total: int = 0
    chunks_synthesized: int = 0
    chunks_cached: int = 0
    rerolls: int = 0
    retries: int = 0
    chunks_run_twice: int = 0  # tasks started again after their worker was lost (Dask)
    bad_takes: list[str] = []
    prompts_dropped: int = 0
    ledger: list[LedgerEntry] = []
    wall_seconds: float = 0.0
    engine_seconds: float = 0.0
    estimated_cost: float = 0.0
    duration_s: float = 0.0
    chapters: list[ChapterReport] = []
    sample: SampleReport | None = None
    files: list[str] = []
    warnings: list[str] = []
    inputs_digest: str | None = None  # tasks.inputs.book_inputs_digest: the nightly flow compares it

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: object) -> BookReport:
        """A report from its JSON form; ValueError when it is not one."""
        if not isinstance(data, dict):
            raise ValueError("a report is a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def from_json(cls, path: Path) -> BookReport:
        """The report at `path`; OSError when it cannot be read, ValueError when it is not a report."""
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def build_report(
    manifest: Manifest, plan: BookPlan, results: dict[str, ChunkResult], chapters: list[ChapterAudio],
    files: list[Path], out_dir: Path, *, wall_seconds: float, dollars_per_hour: float = 0.0,
    chunks_run_twice: int = 0, inputs_digest: str | None = None,
) -> BookReport:
    from tasks.book import SAMPLE_NAME, sample_chapter, sample_end_s
    from tasks.plan import MAX_PART_SECONDS
    from tasks.verify import chapter_summary

    chunk_results = [results[c.key] for c in plan.chunks]
    synthesized = sum(1 for r in chunk_results if not r.cached)
    engine_seconds = sum(r.engine_seconds for r in results.values())
    bad = [c.label + f": {results[c.key].bad_take}" for c in plan.chunks if results[c.key].bad_take]
    source = sample_chapter(chapters)
    long_files = [
        f"{c.title!r} lasts {c.stats.duration_s / 60:.1f} min, over the {MAX_PART_SECONDS / 60:.0f} min ACX "
        "allows per file (its estimate was under the limit: the voice speaks slower than estimated)"
        for c in chapters if c.stats.duration_s > MAX_PART_SECONDS
    ]

    def chapter_report(c: ChapterAudio) -> ChapterReport:
        planned = plan.chapters[c.index]
        heard = chapter_summary(
            [k.text for k in planned.chunks], [results[k.key].verify for k in planned.chunks],
            [results[k.key].heard_rerolls for k in planned.chunks if not results[k.key].cached],
            [a for a, _ in c.clip_spans_s] or [0.0] * len(planned.chunks), plan.job.verify_threshold)
        return ChapterReport(
            title=c.title, duration_s=round(c.stats.duration_s, 3), rms_dbfs=round(c.stats.rms_dbfs, 2),
            peak_dbfs=round(c.stats.peak_dbfs, 2), lufs=round(c.stats.lufs, 2),
            noise_floor_dbfs=round(c.stats.noise_floor_dbfs, 2), chunks=len(planned.chunks), kind=c.kind,
            words=planned.words,
            words_per_minute=round(planned.words / (c.stats.duration_s / 60), 1) if c.stats.duration_s else 0.0,
            heard=HeardSummary.model_validate(heard) if heard is not None else None,
        )

    return BookReport(
        schema_version=SCHEMA_VERSION,
        title=manifest.title,
        author=manifest.author,
        manifest=str(manifest.path),
        engine=plan.engine_info.name,
        engine_version=plan.engine_info.version,
        device=plan.engine_info.device,
        voice=plan.job.voice,
        quality=manifest.quality,
        seed=manifest.seed,
        chunks_total=len(chunk_results),
        chunks_synthesized=synthesized,
        chunks_cached=len(chunk_results) - synthesized,
        rerolls=sum(r.rerolls for r in results.values() if not r.cached),
        retries=sum(r.retries for r in results.values()),
        chunks_run_twice=chunks_run_twice,
        bad_takes=bad,
        prompts_dropped=plan.prompts_dropped,
        ledger=[LedgerEntry.of(entry) for entry in plan.ledger],
        wall_seconds=round(wall_seconds, 3),
        engine_seconds=round(engine_seconds, 3),
        estimated_cost=round(engine_seconds / 3600 * dollars_per_hour, 4),
        duration_s=round(sum(c.stats.duration_s for c in chapters), 3),
        chapters=[chapter_report(c) for c in chapters],
        sample=SampleReport(file=SAMPLE_NAME, chapter=source.title, duration_s=round(sample_end_s(source), 3))
        if source is not None and any(f.name == SAMPLE_NAME for f in files) else None,
        files=[str(f.relative_to(out_dir)) for f in files],
        warnings=[*plan.warnings, *long_files],
        inputs_digest=inputs_digest,
    )


def write_report(report: BookReport, out_dir: Path) -> Path:
    from tasks import atomic
    from tasks.errors import output_error

    path = out_dir / REPORT_NAME
    try:
        atomic.write_text(path, report.to_json())
    except OSError as exc:
        raise output_error(exc, out_dir) from exc
    return path
