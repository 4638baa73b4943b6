"""Request and response bodies of the accounts API (pydantic): the handlers validate requests
with them, and `server/api/openapi.py` builds the document from them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from auth.emails import MAX_EMAIL_LEN, InvalidEmail, clean_email
from auth.passwords import MAX_PASSWORD_LEN, MIN_PASSWORD_LEN
from auth.users import MAX_DISPLAY_NAME_LEN
from server.api.responses import User
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
    display_name: DisplayName = None  # type: ignore[assignment]  # absent = unchanged; the type refuses null
    password: NewPassword = None  # type: ignore[assignment]  # absent = unchanged; the type refuses null
    current_password: Password = None  # type: ignore[assignment]  # absent = unchanged; the type refuses null

    @model_validator(mode="after")
    def _password_needs_current(self) -> ProfilePatch:
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


# ---- responses ----------------------------------------------------------------------------


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"]
    expires_in: int = Field(description="access token lifetime, seconds")


class Accepted(BaseModel):
    status: Literal["accepted"]


class EmailVerified(BaseModel):
    email_verified: Literal[True]


class Session(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    created_at: datetime
    last_seen_at: datetime
    user_agent: str
    ip: str
    current: bool


class SessionList(BaseModel):
    items: list[Session]


class UserPage(BaseModel):
    items: list[User]
    next: str | None = Field(description="opaque; pass as `cursor` for the next page, null on the last")
