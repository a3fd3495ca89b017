"""Example upstream behind oidc-sidecar.

It does no OpenID Connect of its own: the sidecar signs users in (browser sessions) or checks their Bearer tokens,
and this app verifies the sidecar's signed assertion (see sidecar_auth.py). Run::

    SIDECAR_JWKS_URL=http://127.0.0.1:9901/.well-known/jwks.json \
        .venv/bin/uvicorn app:app --host 127.0.0.1 --port 8000

Routes:
    GET  /health          public liveness
    ANY  /echo[/...]      what the app received: method, path, query, headers, and the verified user (or why not)
    GET  /api/me          the verified user
    GET  /api/items       items (scope user.read)
    POST /api/items       add an item (scope user.read)
    ANY  /admin/...       admin area (role Admin)
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import Body, Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from sidecar_auth import SidecarUser, get_current_user, get_optional_user, requires_role, requires_scope

app = FastAPI(title="oidc-sidecar example API", version="1.0.0")

_items: list[dict[str, Any]] = [{"id": 1, "name": "first item", "owner": None}]
_items_lock = threading.Lock()


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


def _headers(request: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in request.headers.items():
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


ECHO_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@app.api_route("/echo", methods=ECHO_METHODS)
@app.api_route("/echo/{rest:path}", methods=ECHO_METHODS)
async def echo(request: Request) -> dict:
    # Verification may fetch the sidecar's JWKS: keep that off the event loop.
    user, error = await run_in_threadpool(get_optional_user, request)
    body = await request.body()
    return {
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "headers": _headers(request),
        "body_bytes": len(body),
        "user": user.to_dict() if user else None,
        "auth_error": error,
    }


@app.get("/api/me")
def me(user: SidecarUser = Depends(get_current_user)) -> dict:
    return {"user": user.to_dict()}


@app.get("/api/items")
def list_items(user: SidecarUser = Depends(requires_scope("user.read"))) -> dict:
    with _items_lock:
        return {"items": list(_items), "user": user.sub}


@app.post("/api/items", status_code=201)
def add_item(
    payload: dict = Body(default_factory=dict),
    user: SidecarUser = Depends(requires_scope("user.read")),
) -> dict:
    name = payload.get("name") if isinstance(payload, dict) else None
    with _items_lock:
        item = {"id": len(_items) + 1, "name": str(name or "unnamed")[:200], "owner": user.oid or user.sub}
        _items.append(item)
    return item


@app.api_route("/admin", methods=["GET", "POST"])
@app.api_route("/admin/{rest:path}", methods=["GET", "POST"])
def admin(request: Request, user: SidecarUser = Depends(requires_role("Admin"))) -> dict:
    return {"admin": True, "path": request.url.path, "user": user.to_dict()}
