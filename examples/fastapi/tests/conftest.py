"""Fixtures: a locally generated P-256 "sidecar" key, a real HTTP server publishing its JWKS, and a minter of
assertions shaped like the sidecar's."""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sidecar_auth  # noqa: E402
from app import app  # noqa: E402

TENANT = "8f2d6b1c-3c4a-4e7b-9a5d-1b2c3d4e5f60"


class SigningKey:
    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or uuid.uuid4().hex[:16]
        self.private = ec.generate_private_key(ec.SECP256R1())

    def public_jwk(self) -> dict:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        return jwk


class JwksServer:
    """Serves {"keys": [...]} on 127.0.0.1 and counts fetches."""

    def __init__(self) -> None:
        self.keys: list[dict] = []
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.hits += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def jwks_server():
    srv = JwksServer()
    yield srv
    srv.close()


@pytest.fixture()
def key(jwks_server):
    k = SigningKey()
    jwks_server.keys.append(k.public_jwk())
    return k


@pytest.fixture()
def auth(jwks_server):
    """The verifier the app uses, pointed at the local JWKS server; audience = the request's Host."""
    a = sidecar_auth.SidecarAuth(jwks=sidecar_auth.JwksCache(jwks_server.url, ttl=300, min_refetch_interval=0))
    sidecar_auth.configure(a)
    yield a
    sidecar_auth.configure(None)


@pytest.fixture()
def client(auth):
    return TestClient(app, base_url="http://api.example.com")


def claims_for(**overrides) -> dict:
    now = int(time.time())
    claims = {
        "iss": "oidc-sidecar",
        "aud": "api.example.com",
        "sub": "0e7b8c3e-3b7f-44ed-8153-8a568a6408c6",
        "oid": "0e7b8c3e-3b7f-44ed-8153-8a568a6408c6",
        "tid": TENANT,
        "name": "Alice Admin",
        "email": "alice@example.com",
        "roles": ["Admin", "Items.Read"],
        "groups": ["3c4048fd-0c58-4c83-924b-74d703c2171b"],
        "scp": "user.read profile",
        "auth_method": "session",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture()
def mint(key):
    def _mint(signing_key: SigningKey | None = None, headers: dict | None = None, **overrides) -> str:
        k = signing_key or key
        return jwt.encode(claims_for(**overrides), k.private, algorithm="ES256", headers={"kid": k.kid, **(headers or {})})

    return _mint
