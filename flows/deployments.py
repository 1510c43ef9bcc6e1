"""The Prefect deployments `audiobook serve` runs: render-book (one book on demand) and nightly (cron).

The render deployment's entrypoint is a module path, so a render runs wherever the package is installed
(a container's site-packages, /data as the working folder), not only from a checkout.
"""

from __future__ import annotations

from typing import Any

from tasks import settings

RENDER_DEPLOYMENT = "render-book/render-book"
NIGHTLY_DEPLOYMENT = "nightly/nightly"


def _resident_render_flow() -> Any:
    """render-book on the server's resident workers (in a render's process, where serve set
    AUDIOBOOK_SERVE_CLUSTER: tasks.settings.SERVE_CLUSTER), else render-book as it is. The served
    deployment's entrypoint names this object."""
    from flows.render import render_book

    address = settings.SERVE_CLUSTER.get()
    if not address:
        return render_book
    from prefect_dask import DaskTaskRunner

    return render_book.with_options(task_runner=DaskTaskRunner(address=address))  # type: ignore[arg-type]


render_book_resident = _resident_render_flow()


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
        render.entrypoint = "flows.deployments.render_book_resident"
    return [
        render,
        nightly.to_deployment(
            name="nightly", schedules=[Cron(cron, timezone=timezone)],
            description="Re-render every manifest whose inputs changed since its last render.",
            tags=["audiobook"], entrypoint_type=EntrypointType.MODULE_PATH,
        ),
    ]
