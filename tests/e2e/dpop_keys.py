"""DPoP keys and proofs for the e2e tests (RFC 9449 §4.2), built with PyJWT, and RFC 7638
thumbprints computed here, independently of the server's."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Optional

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

KINDS = {  # kind -> (generate, PyJWT algorithm class, alg)
    "ec": (lambda: ec.generate_private_key(ec.SECP256R1()), jwt.algorithms.ECAlgorithm, "ES256"),
    "rsa": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            jwt.algorithms.RSAAlgorithm, "PS256"),
    "ed": (ed25519.Ed25519PrivateKey.generate, jwt.algorithms.OKPAlgorithm, "EdDSA"),
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class DpopKey:
    alg: str
    private_key: Any
    public_jwk: dict
    private_jwk: dict

    @property
    def jkt(self) -> str:
        """RFC 7638: the required members, sorted, compact JSON, SHA-256, base64url."""
        required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"),
                    "OKP": ("crv", "kty", "x")}[self.public_jwk["kty"]]
        canonical = json.dumps({m: self.public_jwk[m] for m in required},
                               separators=(",", ":"), sort_keys=True)
        return b64url(hashlib.sha256(canonical.encode()).digest())


def new_key(kind: str = "ec") -> DpopKey:
    generate, algorithm, alg = KINDS[kind]
    private_key = generate()

    def as_jwk(key) -> dict:
        out = algorithm.to_jwk(key, as_dict=True)
        out.pop("key_ops", None)
        return out

    return DpopKey(alg, private_key, as_jwk(private_key.public_key()), as_jwk(private_key))


def proof(key: DpopKey, method: str, url: str, *, header: Optional[dict] = None,
          signing_key: Any = None, alg: Optional[str] = None, **claims: Any) -> str:
    """A DPoP proof (RFC 9449 §4.2) by `key` for `method` `url` now, with a fresh jti; `claims`
    override (None removes one), `header` adds or replaces header members."""
    body = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time())}
    for name, value in claims.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    headers = {"typ": "dpop+jwt", "jwk": key.public_jwk, **(header or {})}
    return jwt.encode(body, signing_key or key.private_key, algorithm=alg or key.alg,
                      headers=headers)


def ath(access_token: str) -> str:
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())
