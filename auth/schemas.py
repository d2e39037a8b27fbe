"""Request and response schemas of the auth routes (validation and OpenAPI both use them)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.pagination import NumberedPageQuery

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,64}$"


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a "role" sent here is dropped, never trusted

    username: str = Field(pattern=USERNAME_PATTERN, description="3-64 letters, digits, '_', '.', '-'; case-insensitive")
    password: str = Field(min_length=8, max_length=1024, description="At least 8 characters")


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class ApiKeyRequest(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="A label to recognise the key by")


class UserOut(BaseModel):
    id: int
    username: str
    role: str = Field(description="user or admin")
    must_change_password: bool = Field(default=False, description="An admin reset the password: change it first")


class UserEnvelope(BaseModel):
    user: UserOut


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires")


class AccessToken(BaseModel):
    access_token: str
    expires_in: int


class Message(BaseModel):
    message: str


class ApiKeyCreated(BaseModel):
    id: int
    name: str
    key: str = Field(description="The key itself: shown this once, only its hash is stored")


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The first characters of the key, to recognise it")
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyList(BaseModel):
    api_keys: list[ApiKeyOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class PasswordChangeRequest(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024, description="At least 8 characters")


class PasswordChanged(BaseModel):
    message: str
    access_token: str | None = Field(description="A new login for a token caller (its old tokens end); "
                                                 "null for an API key or a browser (new cookies are set)")
    refresh_token: str | None
    token_type: str = "Bearer"
    expires_in: int | None


class AdminUserOut(BaseModel):
    id: int
    username: str
    role: str
    disabled: bool
    created_at: datetime
    last_login: datetime | None


class AdminUserEnvelope(BaseModel):
    user: AdminUserOut


class AdminUserList(BaseModel):
    users: list[AdminUserOut]
    total: int = Field(description="Accounts matching `q`, over all pages")


class AdminUsersQuery(NumberedPageQuery):
    q: str = Field(default="", max_length=64, description="Part of the username")


class AdminUserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "admin"] | None = None
    disabled: bool | None = None


class TemporaryPassword(BaseModel):
    temporary_password: str = Field(description="Shown once; the account must change it at its next login")
