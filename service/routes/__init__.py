"""The routes, one module per resource; each holds an APIRouter and reads what it shares through the
`Context` dependency (service/context.py).

    submit   POST /books, /manifests, /inspect    books in: checked whole, stored, queued
    books    GET /books..., POST /books/{n}/retry the books: state, manifest, cover, downloads
    health   GET /engines, /healthcheck           what this server can render now
    session  GET/POST/DELETE /session             the page's sign-in cookie
    pages    GET /, /book/{name}                  the page (templates/, static/app.js)
"""

from __future__ import annotations

from fastapi import APIRouter

from . import books, health, pages, session, submit

# In this order: a path that two routers share (POST and GET /books) keeps the order it was written in.
ROUTERS: tuple[APIRouter, ...] = (submit.router, books.router, health.router, session.router, pages.router)
