"""Trust the oidc-sidecar in front of this app, and nothing else.

The sidecar authenticates every request (browser session or Bearer token), applies its route policy, and forwards
the caller's identity as a short-lived ES256 JWT in ``X-Auth-Assertion``, signed with a key published at the
sidecar's admin JWKS endpoint (``http://127.0.0.1:9901/.well-known/jwks.json`` by default, reachable only from
inside the task). The plain ``X-Auth-*`` headers are convenient to log, but only the signed assertion proves
anything: if something other than the sidecar can reach this app, headers can be forged, signatures cannot.

Usage::

    from fastapi import Depends
    from sidecar_auth import SidecarUser, get_current_user, requires_role, requires_scope

    @app.get("/api/me")
    def me(user: SidecarUser = Depends(get_current_user)): ...

    @app.post("/admin/reindex", dependencies=[Depends(requires_role("Admin"))])
    def reindex(): ...

Configuration (environment, read once at import unless a custom :class:`SidecarAuth` is installed):

- ``SIDECAR_JWKS_URL``      default ``http://127.0.0.1:9901/.well-known/jwks.json``
- ``SIDECAR_ISSUER``        default ``oidc-sidecar`` (the sidecar's ``[identity] assertion_issuer``)
- ``SIDECAR_AUDIENCE``      comma-separated; default: the Host the request came to (with and without port)
- ``SIDECAR_HEADER_PREFIX`` default ``X-Auth-``
- ``SIDECAR_JWKS_TTL``      seconds the key set is cached, default 300
- ``SIDECAR_LEEWAY``        seconds of clock skew accepted on exp/iat, default 10
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

import jwt
from fastapi import Depends, HTTPException, Request, status

__all__ = [
    "AssertionError_",
    "JwksCache",
    "SidecarAuth",
    "SidecarUser",
    "configure",
    "get_auth",
    "get_current_user",
    "get_optional_user",
    "requires_role",
    "requires_scope",
]

ALGORITHMS = ["ES256"]
MAX_ASSERTION_BYTES = 64 * 1024


class AssertionError_(Exception):
    """The assertion is missing or not acceptable; the message says why (safe to return to the caller)."""


class JwksCache:
    """The sidecar's public keys, cached for ``ttl`` seconds and refetched when an unknown ``kid`` shows up.

    Refetches on an unknown kid are limited to one per ``min_refetch_interval`` seconds, so a client sending random
    kids cannot turn every request into a JWKS fetch. On a failed fetch the last known keys stay in use.
    """

    def __init__(
        self,
        url: str,
        ttl: float = 300.0,
        min_refetch_interval: float = 5.0,
        timeout: float = 2.0,
        fetch: Optional[Callable[[str, float], dict]] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_refetch_interval = min_refetch_interval
        self.timeout = timeout
        self._fetch = fetch or _http_get_json
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._fetched_at: Optional[float] = None
        self.fetch_count = 0

    def _refresh_locked(self) -> None:
        self.fetch_count += 1
        self._fetched_at = self._clock()  # also on failure: rate-limits retries
        document = self._fetch(self.url, self.timeout)
        keys: dict[str, Any] = {}
        for jwk in document.get("keys", []):
            kid = jwk.get("kid")
            if not isinstance(kid, str) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
                continue
            if jwk.get("use") not in (None, "sig"):
                continue
            try:
                keys[kid] = jwt.PyJWK(jwk, algorithm="ES256").key
            except jwt.PyJWTError:
                continue
        self._keys = keys

    def key(self, kid: str) -> Any:
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self.ttl
            unknown = kid not in self._keys
            may_refetch = self._fetched_at is None or now - self._fetched_at >= self.min_refetch_interval
            if stale or (unknown and may_refetch):
                try:
                    self._refresh_locked()
                except Exception as exc:  # network, JSON: keep last known keys
                    if not self._keys:
                        raise AssertionError_(f"sidecar keys unavailable: {type(exc).__name__}") from exc
            found = self._keys.get(kid)
        if found is None:
            raise AssertionError_("assertion signed with an unknown key")
        return found


def _http_get_json(url: str, timeout: float) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as res:  # noqa: S310 - URL is configuration, not input
        return json.loads(res.read(1 << 20))


@dataclass(frozen=True)
class SidecarUser:
    """Who the sidecar says is calling. Authorize on ``oid``/``roles``/``scopes``/``groups``, never on names."""

    sub: str
    oid: Optional[str]
    tid: Optional[str]
    name: Optional[str]
    email: Optional[str]
    roles: tuple[str, ...]
    groups: tuple[str, ...]
    scopes: tuple[str, ...]
    auth_method: Optional[str]
    claims: dict = field(repr=False, compare=False)

    @classmethod
    def from_claims(cls, claims: dict) -> "SidecarUser":
        scp = claims.get("scp")
        scopes = tuple(scp.split()) if isinstance(scp, str) else ()
        return cls(
            sub=claims["sub"],
            oid=_str_or_none(claims.get("oid")),
            tid=_str_or_none(claims.get("tid")),
            name=_str_or_none(claims.get("name")),
            email=_str_or_none(claims.get("email")),
            roles=_str_tuple(claims.get("roles")),
            groups=_str_tuple(claims.get("groups")),
            scopes=scopes,
            auth_method=_str_or_none(claims.get("auth_method")),
            claims=claims,
        )

    def to_dict(self) -> dict:
        return {
            "sub": self.sub,
            "oid": self.oid,
            "tid": self.tid,
            "name": self.name,
            "email": self.email,
            "roles": list(self.roles),
            "groups": list(self.groups),
            "scopes": list(self.scopes),
            "auth_method": self.auth_method,
        }


def _str_or_none(v: Any) -> Optional[str]:
    return v if isinstance(v, str) else None


def _str_tuple(v: Any) -> tuple[str, ...]:
    if isinstance(v, list):
        return tuple(x for x in v if isinstance(x, str))
    return ()


class SidecarAuth:
    """Verifies ``X-Auth-Assertion``: ES256 signature by a sidecar key, ``iss``, ``aud``, ``exp``/``iat``."""

    def __init__(
        self,
        jwks: JwksCache,
        issuer: str = "oidc-sidecar",
        audiences: Iterable[str] = (),
        header_prefix: str = "X-Auth-",
        leeway: float = 10.0,
    ) -> None:
        self.jwks = jwks
        self.issuer = issuer
        self.audiences = [a for a in audiences if a]
        self.header = f"{header_prefix}Assertion"
        self.leeway = leeway

    @classmethod
    def from_env(cls, env: Optional[dict] = None) -> "SidecarAuth":
        env = os.environ if env is None else env
        return cls(
            jwks=JwksCache(
                env.get("SIDECAR_JWKS_URL", "http://127.0.0.1:9901/.well-known/jwks.json"),
                ttl=float(env.get("SIDECAR_JWKS_TTL", "300")),
            ),
            issuer=env.get("SIDECAR_ISSUER", "oidc-sidecar"),
            audiences=[a.strip() for a in env.get("SIDECAR_AUDIENCE", "").split(",")],
            header_prefix=env.get("SIDECAR_HEADER_PREFIX", "X-Auth-"),
            leeway=float(env.get("SIDECAR_LEEWAY", "10")),
        )

    def expected_audiences(self, request: Request) -> list[str]:
        if self.audiences:
            return self.audiences
        host = (request.headers.get("host") or "").strip().lower()
        if not host:
            return []
        bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return list(dict.fromkeys([host, bare]))

    def verify(self, token: str, audiences: list[str]) -> dict:
        if len(token) > MAX_ASSERTION_BYTES:
            raise AssertionError_("assertion too large")
        if not audiences:
            raise AssertionError_("no audience to check the assertion against")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AssertionError_("malformed assertion") from exc
        if header.get("alg") not in ALGORITHMS:
            raise AssertionError_("assertion algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AssertionError_("assertion has no kid")
        key = self.jwks.key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=audiences,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"], "strict_aud": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AssertionError_("assertion expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise AssertionError_("assertion is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise AssertionError_("assertion from an unexpected issuer") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AssertionError_("assertion issued in the future") from exc
        except jwt.PyJWTError as exc:
            raise AssertionError_(f"invalid assertion ({type(exc).__name__})") from exc
        if not isinstance(claims.get("sub"), str):
            raise AssertionError_("assertion subject is not a string")
        return claims

    def user_from_request(self, request: Request) -> SidecarUser:
        values = request.headers.getlist(self.header)
        if not values:
            raise AssertionError_(f"missing {self.header} header (is the app reachable without the sidecar?)")
        if len(values) > 1:
            raise AssertionError_(f"more than one {self.header} header")
        return SidecarUser.from_claims(self.verify(values[0].strip(), self.expected_audiences(request)))


_auth: Optional[SidecarAuth] = None
_auth_lock = threading.Lock()


def configure(auth: SidecarAuth) -> None:
    """Installs the verifier used by the dependencies (tests, or apps that build their own settings)."""
    global _auth
    with _auth_lock:
        _auth = auth


def get_auth() -> SidecarAuth:
    global _auth
    with _auth_lock:
        if _auth is None:
            _auth = SidecarAuth.from_env()
        return _auth


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": 'Sidecar realm="oidc-sidecar"'},
    )


def get_current_user(request: Request) -> SidecarUser:
    """FastAPI dependency: the verified caller, or 401."""
    try:
        return get_auth().user_from_request(request)
    except AssertionError_ as exc:
        raise _unauthorized(str(exc)) from exc


def get_optional_user(request: Request) -> tuple[Optional[SidecarUser], Optional[str]]:
    """The verified caller and no error, or no caller and why (for public routes that adapt to the caller)."""
    try:
        return get_auth().user_from_request(request), None
    except AssertionError_ as exc:
        return None, str(exc)


def requires_role(role: str) -> Callable[..., SidecarUser]:
    """Dependency factory: the caller must hold app role ``role`` (in ``roles``), else 403."""

    def dependency(user: SidecarUser = Depends(get_current_user)) -> SidecarUser:
        if role not in user.roles:
            raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=f"role {role!r} required")
        return user

    dependency.__name__ = f"requires_role_{role}"
    return dependency


def requires_scope(scope: str) -> Callable[..., SidecarUser]:
    """Dependency factory: ``scope`` must be one of the space-separated ``scp`` items (exact match), else 403.

    A role with the same name does not count: scopes are delegated permissions, roles are assignments.
    """

    def dependency(user: SidecarUser = Depends(get_current_user)) -> SidecarUser:
        if scope not in user.scopes:
            raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=f"scope {scope!r} required")
        return user

    dependency.__name__ = f"requires_scope_{scope}"
    return dependency
