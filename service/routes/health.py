"""What this server can do now: GET /engines (engines and voices for the page's form) and
GET /healthcheck (engines, GPU, Prefect, workers)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..context import Context
from ..health import available_engines, health

router = APIRouter()


@router.get("/engines")
def engines(context: Context) -> list[dict[str, Any]]:
    return available_engines(context.config.voices)


@router.get("/healthcheck")
def healthcheck() -> dict[str, Any]:
    return health()
