"""Who may do what, and from where.

- The Host header must be one this service answers to (`host_allowed`): without a token, loopback
  names only, so a DNS-rebinding page (evil.example resolving to 127.0.0.1) gets nothing; with a
  token any name unless AUDIOBOOK_ALLOWED_HOSTS lists them (a reverse proxy's public name).
- A write (any method but GET and HEAD) from another site's page is refused in every mode
  (`cross_site`: the browser's Origin and Sec-Fetch-Site headers); so is a script's read of a
  protected file (a download, a manifest) from another site. Clients that are not browsers send
  neither header and are not affected.
- With a token: the bearer token, or the page's HttpOnly cookie, which holds an HMAC of the token
  (`session_value`), never the token itself. Without one: loopback clients only.
- Wrong tokens are counted per client (`Guesses`): past GUESS_LIMIT in GUESS_WINDOW_S, 429.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import ipaddress
import threading
import time
import urllib.parse

from starlette.requests import Request

from .config import LOOPBACK_HOSTS, TOKEN_COOKIE, Refusal, ServiceConfig, split_host

GUESS_LIMIT = 10
GUESS_WINDOW_S = 60.0


def is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def session_value(token: str) -> str:
    """What the sign-in cookie holds: an HMAC of the token (a stolen cookie does not reveal the token;
    changing the token signs every page out)."""
    return hmac.new(token.encode(), b"audiobook page session v1", hashlib.sha256).hexdigest()


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def host_allowed(request: Request, config: ServiceConfig) -> bool:
    """Whether the Host header names this service (see the module docstring)."""
    host = split_host(request.headers.get("host", ""))
    allowed = config.allowed_hosts
    if allowed is None:
        return config.token is not None or host in LOOPBACK_HOSTS
    return "*" in allowed or host in allowed or host in LOOPBACK_HOSTS


def cross_site(request: Request, config: ServiceConfig) -> bool:
    """Whether a browser says this request comes from another site's page: Sec-Fetch-Site, or an
    Origin that is not this service's own (a reverse proxy's public name counts when it is listed in
    AUDIOBOOK_ALLOWED_HOSTS)."""
    if request.headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    netloc = urllib.parse.urlsplit(origin).netloc.lower()
    if not netloc:  # "null": a sandboxed frame, a file:// page
        return True
    if netloc == request.headers.get("host", "").lower():
        return False
    listed = config.allowed_hosts or ()
    return "*" in listed or split_host(netloc) not in listed


def refuse_cross_site(request: Request, config: ServiceConfig) -> None:
    """Refuse a write from another site's page, and a script's read of a protected file from one (a
    link followed from elsewhere, a navigation, is fine)."""
    if not cross_site(request, config):
        return
    if request.method in ("GET", "HEAD") and request.headers.get("sec-fetch-mode", "navigate") == "navigate":
        return
    raise Refusal(403, "a request from another site's page: use this service's own page (or a client that is "
                       "not a browser)")


class Guesses:
    """Wrong tokens per client address within a sliding window."""

    def __init__(self, limit: int = GUESS_LIMIT, window_s: float = GUESS_WINDOW_S) -> None:
        self.limit, self.window_s = limit, window_s
        self._seen: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> collections.deque[float]:
        seen = self._seen.setdefault(client, collections.deque())
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        return seen

    def check(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            seen = self._recent(client, now)
            if len(seen) >= self.limit:
                wait = max(1, int(seen[0] + self.window_s - now) + 1)
                raise Refusal(429, f"too many wrong tokens from this address: wait {wait} s and try again",
                              {"Retry-After": str(wait)})

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._recent(client, now).append(now)


def _guesses(request: Request) -> Guesses | None:
    """The app's count of wrong tokens (service.context.ServiceContext.guesses), when there is one."""
    state = getattr(request.scope.get("app"), "state", None)
    return getattr(getattr(state, "context", None), "guesses", None)


def client_of(request: Request) -> str:
    return request.client.host if request.client else "?"


def require_auth(request: Request, config: ServiceConfig) -> None:
    """The bearer token, else the cookie the page set (POST /session); without a token configured,
    loopback clients only. Requests from another site's page are refused in every mode."""
    refuse_cross_site(request, config)
    if config.token is None:
        if not is_loopback(request):
            raise Refusal(403, "this service has no token set (AUDIOBOOK_TOKEN), so it accepts this only from "
                               "the machine it runs on; set AUDIOBOOK_TOKEN to allow other clients")
        return
    guesses = _guesses(request)
    given = bearer(request)
    if given is None:
        cookie = request.cookies.get(TOKEN_COOKIE) or None
        if cookie is not None and token_matches(cookie, session_value(config.token)):
            return
        if cookie is None:
            raise Refusal(401, "missing token: send 'Authorization: Bearer <token>' (or sign in on the page)",
                          {"WWW-Authenticate": 'Bearer realm="audiobook"'})
        raise Refusal(401, "the page's sign-in has expired (the token changed): sign in again",
                      {"WWW-Authenticate": 'Bearer realm="audiobook"'})
    if guesses is not None:
        guesses.check(client_of(request))
    if not token_matches(given, config.token):
        if guesses is not None:
            guesses.failed(client_of(request))
        raise Refusal(401, "wrong token", {"WWW-Authenticate": 'Bearer realm="audiobook", error="invalid_token"'})


def signed_in(request: Request, config: ServiceConfig) -> bool:
    try:
        require_auth(request, config)
    except Refusal:
        return False
    return True
