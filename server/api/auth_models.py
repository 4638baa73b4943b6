"""Request bodies of the accounts API (pydantic): one model per route, used by the handlers
and by `server/api/openapi.py` for the spec."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from auth.emails import InvalidEmail, MAX_EMAIL_LEN, clean_email
from auth.passwords import MAX_PASSWORD_LEN, MIN_PASSWORD_LEN
from auth.users import MAX_DISPLAY_NAME_LEN
from server.http.validation import Body, SafeStr


def _email(value: str) -> str:
    try:
        return clean_email(value)
    except InvalidEmail as exc:
        raise ValueError(str(exc)) from None


def _display_name(value: str) -> str:
    # Stored and returned verbatim (HTML and SQL included: clients escape, queries bind);
    # only control characters, which no name needs, are refused.
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise ValueError("must not contain control characters")
    return value


Email = Annotated[SafeStr, Field(min_length=3, max_length=MAX_EMAIL_LEN), AfterValidator(_email)]
# Login looks up whatever was typed: a malformed address is just an unknown account.
LoginEmail = Annotated[SafeStr, Field(min_length=1, max_length=MAX_EMAIL_LEN)]
NewPassword = Annotated[SafeStr, Field(min_length=MIN_PASSWORD_LEN, max_length=MAX_PASSWORD_LEN)]
# The length cap is checked before any hashing: a 1 MB password costs nothing.
Password = Annotated[SafeStr, Field(min_length=1, max_length=MAX_PASSWORD_LEN)]
DisplayName = Annotated[SafeStr, Field(max_length=MAX_DISPLAY_NAME_LEN), AfterValidator(_display_name)]
OpaqueToken = Annotated[SafeStr, Field(min_length=1, max_length=256)]


class RegisterBody(Body):
    email: Email
    password: NewPassword
    display_name: DisplayName = ""


class LoginBody(Body):
    email: LoginEmail
    password: Password


class RefreshBody(Body):
    refresh_token: OpaqueToken


class ProfilePatch(Body):
    """Change the display name, the password (with the current one), or both."""

    model_config = ConfigDict(json_schema_extra={"dependentRequired": {"password": ["current_password"]}})

    # Optional but never null: absent means "unchanged" (one meaning, one spelling).
    display_name: DisplayName = None  # type: ignore[assignment]
    password: NewPassword = None  # type: ignore[assignment]
    current_password: Password = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _password_needs_current(self) -> "ProfilePatch":
        if self.password is not None and self.current_password is None:
            raise ValueError("current_password is required to change the password")
        return self


class DeleteAccountBody(Body):
    password: Password


class VerifyEmailBody(Body):
    token: OpaqueToken


class ResetRequestBody(Body):
    email: LoginEmail


class ResetBody(Body):
    token: OpaqueToken
    password: NewPassword


class RoleBody(Body):
    role: Literal["viewer", "admin"]
