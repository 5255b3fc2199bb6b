"""Passwords of local logins: argon2id hashes (RFC 9106), made and checked in a worker
thread, since one takes tens of milliseconds of CPU and 64 MiB that would otherwise stall
every request the event loop serves.

The rules are few on purpose (NIST SP 800-63B): a length, and not the e-mail address.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # a bound on the work one attempt can ask for

# argon2-cffi's defaults are RFC 9106's second recommended option: argon2id, t=3, 64 MiB, p=4.
_HASHER = PasswordHasher()
_dummy: str | None = None


def password_problem(password: str, email: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"The password must have at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"The password must have at most {MAX_LENGTH} characters."
    if password.strip().lower() == email.strip().lower():
        return "The password must not be your e-mail address."
    return None


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


def _verify(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str, password: str) -> bool:
    return await asyncio.to_thread(_verify, stored, password)


async def verify_nothing(password: str) -> None:
    """Spend on a login with no account the time a real check takes, so that the time of
    the answer does not tell which e-mail addresses have one."""
    global _dummy
    if _dummy is None:
        _dummy = await hash_password(secrets.token_urlsafe(16))
    await verify_password(_dummy, password)


__all__ = [
    "MAX_LENGTH",
    "MIN_LENGTH",
    "hash_password",
    "password_problem",
    "verify_nothing",
    "verify_password",
]
