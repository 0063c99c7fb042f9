"""Stored messages in AG-UI's message format: what `MESSAGES_SNAPSHOT` sends and
`GET /conversations/{id}/messages` returns, so a front end shows the same thread either way.

A message keeps the id the client gave it (`external_id`) when it has one. Tool calls live
in the message's `parts` as `{"type": "tool_call", "id", "name", "arguments"}`; attached
files as `{"type": "file", "file_id", "name", "media_type"}`, which a user message shows as
AG-UI media parts whose source is `{"type": "file", "value": file_id}` (images as `image`,
anything else as `document`); the passages an answer cites (`{"type": "citation", ...}`) as
the assistant message's `metadata.citations`.
"""

from typing import Any

from ag_ui.core import (
    AssistantMessage,
    DeveloperMessage,
    DocumentPart,
    FileSource,
    FunctionCall,
    ImagePart,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
)

from app.conversations.models import Message, MessageRole


def file_parts(message: Message) -> list[dict[str, Any]]:
    """The parts of a message that name a file of its conversation (`{"type": "file", ...}`)."""
    return [part for part in message.parts or [] if part.get("type") == "file"]


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
        citations = [part for part in message.parts if part.get("type") == "citation"]
        agui = AssistantMessage(
            id=identifier,
            content=message.content or None,
            tool_calls=tool_calls or None,
            metadata={"citations": citations} if citations else None,
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
        files = file_parts(message)
        agui = UserMessage(
            id=identifier,
            content=[TextPart(text=message.content), *map(_media_part, files)]
            if files
            else message.content,
        )
    result: dict[str, Any] = agui.model_dump(by_alias=True, exclude_none=True, mode="json")
    return result


def _media_part(file: dict[str, Any]) -> ImagePart | DocumentPart:
    source = FileSource(value=file["file_id"], mime_type=file["media_type"])
    if file["media_type"].startswith("image/"):
        return ImagePart(source=source, metadata={"name": file["name"]})
    return DocumentPart(source=source, metadata={"name": file["name"]})
