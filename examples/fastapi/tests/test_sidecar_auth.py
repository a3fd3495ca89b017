"""The example app accepts exactly the assertions its sidecar signs, for it, now; and enforces roles and scopes."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

import sidecar_auth
from conftest import SigningKey, claims_for

H = "X-Auth-Assertion"


def test_health_is_public(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_valid_assertion_accepted(client, mint):
    r = client.get("/api/me", headers={H: mint()})
    assert r.status_code == 200, r.text
    user = r.json()["user"]
    assert user["sub"] == "0e7b8c3e-3b7f-44ed-8153-8a568a6408c6"
    assert user["name"] == "Alice Admin"
    assert user["email"] == "alice@example.com"
    assert user["roles"] == ["Admin", "Items.Read"]
    assert user["groups"] == ["3c4048fd-0c58-4c83-924b-74d703c2171b"]
    assert user["scopes"] == ["user.read", "profile"]
    assert user["auth_method"] == "session"


def test_missing_header_401(client):
    r = client.get("/api/me")
    assert r.status_code == 401
    assert "missing X-Auth-Assertion" in r.json()["detail"]
    assert r.headers["www-authenticate"].startswith("Sidecar")


def test_plain_identity_headers_are_not_trusted(client):
    # Only the signed assertion counts: a forged X-Auth-User without it is refused.
    r = client.get("/api/me", headers={"X-Auth-User": "admin", "X-Auth-Roles": "Admin"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    "overrides,reason",
    [
        ({"aud": "other.example.com"}, "another audience"),
        ({"aud": ["other.example.com", "third.example.com"]}, "another audience"),
        ({"iss": "someone-else"}, "unexpected issuer"),
        ({"exp": int(time.time()) - 120, "iat": int(time.time()) - 600}, "expired"),
        ({"exp": None}, "invalid assertion"),
        ({"iat": int(time.time()) + 3600, "exp": int(time.time()) + 4000}, "future"),
        ({"sub": None}, "invalid assertion"),
    ],
)
def test_bad_claims_401(client, mint, overrides, reason):
    r = client.get("/api/me", headers={H: mint(**overrides)})
    assert r.status_code == 401, r.text
    assert reason in r.json()["detail"]


def test_audience_array_containing_ours_accepted(client, mint):
    r = client.get("/api/me", headers={H: mint(aud=["other.example.com", "api.example.com"])})
    assert r.status_code == 200


def test_audience_is_the_request_host_with_or_without_port(auth, mint):
    from fastapi.testclient import TestClient

    from app import app

    with_port = TestClient(app, base_url="http://api.example.com:8080")
    assert with_port.get("/api/me", headers={H: mint(aud="api.example.com:8080")}).status_code == 200
    assert with_port.get("/api/me", headers={H: mint(aud="api.example.com")}).status_code == 200
    assert with_port.get("/api/me", headers={H: mint(aud="api.example.co")}).status_code == 401


def test_configured_audience_overrides_host(jwks_server, mint):
    from fastapi.testclient import TestClient

    from app import app

    sidecar_auth.configure(
        sidecar_auth.SidecarAuth(jwks=sidecar_auth.JwksCache(jwks_server.url), audiences=["https://api.internal"])
    )
    try:
        c = TestClient(app, base_url="http://api.example.com")
        assert c.get("/api/me", headers={H: mint(aud="https://api.internal")}).status_code == 200
        assert c.get("/api/me", headers={H: mint(aud="api.example.com")}).status_code == 401
    finally:
        sidecar_auth.configure(None)


def _tamper(token: str, **changes) -> str:
    h, p, s = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    payload.update(changes)
    p2 = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{h}.{p2}.{s}"


def test_tampered_payload_401(client, mint):
    r = client.get("/admin/x", headers={H: _tamper(mint(roles=["Reader"]), roles=["Admin"])})
    assert r.status_code == 401
    assert "invalid assertion" in r.json()["detail"]


def test_truncated_signature_401(client, mint):
    r = client.get("/api/me", headers={H: mint()[:-10]})
    assert r.status_code == 401


def test_key_not_from_the_sidecar_401(client, mint):
    stranger = SigningKey(kid="stranger")
    r = client.get("/api/me", headers={H: mint(signing_key=stranger)})
    assert r.status_code == 401
    assert "unknown key" in r.json()["detail"]


def test_known_kid_but_other_key_401(client, mint, key):
    impostor = SigningKey(kid=key.kid)
    r = client.get("/api/me", headers={H: mint(signing_key=impostor)})
    assert r.status_code == 401


@pytest.mark.parametrize("alg", ["HS256", "none"])
def test_other_algorithms_401(client, key, alg):
    if alg == "none":
        token = jwt.encode(claims_for(), None, algorithm="none", headers={"kid": key.kid})
    else:
        token = jwt.encode(claims_for(), "k" * 32, algorithm="HS256", headers={"kid": key.kid})
    r = client.get("/api/me", headers={H: token})
    assert r.status_code == 401
    assert "algorithm not allowed" in r.json()["detail"]


def test_two_assertion_headers_401(client, mint):
    r = client.get("/api/me", headers=[(H, mint()), (H, mint())])
    assert r.status_code == 401


def test_requires_role(client, mint):
    assert client.get("/admin/dashboard", headers={H: mint()}).status_code == 200
    r = client.get("/admin/dashboard", headers={H: mint(roles=["Reader"])})
    assert r.status_code == 403
    assert r.json()["detail"] == "role 'Admin' required"
    # Roles are case-sensitive app-role values; no prefix/substring matching.
    assert client.get("/admin/dashboard", headers={H: mint(roles=["admin", "Admins"])}).status_code == 403
    assert client.get("/admin/dashboard", headers={H: mint(roles=None)}).status_code == 403


def test_requires_scope(client, mint):
    assert client.get("/api/items", headers={H: mint()}).status_code == 200
    r = client.post("/api/items", json={"name": "widget"}, headers={H: mint()})
    assert r.status_code == 201
    assert r.json()["name"] == "widget"
    for scp in [None, "", "user.read.all", "user", "profile"]:
        r = client.get("/api/items", headers={H: mint(scp=scp)})
        assert r.status_code == 403, scp
        assert r.json()["detail"] == "scope 'user.read' required"
    # A role named like the scope is not the scope.
    assert client.get("/api/items", headers={H: mint(scp=None, roles=["user.read"])}).status_code == 403


def test_echo_reports_headers_and_user(client, mint):
    r = client.post("/echo/deep/link?x=1", headers={H: mint(), "X-Custom": "yes"}, content=b"abc")
    assert r.status_code == 200
    body = r.json()
    assert body["method"] == "POST"
    assert body["path"] == "/echo/deep/link"
    assert body["query"] == "x=1"
    assert body["headers"]["x-custom"] == "yes"
    assert body["body_bytes"] == 3
    assert body["user"]["name"] == "Alice Admin"
    anon = client.get("/echo").json()
    assert anon["user"] is None
    assert "missing" in anon["auth_error"]


def test_jwks_cached_then_refetched_on_unknown_kid(client, mint, jwks_server):
    assert client.get("/api/me", headers={H: mint()}).status_code == 200
    assert client.get("/api/me", headers={H: mint()}).status_code == 200
    assert jwks_server.hits == 1, "second request served from the cache"
    rotated = SigningKey(kid="rotated")
    jwks_server.keys.append(rotated.public_jwk())
    assert client.get("/api/me", headers={H: mint(signing_key=rotated)}).status_code == 200
    assert jwks_server.hits == 2, "unknown kid triggered one refetch"


def test_unknown_kid_refetch_is_rate_limited(jwks_server, key):
    now = [1000.0]
    cache = sidecar_auth.JwksCache(jwks_server.url, ttl=300, min_refetch_interval=30, clock=lambda: now[0])
    cache.key(key.kid)
    for _ in range(5):
        with pytest.raises(sidecar_auth.AssertionError_):
            cache.key("random-kid")
    assert jwks_server.hits == 1
    now[0] += 31
    with pytest.raises(sidecar_auth.AssertionError_):
        cache.key("random-kid")
    assert jwks_server.hits == 2


def test_ttl_expiry_refetches_and_keeps_last_good_keys_on_failure(key):
    now = [0.0]
    calls = []

    def fetch(url, timeout):
        calls.append(url)
        if len(calls) > 1:
            raise OSError("sidecar admin port unreachable")
        return {"keys": [key.public_jwk()]}

    cache = sidecar_auth.JwksCache("http://unused", ttl=60, fetch=fetch, clock=lambda: now[0])
    assert cache.key(key.kid) is not None
    now[0] = 61
    assert cache.key(key.kid) is not None, "stale keys still used when the refetch fails"
    assert len(calls) == 2


def test_no_keys_at_all_is_401_not_500(client, mint, jwks_server):
    jwks_server.keys.clear()
    r = client.get("/api/me", headers={H: mint()})
    assert r.status_code == 401


def test_jwks_unreachable_is_401_not_500(mint):
    from fastapi.testclient import TestClient

    from app import app

    sidecar_auth.configure(sidecar_auth.SidecarAuth(jwks=sidecar_auth.JwksCache("http://127.0.0.1:9/jwks.json", timeout=0.5)))
    try:
        r = TestClient(app, base_url="http://api.example.com").get("/api/me", headers={H: mint()})
        assert r.status_code == 401
        assert "keys unavailable" in r.json()["detail"]
    finally:
        sidecar_auth.configure(None)
