"""The `audiobook` command line: thin over the library; errors become exit codes in one place.

    audiobook render MANIFEST [--output DIR] [--engine NAME]   render a book (exit 0 on success)
    audiobook check MANIFEST [--engine NAME] [--text]          validate and print the plan (or the spoken text)
    audiobook verify OUTPUT_DIR_OR_MANIFEST                    hear a finished book, print suspicious spans
    audiobook voices list | voices latents NAME                reference voices (Tortoise)
    audiobook models fetch [--dir DIR]                         fetch Tortoise weights ahead of time
    audiobook doctor [--engine NAME]                           device, ffmpeg, weights, a test render
    audiobook doctor --cluster ADDRESS                         every worker of a Dask cluster

Exit codes: 0 success (3: `verify` found suspicious spans); 2 a problem with the input the user can fix (the message names the file, the
field and the fix); 1 an internal fault. No traceback unless AUDIOBOOK_DEBUG=1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks import paths
from tasks.errors import AudiobookError, UserError

if TYPE_CHECKING:
    from tasks.manifest import Pacing
    from tasks.plan import BookPlan

DEFAULT_PREFECT_URL = "http://127.0.0.1:4200/api"


def configure_prefect_environment(*, probe: bool = True) -> str:
    """Set Prefect's environment before it is imported; returns a line saying which server is used."""
    os.environ.setdefault("PREFECT_HOME", str(paths.project_root() / ".prefect"))
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # A temporary server on a busy or small machine (a container, 2 shared cores) can take more than
    # Prefect's default 20 s to start; a render should wait for it, not fail.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # The terminal shows our progress bar and one-line errors; Prefect's own logs go to its server/UI.
    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
        os.environ.setdefault(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", "CRITICAL")
    if url := os.environ.get("PREFECT_API_URL"):
        return f"Prefect server: {url}"
    if probe and server_healthy(DEFAULT_PREFECT_URL):
        os.environ["PREFECT_API_URL"] = DEFAULT_PREFECT_URL
        return f"Prefect server: {DEFAULT_PREFECT_URL} (watch the run at {DEFAULT_PREFECT_URL.removesuffix('/api')})"
    return (
        "No Prefect server is running: using a temporary local one for this render "
        "(start 'audiobook serve' to watch runs in the Prefect UI)."
    )


def server_healthy(api_url: str, timeout_s: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout_s) as response:  # noqa: S310
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


# -- commands ---------------------------------------------------------------------------------------


def cmd_render(args: argparse.Namespace) -> int:
    from tasks.manifest import load_manifest
    from tasks.plan import make_plan

    manifest_path = paths.resolve_manifest(args.manifest)
    # Bad input (manifest, sources, voice, weights) fails here, before Prefect starts or a chunk is queued.
    make_plan(load_manifest(manifest_path), engine_name=args.engine, cache_dir=paths.cache_dir(),
              voices_dir=paths.voices_dir(), check_only=True)  # the workers' facts come in the flow
    note = configure_prefect_environment()
    print(note, file=sys.stderr)
    from flows.render import with_cluster

    cluster = args.cluster or os.environ.get("AUDIOBOOK_CLUSTER")
    if cluster and "PREFECT_API_URL" not in os.environ:
        raise UserError(
            "a cluster render needs a running Prefect server (each Dask worker reports to it)",
            field="--cluster", fix="start 'audiobook serve' (or set PREFECT_API_URL) and run again",
        )
    with terminal_progress():
        report = with_cluster(cluster)(str(manifest_path), output_dir=args.output, engine=args.engine)
    out_dir = Path(report["manifest"]).stem
    base = Path(args.output or paths.output_dir()).absolute() / out_dir
    print(
        f"Rendered {report['title']!r}: {len(report['chapters'])} chapters, {report['duration_s'] / 60:.1f} min; "
        f"chunks {report['chunks_synthesized']} synthesised, {report['chunks_cached']} cached; "
        f"wall {report['wall_seconds']:.1f} s"
    )
    for name in [*report["files"], "report.json"]:
        print(base / name)
    for warning in report["warnings"]:
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
    from tasks.engines.tortoise import bundled_voices_dir, list_voices

    ours = sorted(p.name for p in paths.voices_dir().iterdir() if p.is_dir()) if paths.voices_dir().is_dir() else []
    print(f"piper: joe (packaged){''.join(f', {v}' for v in ours if any((paths.voices_dir() / v).glob('*.onnx')))}")
    voices = list_voices(paths.voices_dir())
    bundled = bundled_voices_dir()
    for name in voices:
        where = "voices/" if name in ours else f"bundled with Tortoise ({bundled})"
        print(f"tortoise: {name}  [{where}]")
    if not voices:
        print(f"tortoise: none yet: put reference clips in {paths.voices_dir()}/<name>/")
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
    """Device, ffmpeg, voices, weights, model load time and a one-sentence test render per engine."""
    import time

    from tasks.encode import ffmpeg_exe
    from tasks.engines import get_engine

    if args.cluster:  # the workers of a Dask cluster, each as it describes itself
        from tasks.workers import cluster_workers

        workers = cluster_workers(args.cluster, timeout_s=args.timeout)
        print(dump_json({"cluster": args.cluster, "workers": workers}))
        return 0 if workers else 1
    report: dict[str, Any] = {"ffmpeg": ffmpeg_exe(), "cache_dir": str(paths.cache_dir())}
    engines = [args.engine] if args.engine else ["piper", "tortoise"]
    ok = True
    if "piper" in engines:
        try:
            engine = get_engine("piper")
            started = time.perf_counter()
            clip = engine.synthesize("This is a test of the voice.", "joe",
                                     {**engine.settings_for("draft"), "sentence_pause_ms": 0}, 0)
            report["piper"] = {"ok": True, "voice": "joe", "render_s": round(time.perf_counter() - started, 2),
                               "audio_s": round(clip.duration_s, 2)}
        except Exception as exc:  # report, do not stop: doctor shows every problem at once
            ok = False
            report["piper"] = {"ok": False, "error": str(exc)}
    if "tortoise" in engines:
        try:
            from tasks.engines.tortoise import doctor

            report["tortoise"] = doctor(paths.voices_dir())
            ok = ok and bool(report["tortoise"].get("ok", False))
        except ImportError as exc:
            ok = False
            report["tortoise"] = {"ok": False, "error": f"not installed ({exc}); run 'make setup-tortoise'"}
    print(dump_json(report))
    return 0 if ok else 1


def cmd_serve(args: argparse.Namespace) -> int:
    configure_prefect_environment(probe=False)
    from flows.serve import serve

    serve(host=args.host, port=args.port, prefect_port=args.prefect_port, cron=args.cron, timezone=args.timezone,
          concurrent_books=args.concurrent_books, engine_workers=args.engine_workers)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    """Send one book to a running service (POST /books): a manifest with the files it names (packed
    into one .zip, paths kept), or a bare document with the title, author, ... options."""
    import httpx

    path = Path(args.path)
    if not path.is_file():
        raise UserError("no such file", file=path, fix="give the path to a manifest or a document")
    fields = {k: v for k, v in {"name": args.name, "title": args.title, "author": args.author,
                                "narrator": args.narrator, "engine": args.engine, "voice": args.voice,
                                "quality": args.quality}.items() if v}
    if args.overwrite:
        fields["overwrite"] = "true"
    if path.suffix.lower() in (".yaml", ".yml"):
        upload = (f"{path.stem}.zip", pack_manifest_folder(path), "application/zip")
    else:
        upload = (path.name, path.read_bytes(), "application/octet-stream")
    headers = {"Authorization": f"Bearer {token}"} if (token := os.environ.get("AUDIOBOOK_TOKEN")) else {}
    server = args.server.rstrip("/")
    try:
        response = httpx.post(f"{server}/books", files=[("file", upload)], data=fields, headers=headers,
                              timeout=600)
    except httpx.HTTPError as exc:
        raise UserError(f"cannot reach {args.server}: {exc}", field="--server",
                        fix="start 'audiobook serve' or give the right --server URL") from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code >= 400:
        reason = answer.get("error") if isinstance(answer, dict) else None
        raise UserError(f"the server refused it ({response.status_code}): {reason or response.reason_phrase}",
                        file=path, fix="see the reason; set AUDIOBOOK_TOKEN for a server that needs one")
    print(f"submitted {answer.get('name')}: run {answer.get('run_id')}")
    if answer.get("ui_url"):
        print(answer["ui_url"])
    print(f"status: {server}{answer.get('status_url', '')}")
    return 0


def pack_manifest_folder(manifest_path: Path) -> bytes:
    """The manifest and every file it names (sources, chapter files, cover), zipped with their paths
    relative to the manifest's folder; the manifest is checked first, as `audiobook check` would."""
    import io
    import zipfile

    from tasks.manifest import load_manifest
    from tasks.plan import check_sources_exist

    manifest = load_manifest(manifest_path)
    check_sources_exist(manifest)
    named = [manifest.source] if manifest.source else [c.file for c in manifest.chapters or () if c.file]
    if manifest.cover:
        named.append(manifest.cover)
    folder = manifest.folder.resolve()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(manifest_path, f"{manifest_path.stem}.yaml")
        for rel in dict.fromkeys(n for n in named if n):
            real = manifest.resolve(rel, "source")
            archive.write(real, real.relative_to(folder).as_posix())
    return buffer.getvalue()


class terminal_progress:
    """A progress bar on stderr while a render runs in this process."""

    def __enter__(self) -> terminal_progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from tasks import progress

        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            transient=True, disable=not sys.stderr.isatty(),
        )
        self._bar.start()
        self._task = self._bar.add_task("planning", total=None)
        self._unsubscribe = progress.subscribe(self._update)
        return self

    def _update(self, done: int, total: int, stage: str) -> None:
        self._bar.update(self._task, completed=done, total=total, description=stage)

    def __exit__(self, *exc: object) -> None:
        self._unsubscribe()
        self._bar.stop()


# -- the parser and the one place errors become exit codes --------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from tasks.documents import SUFFIXES

    parser = argparse.ArgumentParser(prog="audiobook", description="Render YAML manifests into audiobooks.")
    sub = parser.add_subparsers(dest="command", required=True)

    render = sub.add_parser("render", help="render a manifest into M4B and per-chapter MP3")
    render.add_argument("manifest", help="path to the manifest (or its name under manifests/)")
    render.add_argument("--output", help="put the book in DIR/<manifest name>/ instead of output/")
    render.add_argument("--engine", help="override the manifest's engine (piper, tortoise)")
    render.add_argument("--cluster", help="a Dask scheduler address (tcp://host:8786) or local:N (N local worker "
                        "processes); default AUDIOBOOK_CLUSTER, else threads in this process")
    render.set_defaults(func=cmd_render)

    check = sub.add_parser("check", help="validate a manifest and print the plan without synthesising")
    check.add_argument("manifest")
    check.add_argument("--engine", help="override the manifest's engine")
    check.add_argument("--text", action="store_true",
                       help="print exactly what will be spoken (the chunk texts, chapter by chapter) to proofread")
    check.set_defaults(func=cmd_check)

    verify = sub.add_parser("verify", help="hear a finished book against its script; print suspicious spans "
                            "(exit 3 when there are any)")
    verify.add_argument("target", metavar="OUTPUT_DIR_OR_MANIFEST")
    verify.add_argument("--threshold", type=float, help="words heard / expected below this is suspicious "
                        "(default: the manifest's verify_threshold)")
    verify.set_defaults(func=cmd_verify)

    voices = sub.add_parser("voices", help="reference voices").add_subparsers(dest="voices_command", required=True)
    voices.add_parser("list", help="list the voices each engine can use").set_defaults(func=cmd_voices_list)
    latents = voices.add_parser("latents", help="compute and cache a Tortoise voice's conditioning latents")
    latents.add_argument("name")
    latents.set_defaults(func=cmd_voices_latents)

    models = sub.add_parser("models", help="engine weights").add_subparsers(dest="models_command", required=True)
    fetch = models.add_parser("fetch", help="download the Tortoise weights (needs internet; for worker images)")
    fetch.add_argument("--dir", help="models folder (default TORTOISE_MODELS_DIR or ~/.cache/tortoise/models)")
    fetch.set_defaults(func=cmd_models_fetch)

    serve = sub.add_parser("serve", help="run the Prefect server, the deployments and the HTTP service")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP service address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="HTTP service port (default 8080)")
    serve.add_argument("--prefect-port", type=int, default=4200,
                       help="port of the Prefect server to start (default 4200; ignored with PREFECT_API_URL)")
    serve.add_argument("--cron", default=os.environ.get("AUDIOBOOK_NIGHTLY_CRON", "0 2 * * *"),
                       help="the nightly schedule (default '0 2 * * *', or AUDIOBOOK_NIGHTLY_CRON)")
    serve.add_argument("--timezone", default=os.environ.get("AUDIOBOOK_TIMEZONE", "UTC"),
                       help="time zone of the schedule (default UTC, or AUDIOBOOK_TIMEZONE)")
    serve.add_argument("--concurrent-books", type=int, default=int(os.environ.get("AUDIOBOOK_CONCURRENT_BOOKS", "1")),
                       help="books rendered at once; the others wait in Prefect's queue (default 1, or "
                       "AUDIOBOOK_CONCURRENT_BOOKS)")
    serve.add_argument("--engine-workers", type=int, default=int(os.environ.get("AUDIOBOOK_ENGINE_WORKERS", "1")),
                       help="long-lived engine worker processes (a local Dask cluster) shared by every render, so a "
                       "model loads once per server; 0: each render loads its own (default 1, or "
                       "AUDIOBOOK_ENGINE_WORKERS)")
    serve.set_defaults(func=cmd_serve)

    submit = sub.add_parser("submit", help="send a book (a manifest and its files, or a document) to a running "
                            "service and queue its render")
    submit.add_argument("path", help="a manifest (its files go with it) or a document "
                        f"({', '.join(SUFFIXES)})")
    submit.add_argument("--server", default=os.environ.get("AUDIOBOOK_SERVER", "http://127.0.0.1:8080"))
    submit.add_argument("--overwrite", action="store_true", help="replace a book of the same name")
    for option in ("name", "title", "author", "narrator", "engine", "voice", "quality"):
        submit.add_argument(f"--{option}", help=f"the book's {option}, for a document without a manifest")
    submit.set_defaults(func=cmd_submit)

    doctor = sub.add_parser("doctor", help="check device, ffmpeg, weights and a one-sentence test render")
    doctor.add_argument("--engine", choices=["piper", "tortoise"])
    doctor.add_argument("--cluster", metavar="ADDRESS", help="list every worker of the Dask cluster at ADDRESS "
                        "(tcp://host:8786): host, device, GPU and free memory, engines loaded, chunks done")
    doctor.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the cluster (default 10)")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def run(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except AudiobookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if os.environ.get("AUDIOBOOK_DEBUG"):
            raise
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished chunks are cached; run the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal fault: say so plainly, trace on request
        if os.environ.get("AUDIOBOOK_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set AUDIOBOOK_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1


def main() -> None:
    sys.exit(run())


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


if __name__ == "__main__":
    main()
