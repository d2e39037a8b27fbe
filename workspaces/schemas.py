"""Request and response schemas of the workspace routes."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["viewer", "editor", "owner"]


class WorkspaceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"\S", description="Shown to the members")


class MemberRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    role: Role


class RoleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class WorkspaceOut(BaseModel):
    id: str
    name: str
    role: str = Field(description="The caller's role: viewer, editor or owner")
    created_at: datetime
    members: int


class MemberOut(BaseModel):
    username: str
    role: str


class WorkspaceEnvelope(BaseModel):
    workspace: WorkspaceOut


class WorkspaceDetail(BaseModel):
    workspace: WorkspaceOut
    members: list[MemberOut]


class WorkspaceList(BaseModel):
    workspaces: list[WorkspaceOut]


class MemberEnvelope(BaseModel):
    member: MemberOut
