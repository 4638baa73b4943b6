"""Typed auth errors; `server/http/errors.py` maps them to HTTP."""

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


class InvalidField(AuthError):
    """A value that passed the schema but not a domain rule (email syntax, role, cursor)."""

    code = "invalid_field"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class LastAdmin(AuthError):
    code = "last_admin"


class RefreshTokenReused(InvalidToken):
    """A rotated refresh token came back: someone holds a copy, so the session is revoked."""

    code = "refresh_token_reused"

    def __init__(self, message: str, *, session_id: str) -> None:
        super().__init__(message)
        self.session_id = session_id


class SessionNotFound(AuthError):
    code = "session_not_found"


class InvalidEmailToken(AuthError):
    """A verification or reset link that is unknown, used, or expired."""

    code = "invalid_email_token"


# ---- playback tokens (auth/playback.py): all 403 at the origin, each with its own code so a
# player, a CDN log or a support engineer can tell why a stream URL was refused.


class PlaybackTokenError(InvalidToken):
    code = "playback_token_invalid"


class PlaybackTokenMissing(PlaybackTokenError):
    code = "playback_token_missing"


class PlaybackTokenMalformed(PlaybackTokenError):
    code = "playback_token_malformed"


class PlaybackTokenUnknownKey(PlaybackTokenError):
    code = "playback_token_unknown_key"


class PlaybackTokenForged(PlaybackTokenError):
    code = "playback_token_bad_signature"


class PlaybackTokenExpired(PlaybackTokenError):
    code = "playback_token_expired"


class PlaybackTokenWrongTitle(PlaybackTokenError):
    code = "playback_token_wrong_title"


class PlaybackTokenWrongVersion(PlaybackTokenError):
    code = "playback_token_wrong_version"


class WrongPassword(AuthError):
    """The current password given to confirm a sensitive change is wrong (403, not 401: the
    access token is fine, and a client must not sign out over it)."""

    code = "wrong_password"
