"""The identity tokens the gateway hands to the product: compact JWS (RFC 7515) signed with
ES256 (ECDSA P-256, SHA-256), the public keys as a JWK Set (RFC 7517) the product verifies
them with. Pure functions over plain data; the caller passes keys and times.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ALG = "ES256"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key() -> tuple[str, str]:
    """(kid, private key PEM) of a new P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return "k-" + secrets.token_hex(8), pem


def _private(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("an identity token key must be an EC P-256 key")
    return key


def public_jwk(kid: str, private_pem: str) -> dict[str, str]:
    numbers = _private(private_pem).public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
        "kid": kid,
        "use": "sig",
        "alg": ALG,
    }


def jwks(keys: list[tuple[str, str]]) -> dict[str, list[dict[str, str]]]:
    """The JWK Set of (kid, private PEM) pairs: their public halves only."""
    return {"keys": [public_jwk(kid, pem) for kid, pem in keys]}


def sign(kid: str, private_pem: str, claims: dict[str, Any]) -> str:
    """A compact JWS of `claims`, typ JWT, signed ES256 (the signature as R || S)."""
    header = {"alg": ALG, "typ": "JWT", "kid": kid}
    signing_input = (
        _b64(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(claims, separators=(",", ":")).encode())
    )
    der = _private(private_pem).sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return signing_input + "." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def identity_claims(
    *,
    issuer: str,
    tenant: str,
    user_id: str,
    email: str | None,
    groups: tuple[str, ...],
    roles: tuple[str, ...],
    project_roles: tuple[tuple[str, str], ...],
    now: int,
    lifetime: int,
) -> dict[str, Any]:
    """What a token says: who (sub, email), what they may do (organisation `roles`, `groups`,
    `projects`: project name -> roles), for which tenant (aud `idgate:<tenant>`, so a token of
    one tenant is refused by another's product), from whom, until when."""
    projects: dict[str, list[str]] = {}
    for project, role in project_roles:
        projects.setdefault(project, []).append(role)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": f"idgate:{tenant}",
        "sub": user_id,
        "tenant": tenant,
        "groups": list(groups),
        "roles": list(roles),
        "projects": projects,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": secrets.token_hex(12),
    }
    if email:
        claims["email"] = email
    return claims
