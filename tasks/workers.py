"""Facts from where the work runs: a worker's device, precision and batch capacity, asked once per render.

    worker_facts(engine, settings) -> WorkerFacts   runs ON the worker (a placed Prefect task, see
                                                     flows.render.ask_worker); loads no model
    check_gpu(facts)                                 on the renderer: Tortoise on a GPU-less pool is
                                                     refused (exit 2) unless AUDIOBOOK_TORTOISE_DEVICE=cpu
    check_precision(facts)                           on the renderer: AUDIOBOOK_TORTOISE_PRECISION set here
                                                     and a worker that runs another: refused (exit 2)
    check_job(job)                                   on the worker, before it renders: a job planned for
                                                     another engine version (precision, weights) is refused
    worker_status() / cluster_workers(address)       what each worker is and has done (doctor, /healthcheck)

The renderer never builds a model nor imports torch for these facts: the chunk keys name the engine
version the worker reports (its precision included), and the task size is the worker's capacity.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tasks import settings as envs  # the environment's settings ('settings' here: an engine's)
from tasks.errors import EngineError, UserError

if TYPE_CHECKING:
    from tasks.plan import SynthJob


class NoGpuWorkerError(UserError):
    """A Tortoise render found no GPU where synthesis runs."""


class WorkerMismatchError(EngineError):
    """A worker was handed a job planned for an engine version (precision, weights) it does not run."""


@dataclass(frozen=True)
class WorkerFacts:
    """One worker's answer for one render's engine and settings."""

    engine: str
    version: str  # the engine version as this worker runs it: the chunk keys' engine_version
    device: str  # "cuda", "cpu", ...
    precision: str  # "fp16" | "fp32"
    capacity: int  # chunks one engine call renders together at the job's settings
    host: str
    gpu: str | None = None
    gpu_free_gib: float | None = None
    cpu_forced: bool = False  # AUDIOBOOK_TORTOISE_DEVICE=cpu where the worker runs
    needs_gpu: bool = False  # the engine's class says it needs a GPU (EngineBase.needs_gpu)
    prompt_mode: str | None = None  # "redact" or "dropped" (Engine.prompt_mode), when prompts are asked for
    seconds_per_chunk: float | None = None  # measured on this worker, or estimated (Tortoise on CPU)
    measured: bool = False


def _gpu() -> tuple[str | None, float | None]:
    """(GPU name, free GiB) of this process's first CUDA device, or (None, None). Imports torch only
    when it is installed."""
    if importlib.util.find_spec("torch") is None:
        return None, None
    try:
        import torch

        if not torch.cuda.is_available():
            return None, None
        free, _ = torch.cuda.mem_get_info()
        return str(torch.cuda.get_device_name(0)), round(free / 2**30, 1)
    except Exception:  # a broken driver: report no GPU rather than fail the question
        return None, None


def resolved_version(engine: Any) -> str:
    """The engine's version once its device is known (Tortoise finds it on first use)."""
    getattr(engine, "device", None)
    return str(engine.info.version)


def worker_facts(engine_name: str, settings: Mapping[str, Any], *, prompts: bool = True) -> WorkerFacts:
    """This worker's facts for `engine_name` at `settings`: run where synthesis runs. Builds the engine
    and finds its device (no TTS model is loaded; with `prompts`, Tortoise looks for its prompt aligner
    once per worker); raises UserError for a precision it cannot honour."""
    from tasks.engines import get_engine, registry
    from tasks.engines.base import batch_capacity

    engine = get_engine(engine_name)
    version = resolved_version(engine)
    device = engine.info.device
    precision = str(getattr(engine, "precision", "fp32"))
    gpu, free = _gpu() if device.startswith("cuda") else (None, None)
    measured = registry.seconds_per_chunk(engine_name, device)
    estimator = getattr(engine, "cpu_seconds_per_chunk", None)  # EngineBase's (a test double may have none)
    estimate = estimator(settings) if estimator is not None and device == "cpu" else None
    prompt_mode = engine.prompt_mode if prompts and engine.info.supports_prompts else None
    return WorkerFacts(
        engine=engine_name, version=version, device=device, precision=precision,
        capacity=batch_capacity(engine, settings), host=socket.gethostname(), gpu=gpu, gpu_free_gib=free,
        cpu_forced=_cpu_forced(), needs_gpu=bool(getattr(engine, "needs_gpu", False)),
        prompt_mode=prompt_mode, seconds_per_chunk=measured if measured is not None else estimate,
        measured=measured is not None,
    )


def _cpu_forced() -> bool:
    """AUDIOBOOK_TORTOISE_DEVICE=cpu: Tortoise on CPUs even so."""
    return (envs.TORTOISE_DEVICE.get() or "").strip().lower() == "cpu"


def check_gpu(facts: WorkerFacts) -> None:
    """On the renderer, before any chunk: Tortoise with no GPU where it runs stops with one line, unless
    AUDIOBOOK_TORTOISE_DEVICE=cpu is set here or on the worker."""
    if not facts.needs_gpu or facts.device.startswith("cuda") or facts.cpu_forced:
        return
    if _cpu_forced():
        return
    minutes = (facts.seconds_per_chunk or 0.0) / 60
    figure = f"{minutes:.0f}" if minutes >= 1 else f"{minutes:.1f}"
    raise NoGpuWorkerError(f"no GPU worker: {facts.engine.capitalize()} on CPU takes ~{figure} min per chunk; "
                           "set AUDIOBOOK_TORTOISE_DEVICE=cpu to do it anyway")


def check_precision(facts: WorkerFacts) -> None:
    """On the renderer, before any chunk: an explicit AUDIOBOOK_TORTOISE_PRECISION here is the job's;
    a worker that runs another precision is refused (the keys would name what did not run)."""
    asked = (envs.TORTOISE_PRECISION.get() or "").strip().lower()
    if facts.needs_gpu and asked and asked != facts.precision:
        raise UserError(f"the render asks for {asked} but worker {facts.host} runs {facts.engine.capitalize()} in "
                        f"{facts.precision} "
                        f"on {facts.device}", field="AUDIOBOOK_TORTOISE_PRECISION",
                        fix=f"set AUDIOBOOK_TORTOISE_PRECISION={asked} on the workers too (fp16 needs a GPU), "
                        "or leave it unset to take what the workers run")


def check_job(job: SynthJob) -> None:
    """On the worker, before rendering: refuse a job whose chunk keys name another engine version (its
    precision, its weights) than the one this worker runs, instead of storing other audio under them."""
    if not job.engine_version:
        return
    from tasks.engines import get_engine

    engine = get_engine(job.engine)
    running = resolved_version(engine)
    if running != job.engine_version:
        raise WorkerMismatchError(
            f"worker {socket.gethostname()} ({engine.info.device}) runs {job.engine} as {running!r}, but the book "
            f"was planned for {job.engine_version!r}: it refuses the task rather than render other audio under "
            "those keys. Give every worker the same AUDIOBOOK_TORTOISE_PRECISION and weights, and render again."
        )


# -- what each worker is and has done ------------------------------------------------------------------


def worker_status() -> dict[str, Any]:
    """This process as a worker: host, pid, device, GPU name and free memory, the engines it has
    loaded and the chunks they have spoken (tasks.engines.registry). Run on each worker by client.run."""
    from tasks.engines import loaded_engines, registry

    engines: dict[str, str] = {}
    for name, engine in loaded_engines().items():
        engines[name] = getattr(engine, "_device", engine.info.device) or "unresolved"  # Tortoise: until first use
    gpu, free = _gpu()
    device = next((d for d in engines.values() if d.startswith("cuda")), "cuda" if gpu else "cpu")
    return {
        "host": socket.gethostname(), "pid": os.getpid(), "python": sys.version.split()[0], "device": device,
        "gpu": gpu, "gpu_free_gib": free, "engines_loaded": engines, "chunks_done": registry.done(),
    }


def cluster_workers(address: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Every worker of the Dask cluster at `address` (worker_status on each, with its Dask address and
    declared resources). UserError when the scheduler cannot be reached."""
    from distributed import Client

    try:
        client = Client(address, timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        raise UserError(f"cannot reach the Dask scheduler at {address}: {exc}", field="--cluster",
                        fix="give the scheduler's address (tcp://host:8786) and check that it runs") from None
    with client:
        declared = client.scheduler_info().get("workers", {})
        answers = client.run(worker_status)
    return [{"address": addr, "resources": declared.get(addr, {}).get("resources", {}), **status}
            for addr, status in sorted(answers.items())]
