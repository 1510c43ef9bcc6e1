"""The `audiobook` commands other than `submit`: each takes the parsed arguments and returns an exit code;
errors are raised (tasks.errors) and become exit codes in cli.main.run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.prefect_server import configure_prefect_environment, local_api_url
from tasks import paths, settings
from tasks.errors import UserError
from tasks.report import REPORT_NAME

from .progress import terminal_progress

if TYPE_CHECKING:
    from tasks.manifest import Pacing
    from tasks.plan import BookPlan



def cmd_render(args: argparse.Namespace) -> int:
    from tasks.inputs import read_for_render

    manifest_path = paths.resolve_manifest(args.manifest)
    # Bad input (manifest, sources, voice, weights) fails here, before Prefect starts or a chunk is queued.
    # The manifest is read, its sources parsed and the book planned once, here; the flow takes what was
    # read (and the plan, unless the worker's facts change its keys).
    read = read_for_render(manifest_path, args.engine, cache_dir=paths.cache_dir(), voices_dir=paths.voices_dir())
    note = configure_prefect_environment()
    print(note, file=sys.stderr)
    from flows.render import render_read, with_cluster

    cluster = args.cluster or settings.CLUSTER.get()
    if cluster and "PREFECT_API_URL" not in os.environ:
        raise UserError(
            "a cluster render needs a running Prefect server (each Dask worker reports to it)",
            field="--cluster", fix="start 'audiobook serve' (or set PREFECT_API_URL) and run again",
        )
    with terminal_progress():
        report = render_read(read, with_cluster(cluster), output_dir=args.output, engine=args.engine)
    base = Path(args.output or paths.output_dir()).absolute() / Path(report.manifest).stem
    print(
        f"Rendered {report.title!r}: {len(report.chapters)} chapters, {report.duration_s / 60:.1f} min; "
        f"chunks {report.chunks_synthesized} synthesised, {report.chunks_cached} cached; "
        f"wall {report.wall_seconds:.1f} s"
    )
    for name in [*report.files, REPORT_NAME]:
        print(base / name)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from tasks.manifest import load_manifest
    from tasks.plan import make_plan

    manifest = load_manifest(paths.resolve_manifest(args.manifest))
    plan = make_plan(manifest, engine_name=args.engine, cache_dir=paths.cache_dir(), voices_dir=paths.voices_dir())
    if args.text:
        print_spoken_text(plan, manifest.pacing)
        return 0
    print(f"{manifest.title} by {manifest.author}  [{manifest.path}]")
    print(f"engine {plan.engine_info.name} (limit {plan.engine_info.max_chars} characters a chunk), "
          f"voice {manifest.voice}, quality {manifest.quality}, outputs {', '.join(manifest.outputs)}")
    for chapter in plan.chapters:
        print(f"  {chapter.index + 1:>3}. {chapter.title}: {chapter.sentences} sentences, "
              f"{len(chapter.chunks)} chunks, ~{chapter.estimated_seconds / 60:.1f} min")
    sentences = sum(c.sentences for c in plan.chapters)
    print(f"total: {len(plan.chapters)} chapters, {sentences} sentences, {len(plan.chunks)} chunks, "
          f"estimated {plan.estimated_seconds / 60:.1f} min of audio")
    print_ledger(plan)
    for warning in plan.warnings:
        print(f"warning: {warning}")
    return 0


def print_ledger(plan: BookPlan) -> None:
    """Every word of each source chapter: kept, changed or removed by the text stage (with reasons),
    and what the reader skipped (with reasons)."""
    print("ledger: the words of each chapter, as the reader skipped them and the text stage read them")
    for entry in plan.ledger:
        text = entry.text
        print(f"  {entry.title}")
        if text.words:
            changed = ", ".join(f"{reason} {n}" for reason, n in text.changed)
            removed = ", ".join(f"{reason} {n}" for reason, n in text.removed_by_reason().items())
            print(f"      text: {text.words} words: {text.kept} kept, {text.changed_words} changed"
                  f"{f' ({changed})' if changed else ''}, {text.removed_words} removed"
                  f"{f' ({removed})' if removed else ''}")
        skipped: dict[str, int] = {}
        for _, reason, words in entry.skipped:
            skipped[reason] = skipped.get(reason, 0) + words
        if skipped:
            print(f"      reader skipped {sum(skipped.values())} words: "
                  + ", ".join(f"{reason} {n}" for reason, n in skipped.items()))


def cmd_verify(args: argparse.Namespace) -> int:
    from tasks.verify_book import print_findings, verify_book

    target = Path(args.target)
    if not target.exists():
        target = paths.resolve_manifest(args.target)
    findings, heard = verify_book(target, cache_dir=paths.cache_dir(), voices_dir=paths.voices_dir(),
                                  output_dir=paths.output_dir(), threshold=args.threshold)
    print_findings(findings, heard)
    return 3 if findings else 0


def print_spoken_text(plan: BookPlan, pacing: Pacing) -> None:
    """Exactly what the engine will be given, chapter by chapter under its title: each chunk on a line
    of its own, and a blank line where a paragraph ends (when its pause differs from a sentence's)."""
    for chapter in plan.chapters:
        print(f"=== {chapter.index + 1}. {chapter.title} ===")
        for chunk in chapter.chunks:
            print(chunk.text)
            if (chunk.pause_after_ms == pacing.paragraph_pause_ms != pacing.sentence_pause_ms
                    and chunk is not chapter.chunks[-1]):
                print()
        print()


def cmd_voices_list(args: argparse.Namespace) -> int:
    """Every offered engine's voices, one a line with where it comes from (or how to add one)."""
    from tasks.engines import engine_names, engine_status

    for name in engine_names():
        status = engine_status(name, paths.voices_dir())
        note = "" if status.installed else f"  ({status.reason})"
        for voice in status.voices:
            print(f"{name}: {voice}  [{status.voice_sources.get(voice, '')}]{note}")
        if not status.voices:
            print(f"{name}: none yet{f': {status.add_voice}' if status.add_voice else ''}{note}")
    return 0


def cmd_voices_latents(args: argparse.Namespace) -> int:
    from tasks.engines.tortoise import compute_latents

    path = compute_latents(args.name, paths.voices_dir(), paths.cache_dir())
    print(path)
    return 0


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from tasks.engines.tortoise import fetch_models

    for path in fetch_models(args.dir):
        print(path)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """ffmpeg, and per engine: device, weights, voices, model load time and a one-sentence test render."""
    from tasks.encode import ffmpeg_exe
    from tasks.engines import engine_doctor, engine_names

    if args.cluster:  # the workers of a Dask cluster, each as it describes itself
        from tasks.workers import cluster_workers

        workers = cluster_workers(args.cluster, timeout_s=args.timeout)
        print(dump_json({"cluster": args.cluster, "workers": workers}))
        return 0 if workers else 1
    report: dict[str, Any] = {"ffmpeg": ffmpeg_exe(), "cache_dir": str(paths.cache_dir())}
    ok = True
    for name in [args.engine] if args.engine else engine_names():
        report[name] = engine_doctor(name, paths.voices_dir())  # never raises: every problem shows at once
        ok = ok and bool(report[name].get("ok", False))
    print(dump_json(report))
    return 0 if ok else 1


def cmd_serve(args: argparse.Namespace) -> int:
    configure_prefect_environment(probe=False)
    start_prefect = not os.environ.get("PREFECT_API_URL")
    if start_prefect:  # before Prefect is imported: it reads its settings once
        os.environ["PREFECT_API_URL"] = local_api_url(args.prefect_port)
    from service.serve import serve

    serve(host=args.host, port=args.port, prefect_port=args.prefect_port, cron=args.cron, timezone=args.timezone,
          concurrent_books=args.concurrent_books, engine_workers=args.engine_workers, start_prefect=start_prefect)
    return 0


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
