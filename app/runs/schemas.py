from typing import Any

from pydantic import BaseModel, Field


class AgentStateRead(BaseModel):
    """The caller's state with an agent, and its version (also the ETag): send it back in
    `If-Match` to write only if nobody wrote since."""

    state: dict[str, Any]
    version: int = Field(ge=0, description="0: nothing stored yet.")


class AgentStateWrite(BaseModel):
    state: dict[str, Any]


class QuickTaskRunRequest(BaseModel):
    """Run a quick task: its prompt, filled with `parameters`, is the user's message."""

    thread_id: str | None = Field(
        default=None, alias="threadId", description="A conversation to continue; new if unset."
    )
    parameters: dict[str, Any] = Field(default_factory=dict)
