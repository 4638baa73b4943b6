"""Password hashing: argon2id at OWASP's recommended parameters (m=19 MiB, t=2, p=1)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from auth.errors import WeakPassword

# Checked before hashing so a megabyte "password" costs nothing (OWASP: limit input length).
MIN_PASSWORD_LEN = 8
MAX_PASSWORD_LEN = 1024

HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the email is unknown, so both failures cost the same time.
_DUMMY_HASH = HASHER.hash("streamflix-dummy-password")


def check_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LEN:
        raise WeakPassword(f"password must be at least {MIN_PASSWORD_LEN} characters")
    if len(password) > MAX_PASSWORD_LEN:
        raise WeakPassword(f"password must be at most {MAX_PASSWORD_LEN} characters")


def hash_password(password: str) -> str:
    check_policy(password)
    return HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if len(password) > MAX_PASSWORD_LEN:
        return False
    try:
        return HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return HASHER.check_needs_rehash(password_hash)
