"""`audiobook serve`: a Prefect server (unless PREFECT_API_URL names one), the `render-book` and
`nightly` deployments served from this process, and the HTTP service beside them.

    prefect server      127.0.0.1:4200 (--prefect-port), SQLite in PREFECT_HOME (.prefect/)
    deployments         render-book/render-book, nightly/nightly (cron, default 02:00 in --timezone)
    HTTP service        --host/--port (default 127.0.0.1:8080): submit manifests, download books

Flow runs started by the deployments run as child processes of this one (Prefect's runner), so a
crash in one render never takes the service down. At most `--concurrent-books` render at once; the
others wait in Prefect as scheduled runs. On start, runs a stopped `serve` left running are put back
in the queue, so every book that was queued or rendering finishes (from the cache: nothing is lost).

Resident engines: with `--engine-workers N` (default 1; 0: threads inside each render, as
`audiobook render` does) the service starts a local Dask cluster of N single-threaded worker
processes and every render's tasks run on it (prefect-dask), so an engine's model loads once per
worker for the life of the server, not once per book. AUDIOBOOK_CLUSTER=tcp://host:8786 uses an
existing scheduler instead (one `dask worker` per GPU, see "Many machines").

Never an open server by accident: listening on an address other than loopback needs a token.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks import paths
from tasks.errors import DependencyError, UserError

RENDER_DEPLOYMENT = "render-book/render-book"
NIGHTLY_DEPLOYMENT = "nightly/nightly"
CLUSTER_ENV = "AUDIOBOOK_SERVE_CLUSTER"  # set by serve for its renders: the resident workers' scheduler


def _resident_render_flow() -> Any:
    """render-book on the server's resident workers (in a render's process, where serve set
    CLUSTER_ENV), else render-book as it is. The served deployment's entrypoint names this object."""
    from flows.render import render_book

    address = os.environ.get(CLUSTER_ENV)
    if not address:
        return render_book
    from prefect_dask import DaskTaskRunner

    return render_book.with_options(task_runner=DaskTaskRunner(address=address))  # type: ignore[arg-type]


render_book_resident = _resident_render_flow()


def wait_healthy(api_url: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    from flows.cli import server_healthy

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server_healthy(api_url):
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.5)
    raise DependencyError(
        f"the Prefect server at {api_url} did not become healthy in {timeout_s:.0f} s",
        fix="see .prefect/server.log; another process may hold the port (use --prefect-port)",
    )


@contextlib.contextmanager
def prefect_server(port: int, *, timeout_s: float = 120) -> Iterator[str]:
    """Use PREFECT_API_URL when set; else start `prefect server start` on 127.0.0.1:`port`."""
    if url := os.environ.get("PREFECT_API_URL"):
        wait_healthy(url, timeout_s)
        yield url
        return
    api_url = f"http://127.0.0.1:{port}/api"
    home = Path(os.environ["PREFECT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "server.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PREFECT_UI_API_URL": api_url},
    )
    try:
        wait_healthy(api_url, timeout_s, process)
        os.environ["PREFECT_API_URL"] = api_url
        yield api_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def build_deployments(cron: str, timezone: str, *, resident: bool = False) -> list[Any]:
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from flows.nightly import nightly
    from flows.render import render_book

    # Module paths, not file paths: a render runs from wherever the package is installed (a container's
    # site-packages, with /data as the working folder), not only from a checkout.
    render: Any = render_book.to_deployment(
        name="render-book", description="Render one book: `manifest` is a manifest path or its name.",
        tags=["audiobook"], entrypoint_type=EntrypointType.MODULE_PATH,
    )
    if resident:  # the same flow, loaded from here so that its tasks go to the resident workers
        render.entrypoint = "flows.serve.render_book_resident"
    return [
        render,
        nightly.to_deployment(
            name="nightly", schedules=[Cron(cron, timezone=timezone)],
            description="Re-render every manifest whose inputs changed since its last render.",
            tags=["audiobook"], entrypoint_type=EntrypointType.MODULE_PATH,
        ),
    ]


def is_loopback_host(host: str) -> bool:
    """Whether every address `host` names is a loopback one (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def check_exposure(host: str, token: str | None) -> None:
    if token is None and not is_loopback_host(host):
        raise UserError(
            f"refusing to listen on {host} without a token: anyone who can reach it could submit books",
            field="--host", fix="set AUDIOBOOK_TOKEN (or AUDIOBOOK_TOKEN_FILE), or listen on 127.0.0.1",
        )


def http_service(host: str, port: int, ui_url: str | None) -> Any:
    """The HTTP service, to run in a background thread (`with http_service(...):`)."""
    from flows.service import PrefectRunBackend, ServerThread, ServiceConfig, create_app

    config = ServiceConfig.from_env()
    check_exposure(host, config.token)
    if ui_url and not config.prefect_ui_url:
        config = dataclasses.replace(config, prefect_ui_url=ui_url)
    try:
        return ServerThread(create_app(config, PrefectRunBackend(config)), host, port)
    except OSError as exc:
        raise DependencyError(f"the HTTP service cannot listen on {host}:{port}: {exc.strerror}",
                              fix="is the port in use? choose another with --port") from None


@contextlib.contextmanager
def resident_workers(count: int) -> Iterator[str | None]:
    """The scheduler address of the engines' long-lived worker processes: AUDIOBOOK_CLUSTER's when it
    names one, else a local Dask cluster of `count` single-threaded processes (None when 0)."""
    address = os.environ.get("AUDIOBOOK_CLUSTER", "")
    if address and not address.startswith("local:"):
        yield address
        return
    if count <= 0:
        yield None
        return
    from distributed import LocalCluster

    resources = {os.environ["AUDIOBOOK_TTS_RESOURCE"]: 1} if os.environ.get("AUDIOBOOK_TTS_RESOURCE") else None
    with LocalCluster(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=":0",
                      resources=resources) as cluster:
        yield str(cluster.scheduler_address)


def serve(*, host: str, port: int, prefect_port: int, cron: str, timezone: str, concurrent_books: int = 1,
          engine_workers: int = 1) -> None:
    from flows.service import PrefectRunBackend, ServiceConfig

    check_exposure(host, ServiceConfig.from_env().token)  # before anything starts
    os.chdir(paths.project_root())  # deployments name their flows by paths relative to the checkout
    with prefect_server(prefect_port) as api_url, resident_workers(engine_workers) as cluster:
        from prefect import serve as prefect_serve

        ui_url = api_url.removesuffix("/api")
        os.environ.setdefault("AUDIOBOOK_PUBLIC_URL", f"http://{host}:{port}")  # download links in run summaries
        if cluster:
            os.environ[CLUSTER_ENV] = cluster  # inherited by every render's process
        deployments = build_deployments(cron, timezone, resident=cluster is not None)
        for deployment in deployments:  # registered before the HTTP service accepts a submission
            deployment.apply()
        resumed = PrefectRunBackend(ServiceConfig.from_env()).resume_interrupted()
        with http_service(host, port, ui_url) as http:
            print(f"Prefect UI:   {ui_url}", flush=True)
            print(f"HTTP service: {http.url}/", flush=True)
            print(f"Deployments:  {RENDER_DEPLOYMENT}, {NIGHTLY_DEPLOYMENT} (cron '{cron}', {timezone}); "
                  f"{concurrent_books} book(s) at once", flush=True)
            print(f"Engines:      {f'resident workers at {cluster}' if cluster else 'loaded by each render'}",
                  flush=True)
            if resumed:
                print(f"Requeued after a restart: {', '.join(resumed)}", flush=True)
            prefect_serve(*deployments, print_starting_message=False, limit=concurrent_books)
