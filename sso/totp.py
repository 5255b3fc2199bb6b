"""Time-based one-time passwords (RFC 6238) for local logins: HOTP (RFC 4226) over the
30-second step, SHA-1 and six digits as authenticator apps expect, base32 secrets, and the
`otpauth://` URI those apps read from a QR code or a link.

A code is accepted in the current step and one step either side (clock drift between the
phone and the server), and only in a step later than the last one accepted for the same
user: `verify` answers the step it matched, which the caller stores, so a code seen once
(over a shoulder, in a proxy log) cannot be used again.

Pure functions of their arguments: the caller passes the time and the last step used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote, urlencode

STEP_SECONDS = 30
DIGITS = 6
WINDOW = 1  # steps accepted before and after the current one
SECRET_BYTES = 20  # 160 bits, RFC 4226's recommended key length for HMAC-SHA-1
_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


class TotpSecretError(ValueError):
    """A stored or given secret that is not base32."""


def new_secret() -> str:
    """A random secret in base32 without padding (what authenticator apps accept)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")


def secret_key(secret: str) -> bytes:
    """The key bytes of a base32 secret, in any case, with or without padding and spaces."""
    cleaned = secret.replace(" ", "").upper()
    try:
        return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except binascii.Error as exc:
        raise TotpSecretError(f"not a base32 secret: {exc}") from None


def hotp(key: bytes, counter: int, *, digits: int = DIGITS, algorithm: str = "sha1") -> str:
    """RFC 4226: HMAC of the 8-byte counter, dynamically truncated to `digits` digits."""
    mac = hmac.new(key, struct.pack(">Q", counter), _ALGORITHMS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def time_step(unix_time: float) -> int:
    """The RFC 6238 counter T at a Unix time (T0 = 0)."""
    return int(unix_time // STEP_SECONDS)


def code_at(key: bytes, unix_time: float, *, digits: int = DIGITS, algorithm: str = "sha1") -> str:
    """The code an authenticator shows at `unix_time`."""
    return hotp(key, time_step(unix_time), digits=digits, algorithm=algorithm)


def verify(secret: str, code: str, unix_time: float, last_step: int | None) -> int | None:
    """The step `code` belongs to, if it is a code of `secret` within one step of
    `unix_time` and of a step after `last_step`; None otherwise. Spaces in the code (as
    apps show it, "123 456") are ignored."""
    given = code.replace(" ", "")
    if len(given) != DIGITS or not given.isascii() or not given.isdigit():
        return None
    key = secret_key(secret)
    now = time_step(unix_time)
    for step in range(now - WINDOW, now + WINDOW + 1):
        if last_step is not None and step <= last_step:
            continue
        # Each comparison in constant time: a near miss tells nothing about the code.
        if hmac.compare_digest(hotp(key, step), given):
            return step
    return None


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """`otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...` (Key Uri Format), naming the
    algorithm, digits and period explicitly."""
    label = quote(f"{issuer}:{account}", safe="@:")
    query = urlencode(
        {
            "secret": secret,
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": STEP_SECONDS,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"


__all__ = [
    "DIGITS",
    "STEP_SECONDS",
    "WINDOW",
    "TotpSecretError",
    "code_at",
    "hotp",
    "new_secret",
    "provisioning_uri",
    "secret_key",
    "time_step",
    "verify",
]
