"""Stored messages in AG-UI's message format: what `MESSAGES_SNAPSHOT` sends and
`GET /conversations/{id}/messages` returns, so a front end shows the same thread either way.

A message keeps the id the client gave it (`external_id`) when it has one. Tool calls live
in the message's `parts` as `{"type": "tool_call", "id", "name", "arguments"}`.
"""

from typing import Any

from ag_ui.core import (
    AssistantMessage,
    DeveloperMessage,
    FunctionCall,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
)

from app.conversations.models import Message, MessageRole


def to_ag_ui(message: Message) -> dict[str, Any]:
    identifier = message.external_id or str(message.id)
    agui: Any
    if message.role == MessageRole.assistant:
        tool_calls = [
            ToolCall(
                id=part["id"],
                type="function",
                function=FunctionCall(name=part["name"], arguments=part.get("arguments", "")),
            )
            for part in message.parts
            if part.get("type") == "tool_call"
        ]
        agui = AssistantMessage(
            id=identifier, content=message.content or None, tool_calls=tool_calls or None
        )
    elif message.role == MessageRole.tool:
        agui = ToolMessage(
            id=identifier, content=message.content, tool_call_id=message.tool_call_id or ""
        )
    elif message.role == MessageRole.system:
        agui = SystemMessage(id=identifier, content=message.content)
    elif message.role == MessageRole.developer:
        agui = DeveloperMessage(id=identifier, content=message.content)
    else:
        agui = UserMessage(id=identifier, content=message.content)
    result: dict[str, Any] = agui.model_dump(by_alias=True, exclude_none=True, mode="json")
    return result
