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
from collections.abc import Iterator
from typing import Any

from flows.deployments import NIGHTLY_DEPLOYMENT, RENDER_DEPLOYMENT, build_deployments
from flows.prefect_server import prefect_server
from tasks import paths, settings
from tasks.errors import DependencyError, UserError


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
    from service import PrefectRunBackend, ServerThread, ServiceConfig, create_app

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
    address = settings.CLUSTER.get() or ""
    if address and not address.startswith("local:"):
        yield address
        return
    if count <= 0:
        yield None
        return
    from distributed import LocalCluster

    resources = {resource: 1} if (resource := settings.TTS_RESOURCE.get()) else None
    with LocalCluster(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=":0",
                      resources=resources) as cluster:
        yield str(cluster.scheduler_address)


def serve(*, host: str, port: int, prefect_port: int, cron: str, timezone: str, concurrent_books: int = 1,
          engine_workers: int = 1, start_prefect: bool = True) -> None:
    """`start_prefect`: run a Prefect server for the service's life; PREFECT_API_URL must already name
    it (cli.commands.cmd_serve sets it before Prefect is imported). Else use the server it names."""
    from service import PrefectRunBackend, ServiceConfig

    check_exposure(host, ServiceConfig.from_env().token)  # before anything starts
    os.chdir(paths.project_root())  # deployments name their flows by paths relative to the checkout
    with prefect_server(prefect_port, start=start_prefect) as api_url, resident_workers(engine_workers) as cluster:
        from prefect import serve as prefect_serve

        ui_url = api_url.removesuffix("/api")
        settings.PUBLIC_URL.setdefault(f"http://{host}:{port}")  # download links in run summaries
        if cluster:
            settings.SERVE_CLUSTER.set(cluster)  # inherited by every render's process
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
