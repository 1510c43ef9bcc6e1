"""Facts from where the work runs (tasks.workers): the chunk keys name the engine version a worker
reports, a worker refuses a job planned for another version, Tortoise refuses a GPU-less pool unless
asked, and every worker of a cluster can be listed. The fake engine for the flow, the real Tortoise
model classes at tiny size (random weights) on CPU for the Tortoise facts."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks import synth
from tasks.cache import chunk_key
from tasks.engines import registry, reset_engines
from tasks.errors import UserError
from tasks.manifest import load_manifest
from tasks.plan import make_plan
from tasks.workers import (
    NoGpuWorkerError,
    WorkerFacts,
    WorkerMismatchError,
    check_gpu,
    check_precision,
    worker_facts,
)
from tests.conftest import fake_engine, write_manifest

REPO = Path(__file__).resolve().parent.parent
HAS_TORTOISE = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("tortoise") is not None
TINY_ENV = {
    "AUDIOBOOK_TORTOISE_MODELS": "tiny", "AUDIOBOOK_TORTOISE_SAMPLES": "2",
    "AUDIOBOOK_TORTOISE_DIFFUSION_STEPS": "2", "AUDIOBOOK_TORTOISE_MAX_MEL_TOKENS": "40",
    "AUDIOBOOK_TORTOISE_REDACTION": "0",
}
BOOK = """
title: Facts
author: Test Author
engine: {engine}
voice: {voice}
quality: draft
credits: false
speak_titles: false
chapters:
  - title: One
    text: "The tide came in. A boat waited by the steps."
  - title: Two
    text: "The tide went out."
"""


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in TINY_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AUDIOBOOK_TORTOISE_DEVICE", "AUDIOBOOK_TORTOISE_PRECISION", "AUDIOBOOK_TORTOISE_HALF",
                 "AUDIOBOOK_TORTOISE_BATCH_ROWS"):
        monkeypatch.delenv(name, raising=False)
    reset_engines()
    registry.reset()  # what earlier tests in this process rendered is not this worker's measurement
    yield
    reset_engines()
    registry.reset()


def fake_book(workdirs: dict[str, Path]) -> Path:
    return write_manifest(workdirs["book"], BOOK.format(engine="fake", voice="v"))


def tortoise_book(workdirs: dict[str, Path]) -> Path:
    import shutil

    shutil.copytree(REPO / "voices" / "joe", workdirs["voices"] / "narrator")
    return write_manifest(workdirs["book"], BOOK.format(engine="tortoise", voice="narrator"))


def facts_like(base: WorkerFacts, **changes: object) -> WorkerFacts:
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# -- keys name what the worker runs ---------------------------------------------------------------------


def test_plan_keys_come_from_the_workers_facts(workdirs: dict[str, Path]) -> None:
    manifest = load_manifest(fake_book(workdirs))
    with fake_engine():
        here = worker_facts("fake", {"quality": "draft"})
        assert (here.engine, here.version, here.device, here.capacity) == ("fake", "fake-1", "cpu", 1)
        gpu_worker = facts_like(here, version="fake-1/fp16", device="cuda", precision="fp16", capacity=8)
        plans = {f.version: make_plan(manifest, engine_name=None, cache_dir=workdirs["cache"],
                                      voices_dir=workdirs["voices"], facts=f) for f in (here, gpu_worker)}
    local, remote = plans["fake-1"], plans["fake-1/fp16"]
    assert remote.job.engine_version == "fake-1/fp16" and remote.engine_info.version == "fake-1/fp16"
    assert remote.engine_info.device == "cuda" and remote.worker == gpu_worker
    for a, b in zip(local.chunks, remote.chunks, strict=True):
        assert a.text == b.text and a.key != b.key
        assert b.key == chunk_key(text=b.text, voice_fingerprint=_fake_fingerprint("v"), engine="fake",
                                  engine_version="fake-1/fp16", settings=remote.job.settings, seed=remote.job.seed)


def _fake_fingerprint(voice: str) -> str:
    from tasks.engines.fake import FakeEngine

    return FakeEngine().voice_fingerprint(voice, None)


def test_a_worker_refuses_a_job_planned_for_another_version(workdirs: dict[str, Path]) -> None:
    manifest = load_manifest(fake_book(workdirs))
    with fake_engine() as engine:
        facts = facts_like(worker_facts("fake", {"quality": "draft"}), version="fake-1/fp16", precision="fp16")
        plan = make_plan(manifest, engine_name=None, cache_dir=workdirs["cache"], voices_dir=workdirs["voices"],
                         facts=facts)
        with pytest.raises(WorkerMismatchError) as caught:
            synth.synthesize_batch(list(plan.chunks), plan.job)
        assert sum(engine.calls.values()) == 0  # refused before the engine spoke a word
    message = str(caught.value)
    assert "'fake-1'" in message and "'fake-1/fp16'" in message and "refuses" in message
    assert not list((workdirs["cache"] / "chunks").glob("*/*.flac"))


def test_the_flow_keys_and_sizes_tasks_from_the_worker(workdirs: dict[str, Path], prefect_harness: None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.render import render_book

    asked: list[WorkerFacts] = []
    real = worker_facts

    def answer(engine: str, settings: dict[str, object], *, prompts: bool = True) -> WorkerFacts:
        asked.append(real(engine, settings, prompts=prompts))
        return asked[-1]

    monkeypatch.setattr("tasks.workers.worker_facts", answer)
    with fake_engine():
        report = render_book(str(fake_book(workdirs))).to_dict()
    assert len(asked) == 1 and report["engine_version"] == asked[0].version == "fake-1"
    assert report["chunks_synthesized"] == report["chunks_total"] > 0


def test_a_precision_asked_by_the_render_is_checked_against_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = WorkerFacts(engine="tortoise", version="v/fp16", device="cuda", precision="fp16", capacity=8, host="gpu-1",
                      needs_gpu=True)
    monkeypatch.delenv("AUDIOBOOK_TORTOISE_PRECISION", raising=False)
    check_precision(gpu)  # nothing asked: the worker's precision is the job's (and its keys')
    monkeypatch.setenv("AUDIOBOOK_TORTOISE_PRECISION", "fp16")
    check_precision(gpu)
    monkeypatch.setenv("AUDIOBOOK_TORTOISE_PRECISION", "fp32")
    with pytest.raises(UserError) as caught:
        check_precision(gpu)
    assert caught.value.exit_code == 2
    assert "asks for fp32 but worker gpu-1 runs Tortoise in fp16" in str(caught.value)
    assert "AUDIOBOOK_TORTOISE_PRECISION=fp32 on the workers" in str(caught.value)
    check_precision(facts_like(gpu, engine="piper", precision="fp32", needs_gpu=False))  # a CPU engine: not asked


# -- GPU or a clear no -----------------------------------------------------------------------------------


def test_no_gpu_message_is_one_line_with_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUDIOBOOK_TORTOISE_DEVICE", raising=False)
    cpu = WorkerFacts(engine="tortoise", version="v/fp32", device="cpu", precision="fp32", capacity=8, host="h",
                      seconds_per_chunk=780.0, needs_gpu=True)
    with pytest.raises(NoGpuWorkerError) as caught:
        check_gpu(cpu)
    assert str(caught.value) == ("no GPU worker: Tortoise on CPU takes ~13 min per chunk; "
                                 "set AUDIOBOOK_TORTOISE_DEVICE=cpu to do it anyway")
    assert caught.value.exit_code == 2
    check_gpu(facts_like(cpu, device="cuda"))  # a GPU worker, a CPU engine, or CPU asked for: no refusal
    check_gpu(facts_like(cpu, engine="piper", needs_gpu=False))
    check_gpu(facts_like(cpu, cpu_forced=True))
    monkeypatch.setenv("AUDIOBOOK_TORTOISE_DEVICE", "cpu")
    check_gpu(cpu)


def test_an_engine_that_needs_a_gpu_says_so_in_its_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU refusal and its estimate come from the engine's class (EngineBase.needs_gpu,
    cpu_seconds_per_chunk), not from its name."""
    from tasks.engines import register_engine, unregister_engine
    from tasks.engines.fake import FakeEngine

    class GpuToy(FakeEngine):
        needs_gpu = True

        def cpu_seconds_per_chunk(self, settings: object) -> float:
            return 180.0

    monkeypatch.delenv("AUDIOBOOK_TORTOISE_DEVICE", raising=False)
    register_engine("gputoy", GpuToy)
    try:
        facts = worker_facts("gputoy", {}, prompts=False)
        plain = worker_facts("fake", {}, prompts=False)
    finally:
        unregister_engine("gputoy")
    assert facts.needs_gpu and facts.device == "cpu" and facts.seconds_per_chunk == 180.0
    with pytest.raises(NoGpuWorkerError, match=r"^no GPU worker: Gputoy on CPU takes ~3 min per chunk;"):
        check_gpu(facts)
    assert not plain.needs_gpu and (plain.measured or plain.seconds_per_chunk is None)  # no estimate; measured
    # when earlier tests in this process rendered with it
    check_gpu(plain)


@pytest.mark.skipif(not HAS_TORTOISE, reason="needs torch and tortoise-tts")
def test_tortoise_facts_on_a_cpu_worker(tiny: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.engines import get_engine

    settings = get_engine("tortoise").settings_for("draft")
    facts = worker_facts("tortoise", settings, prompts=False)
    if facts.device != "cpu":
        pytest.skip("this machine has a GPU")
    assert facts.precision == "fp32" and facts.version.endswith("/models-random-tiny-seed0/fp32")
    assert facts.capacity == 32 // 2 and not facts.cpu_forced and not facts.measured and facts.needs_gpu
    assert facts.seconds_per_chunk and facts.seconds_per_chunk > 0  # the tiny estimate
    monkeypatch.setenv("AUDIOBOOK_TORTOISE_BATCH_ROWS", "6")
    assert worker_facts("tortoise", settings, prompts=False).capacity == 3  # the worker's own setting
    monkeypatch.setenv("AUDIOBOOK_TORTOISE_PRECISION", "fp16")  # a precision this worker cannot run
    reset_engines()
    with pytest.raises(UserError, match="AUDIOBOOK_TORTOISE_PRECISION=fp16 needs a GPU"):
        worker_facts("tortoise", settings, prompts=False)


@pytest.mark.skipif(not HAS_TORTOISE, reason="needs torch and tortoise-tts")
def test_tortoise_render_on_a_gpu_less_pool_stops_before_any_chunk(
    tiny: None, workdirs: dict[str, Path], prefect_harness: None, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from cli import run

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):  # cli sets these: undo afterwards
        monkeypatch.setenv(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", "CRITICAL")
    monkeypatch.setattr("flows.prefect_server.server_healthy", lambda *a, **k: False)
    code = run(["render", str(tortoise_book(workdirs))])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(errors) == 1 and errors[0].startswith("error: no GPU worker: Tortoise on CPU takes ~")
    assert errors[0].endswith("min per chunk; set AUDIOBOOK_TORTOISE_DEVICE=cpu to do it anyway")
    assert "Traceback" not in err
    assert not list((workdirs["cache"] / "chunks").glob("*/*.flac")) and not list(workdirs["output"].iterdir())


@pytest.mark.skipif(not HAS_TORTOISE, reason="needs torch and tortoise-tts")
def test_planning_a_tortoise_book_from_facts_never_imports_torch(workdirs: dict[str, Path]) -> None:
    manifest = tortoise_book(workdirs)
    code = f"""
import sys
from pathlib import Path
from tasks.manifest import load_manifest
from tasks.plan import make_plan
from tasks.workers import WorkerFacts
facts = WorkerFacts(engine="tortoise", version="tortoise-x/fp16", device="cuda", precision="fp16", capacity=16,
                    host="gpu-1", prompt_mode="dropped")
plan = make_plan(load_manifest({str(manifest)!r}), engine_name=None, cache_dir=Path({str(workdirs["cache"])!r}),
                 voices_dir=Path({str(workdirs["voices"])!r}), facts=facts)
assert plan.job.engine_version == "tortoise-x/fp16" and plan.chunks
assert "torch" not in sys.modules, "the planner imported torch"
"""
    env = {**TINY_ENV, "PYTHONPATH": str(REPO), "HOME": str(workdirs["cache"]), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True)


# -- every worker, listed --------------------------------------------------------------------------------


def test_doctor_lists_every_worker_of_a_cluster(workdirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from distributed import LocalCluster

    from cli import run

    registry.reset()
    with fake_engine():
        manifest = load_manifest(fake_book(workdirs))
        plan = make_plan(manifest, engine_name=None, cache_dir=workdirs["cache"], voices_dir=workdirs["voices"])
        synth.synthesize_batch(list(plan.chunks), plan.job)  # chunks done in this process (the workers' too)
        with LocalCluster(n_workers=2, processes=False, threads_per_worker=1, dashboard_address=":0") as cluster:
            code = run(["doctor", "--cluster", str(cluster.scheduler_address)])
    out = capsys.readouterr().out
    assert code == 0, out
    workers = json.loads(out)["workers"]
    assert len(workers) == 2
    for worker in workers:
        assert {"address", "host", "device", "gpu", "gpu_free_gib", "engines_loaded", "chunks_done"} <= set(worker)
        assert worker["engines_loaded"].get("fake") == "cpu"
        assert [d["chunks"] for d in worker["chunks_done"] if d["engine"] == "fake"] == [len(plan.chunks)]


def test_doctor_with_an_unreachable_cluster_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    from cli import run

    code = run(["doctor", "--cluster", "tcp://127.0.0.1:9", "--timeout", "2"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --cluster: cannot reach the Dask scheduler at tcp://127.0.0.1:9")


def test_healthcheck_lists_the_resident_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import LocalCluster

    from service.health import workers

    with LocalCluster(n_workers=1, processes=False, threads_per_worker=1, dashboard_address=":0") as cluster:
        monkeypatch.setenv("AUDIOBOOK_SERVE_CLUSTER", str(cluster.scheduler_address))
        listed = workers(wait_s=60)
    assert listed["cluster"] == str(cluster.scheduler_address) and len(listed["list"]) == 1
    assert {"host", "device", "gpu", "gpu_free_gib", "engines_loaded", "chunks_done"} <= set(listed["list"][0])
    monkeypatch.setenv("AUDIOBOOK_SERVE_CLUSTER", "tcp://127.0.0.1:9")  # gone: reported, never raised
    gone = workers(timeout_s=1, wait_s=30)
    assert gone["list"] == [] and "cannot reach" in gone["error"]


def test_a_pool_with_no_worker_for_synthesis_is_a_clear_error(
    workdirs: dict[str, Path], prefect_harness: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Synthesis needs a `GPU` resource that no worker offers: the facts task waits AUDIOBOOK_WORKER_WAIT_S,
    then the render stops with a UserError that says what to do, before any chunk."""
    from prefect_dask import DaskTaskRunner

    from flows.render import render_book

    monkeypatch.setenv("AUDIOBOOK_TTS_RESOURCE", "GPU")
    monkeypatch.setenv("AUDIOBOOK_WORKER_WAIT_S", "3")
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 1, "threads_per_worker": 1, "processes": False,
                                            "dashboard_address": ":0"})
    with fake_engine() as engine, pytest.raises(UserError) as caught:
        render_book.with_options(task_runner=runner)(str(fake_book(workdirs)))
    assert "no worker answered in 3 s: is there one with the resource GPU?" in str(caught.value)
    assert caught.value.exit_code == 2 and sum(engine.calls.values()) == 0
    assert not list((workdirs["cache"] / "chunks").glob("*/*.flac"))
