"""CopilotKit's runtime protocol, as its browser client (`@copilotkit/core`) reads it: field
names in camelCase, shapes as the runtime (`@copilotkit/runtime` 1.75.0, `handlers/`) answers
them."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# The runtime version whose protocol these routes speak (what `/info` reports).
PROTOCOL_VERSION = "1.75.0"


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True)


class AgentDescription(CamelModel):
    name: str
    class_name: str = Field(description="Always `HttpAgent`: every agent is served over AG-UI.")
    description: str


class ThreadEndpoints(CamelModel):
    list: bool
    inspect: bool
    mutations: bool
    realtime_metadata: bool


class RuntimeInfo(CamelModel):
    version: str
    agents: dict[str, AgentDescription] = Field(
        description="The agents the caller's organization may use, by id (the `agentId` the "
        "front end names)."
    )
    audio_file_transcription_enabled: bool
    mode: Literal["sse"]
    thread_endpoints: ThreadEndpoints
    suggestions: bool
    a2ui_enabled: bool = Field(alias="a2uiEnabled")
    open_generative_ui_enabled: bool = Field(alias="openGenerativeUIEnabled")
    telemetry_disabled: bool


class Thread(CamelModel):
    id: str
    name: str | None
    agent_id: str
    organization_id: str
    created_by_id: str
    archived: bool
    created_at: datetime
    updated_at: datetime


class ThreadPage(CamelModel):
    threads: list[Thread]
    next_cursor: str | None


class ThreadMessages(CamelModel):
    messages: list[dict[str, Any]] = Field(
        description="The thread oldest first: `id`, `role`, `content`, and an assistant's "
        "`toolCalls` as `{id, name, args}`, a tool result's `toolCallId`."
    )


class ThreadState(CamelModel):
    state: dict[str, Any] | None


class ThreadEvents(CamelModel):
    events: list[dict[str, Any]] = Field(description="What `connect` replays, as AG-UI events.")


class StopRequest(CamelModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str | None = Field(
        default=None, min_length=1, description="Stop only this run (else the thread's)."
    )


class StopInterrupt(CamelModel):
    type: Literal["RUN_ERROR"] = "RUN_ERROR"
    message: str
    code: str


class StopResult(CamelModel):
    stopped: bool
    message: str | None = None
    interrupt: StopInterrupt | None = None
