#!/usr/bin/env python3
"""Test keys, JWKS, discovery document, TLS certificate and a long-lived Bearer token for bench/run.sh.

Standard library only; the RSA and X.509 work is done by the `openssl` command line tool, so the
benchmark needs nothing beyond what Debian ships. Every run makes fresh keys: nothing secret is
committed, and the token is useless outside the benchmark's own loopback provider.

Usage: fixtures.py OUTDIR ISSUER AUDIENCE SCOPE
Writes into OUTDIR:
  signing.key        RS256 private key (PKCS#8 PEM)
  jwks.json          the public key as a JWK Set (kid = RFC 7638 thumbprint)
  openid-configuration  discovery document pointing at ISSUER/jwks.json
  token.txt          a JWT valid for 10 years: iss, aud, sub, oid, tid, name, scp, iat, nbf, exp
  tls.crt, tls.key   self-signed certificate for 127.0.0.1 (the JWKS over https for mod_auth_openidc)
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import time


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, check=True, capture_output=True).stdout


def int_bytes(hex_text: str) -> bytes:
    value = int(hex_text, 16)
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    out, issuer, audience, scope = sys.argv[1:]
    os.makedirs(out, exist_ok=True)
    key = os.path.join(out, "signing.key")

    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
    modulus = openssl("rsa", "-in", key, "-noout", "-modulus").decode().strip()
    assert modulus.startswith("Modulus="), modulus
    n = b64url(int_bytes(modulus.split("=", 1)[1]))
    e = b64url(int_bytes("010001"))
    # RFC 7638 thumbprint: members in lexicographic order, no whitespace.
    kid = b64url(hashlib.sha256(json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":")).encode()).digest())
    jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}
    with open(os.path.join(out, "jwks.json"), "w") as f:
        json.dump({"keys": [jwk]}, f)

    discovery = {
        "issuer": issuer,
        "jwks_uri": issuer + "/jwks.json",
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "end_session_endpoint": issuer + "/logout",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }
    with open(os.path.join(out, "openid-configuration"), "w") as f:
        json.dump(discovery, f)

    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": "bench-subject",
        "oid": "00000000-0000-0000-0000-00000000be4c",
        "tid": "00000000-0000-0000-0000-000000000001",
        "name": "Bench User",
        "preferred_username": "bench@example.com",
        "scp": scope,
        "ver": "2.0",
        "iat": now,
        "nbf": now - 60,
        "exp": now + 10 * 365 * 24 * 3600,
    }
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = openssl("dgst", "-sha256", "-sign", key, data=signing_input.encode())
    with open(os.path.join(out, "token.txt"), "w") as f:
        f.write(signing_input + "." + b64url(signature) + "\n")

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", os.path.join(out, "tls.key"), "-out", os.path.join(out, "tls.crt"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
