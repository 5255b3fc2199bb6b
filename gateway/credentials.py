"""Bearer tokens, session cookies and SCIM passwords: generated here, stored only as hashes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets

TOKEN_PREFIX = "idgs_"  # recognisable in secret scanners
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def new_token() -> tuple[str, str, bytes]:
    """(token id shown to people, secret shown once, hash stored)."""
    token_id = "tok_" + secrets.token_hex(8)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token_id, secret, hash_token(secret)


API_KEY_PREFIX = "idgk_"


def new_api_key() -> tuple[str, str, bytes]:
    """(key id shown to people, secret shown once, hash stored)."""
    key_id = "key_" + secrets.token_hex(8)
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key_id, secret, hash_token(secret)


INVITATION_PREFIX = "idgi_"


def new_invitation() -> tuple[str, str, bytes]:
    """(invitation id shown to people, the link's secret shown once, hash stored)."""
    invitation_id = "inv_" + secrets.token_hex(8)
    secret = INVITATION_PREFIX + secrets.token_urlsafe(32)
    return invitation_id, secret, hash_token(secret)


def new_session_secret() -> tuple[str, bytes]:
    """(the session cookie's value, the hash stored)."""
    secret = secrets.token_urlsafe(32)
    return secret, hash_token(secret)


def hash_token(secret: str) -> bytes:
    # The secret has 256 bits of entropy: a plain SHA-256 is enough and constant-time lookup
    # by hash needs no slow KDF.
    return hashlib.sha256(secret.encode()).digest()


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)


async def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = await asyncio.to_thread(_scrypt, password, salt)
    params = ",".join(f"{k}={v}" for k, v in _SCRYPT.items())
    encode = base64.b64encode
    return f"scrypt${params}${encode(salt).decode()}${encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _scheme, _params, salt, digest = stored.split("$")
    except ValueError:
        return False
    computed = _scrypt(password, base64.b64decode(salt))
    return secrets.compare_digest(computed, base64.b64decode(digest))
