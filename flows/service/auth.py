"""Who may do what: the bearer token (or the page's HttpOnly cookie holding it), loopback-only
without a token, and a same-origin check for requests that carry the cookie."""

from __future__ import annotations

import hmac
import ipaddress
import urllib.parse

from starlette.requests import Request

from .config import TOKEN_COOKIE, Refusal, ServiceConfig


def is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site request (browsers send Origin on every POST)
    return urllib.parse.urlsplit(origin).netloc == request.headers.get("host", "")


def require_auth(request: Request, config: ServiceConfig) -> None:
    """The bearer token, else the cookie the page set (POST /session); without a token configured,
    loopback clients only. A cookie on a state-changing request must come from this origin."""
    if config.token is None:
        if not is_loopback(request):
            raise Refusal(403, "this service has no token set (AUDIOBOOK_TOKEN), so it accepts this only from "
                               "the machine it runs on; set AUDIOBOOK_TOKEN to allow other clients")
        return
    given = bearer(request)
    from_cookie = given is None
    if from_cookie:
        given = request.cookies.get(TOKEN_COOKIE) or None
    if given is None:
        raise Refusal(401, "missing token: send 'Authorization: Bearer <token>' (or sign in on the page)",
                      {"WWW-Authenticate": 'Bearer realm="audiobook"'})
    if not token_matches(given, config.token):
        raise Refusal(401, "wrong token", {"WWW-Authenticate": 'Bearer realm="audiobook", error="invalid_token"'})
    if from_cookie and request.method not in ("GET", "HEAD") and not _same_origin(request):
        raise Refusal(403, "a request from another site: submit from this service's own page")


def signed_in(request: Request, config: ServiceConfig) -> bool:
    try:
        require_auth(request, config)
    except Refusal:
        return False
    return True
