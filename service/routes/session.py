"""The page's sign-in: GET /session (signed in?), POST /session (the token, checked once, into an
HttpOnly SameSite=Strict cookie that holds an HMAC of it), DELETE /session (sign out)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..auth import client_of, refuse_cross_site, session_value, signed_in, token_matches
from ..config import TOKEN_COOKIE, Refusal
from ..context import Context

COOKIE_MAX_AGE_S = 30 * 24 * 3600
router = APIRouter()


@router.get("/session")
def session(request: Request, context: Context) -> dict[str, Any]:
    config = context.config
    return {"token_required": config.token is not None, "signed_in": signed_in(request, config),
            "public_downloads": config.public_downloads}


@router.post("/session")
async def sign_in(request: Request, context: Context) -> JSONResponse:
    """Check the token once and keep it in an HttpOnly, SameSite=Strict cookie (JavaScript never
    holds it after this request)."""
    config = context.config
    refuse_cross_site(request, config)
    if config.token is not None:
        context.guesses.check(client_of(request))
    try:
        form = await request.form(max_files=0, max_fields=2, max_part_size=4096)
    except Exception as exc:  # malformed form: starlette raises MultiPartException / HTTPException
        raise Refusal(400, f"field 'token': malformed form: {getattr(exc, 'detail', None) or exc}") from None
    token = form.get("token")
    await form.close()
    if config.token is None:
        return JSONResponse({"signed_in": True, "token_required": False})
    if not isinstance(token, str) or not token_matches(token.strip(), config.token):
        context.guesses.failed(client_of(request))
        raise Refusal(401, "field 'token': wrong token: ask whoever runs the service for it")
    response = JSONResponse({"signed_in": True, "token_required": True})
    response.set_cookie(TOKEN_COOKIE, session_value(config.token), max_age=COOKIE_MAX_AGE_S, path="/",
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


@router.delete("/session")
def sign_out(request: Request, context: Context) -> JSONResponse:
    refuse_cross_site(request, context.config)
    response = JSONResponse({"signed_in": False})
    response.delete_cookie(TOKEN_COOKIE, path="/", httponly=True, samesite="strict")
    return response
