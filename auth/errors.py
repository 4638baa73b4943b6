"""Typed auth errors; `server/errors.py` maps them to HTTP."""
from __future__ import annotations


class AuthError(Exception):
    code = "auth_error"


class InvalidCredentials(AuthError):
    code = "invalid_credentials"


class InvalidToken(AuthError):
    code = "invalid_token"


class TokenExpired(InvalidToken):
    code = "token_expired"


class SessionRevoked(InvalidToken):
    code = "session_revoked"


class EmailTaken(AuthError):
    code = "email_taken"


class WeakPassword(AuthError):
    code = "weak_password"


class Forbidden(AuthError):
    code = "forbidden"


class UserNotFound(AuthError):
    code = "user_not_found"
