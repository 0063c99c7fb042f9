"""The built-in tools a run executes on the server, offered to the model when the agent's
capabilities allow them.

- `search_knowledge`: the agent's knowledge and the conversation's files, through the one
  retrieval function (app/knowledge/service.py); the passages go back to the model numbered,
  and their citations into the answer's parts.
- `read_file`: the text of a file of the conversation (at most READ_FILE_MAX_CHARS).
- `update_state`: changes the user's state with the agent by a JSON Patch: the change is
  saved (a new version) and streamed to the client as `STATE_DELTA`.

A tool that cannot do what it was asked answers the model with `{"error": ...}` rather than
failing the run: the model can correct itself or tell the user.
"""

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents import service as agents_service
from app.agents.schemas import Capability
from app.core.db import set_tenant, unit_of_work
from app.core.errors import AppError
from app.files import media_types
from app.files import service as files_service
from app.files.storage import Storage
from app.knowledge import parsing
from app.knowledge import service as knowledge_service
from app.knowledge.embedders import Embedders
from app.knowledge.repository import Scope
from app.knowledge.schemas import SearchResult
from app.runs import state_service
from app.runs.errors import InvalidStatePatch

if TYPE_CHECKING:
    from app.runs.service import PreparedRun

READ_FILE_MAX_CHARS = 20_000


def _function(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
            },
        },
    }


SEARCH_KNOWLEDGE = _function(
    Capability.search_knowledge.value,
    "Search your knowledge (and the files of this conversation) for passages about a query. "
    "Answers numbered passages with their sources; cite them as [1], [2].",
    {"query": {"type": "string", "description": "What to look for, in a few words."}},
)
READ_FILE = _function(
    Capability.read_file.value,
    "Read the text of a file attached to this conversation, by its id.",
    {"file_id": {"type": "string"}},
)
UPDATE_STATE = _function(
    Capability.update_state.value,
    "Change the state you share with the user (what the app shows), as a JSON Patch "
    "(RFC 6902) list of operations on it.",
    {
        "operations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"op": {"type": "string"}, "path": {"type": "string"}, "value": {}},
                "required": ["op", "path"],
            },
        }
    },
)
_BY_CAPABILITY = {
    Capability.search_knowledge: SEARCH_KNOWLEDGE,
    Capability.read_file: READ_FILE,
    Capability.update_state: UPDATE_STATE,
}


def server_tools(capabilities: list[str]) -> list[dict[str, Any]]:
    return [tool for capability, tool in _BY_CAPABILITY.items() if capability in capabilities]


@dataclass(frozen=True)
class ToolOutcome:
    content: str  # what the model reads
    state_operations: list[dict[str, Any]] | None = None  # applied to the state: STATE_DELTA
    citations: list[dict[str, Any]] = field(default_factory=list)  # for the answer's parts


def _error(message: str) -> ToolOutcome:
    return ToolOutcome(json.dumps({"error": message}))


@dataclass(frozen=True)
class ToolRunner:
    """What the server-side tools need beyond the run itself."""

    sessionmaker: async_sessionmaker[AsyncSession]
    embedders: Embedders
    storage: Storage

    async def run(self, prepared: "PreparedRun", name: str, arguments: str) -> ToolOutcome:
        try:
            parsed = json.loads(arguments or "{}")
            if not isinstance(parsed, dict):
                raise TypeError("the arguments must be a JSON object")
        except (ValueError, TypeError) as exc:
            return _error(f"Unreadable arguments: {exc}")
        if name == Capability.search_knowledge:
            return await self.search_knowledge(prepared, str(parsed.get("query", "")))
        if name == Capability.read_file:
            return await self.read_file(prepared, str(parsed.get("file_id", "")))
        if name == Capability.update_state:
            return await self.update_state(prepared, parsed.get("operations"))
        return _error(f"There is no tool {name!r}.")

    async def search_knowledge(self, prepared: "PreparedRun", query: str) -> ToolOutcome:
        if not query.strip():
            return _error("Send {'query': '...'}.")
        result = await search(self.sessionmaker, self.embedders, prepared, query)
        if result is None or not result.hits:
            return ToolOutcome("Nothing in your knowledge matches this query.")
        return ToolOutcome(passages(result), citations=[hit.as_part() for hit in result.hits])

    async def read_file(self, prepared: "PreparedRun", file_id: str) -> ToolOutcome:
        try:
            identifier = uuid.UUID(file_id)
        except ValueError:
            return _error(f"{file_id!r} is not a file id.")
        async with self.sessionmaker() as session:
            await set_tenant(session, prepared.organization_id, prepared.user_id)
            found = await files_service.get_with_conversation(
                session, prepared.organization_id, identifier
            )
        if found is None or found[1].id != prepared.conversation_id:
            return _error("This conversation has no file with that id.")
        file = found[0]
        if file.media_type not in media_types.READABLE:
            return _error(f"This file is {file.media_type}: it holds no text to read.")
        data = await self.storage.read_bytes(file.storage_path)
        try:
            text = parsing.full_text(await asyncio.to_thread(parsing.parse, data, file.media_type))
        except parsing.ParseError as exc:
            return _error(str(exc))
        if len(text) > READ_FILE_MAX_CHARS:
            text = (
                text[:READ_FILE_MAX_CHARS]
                + f"\n[... {len(text) - READ_FILE_MAX_CHARS} more characters]"
            )
        return ToolOutcome(f"{file.original_name} ({file.media_type}):\n\n{text}")

    async def update_state(self, prepared: "PreparedRun", operations: Any) -> ToolOutcome:
        if not isinstance(operations, list):
            return _error("Send {'operations': [...]}: a list of JSON Patch operations.")
        try:
            async with self.sessionmaker() as session, unit_of_work(session):
                await set_tenant(session, prepared.organization_id, prepared.user_id)
                state = await state_service.apply_patch(
                    session,
                    prepared.organization_id,
                    prepared.user_id,
                    prepared.agent_id,
                    operations,
                    None,
                )
        except InvalidStatePatch as exc:
            return _error(exc.detail)
        return ToolOutcome(
            json.dumps({"ok": True, "version": state.version, "state": state.state}),
            state_operations=operations,
        )


async def search(
    sessionmaker: async_sessionmaker[AsyncSession],
    embedders: Embedders,
    prepared: "PreparedRun",
    query: str,
) -> SearchResult | None:
    """The run's retrieval: the agent's knowledge and the conversation's files, for the
    run's organization. None when the agent is no longer usable or the provider is down."""
    async with sessionmaker() as session, unit_of_work(session):
        await set_tenant(session, prepared.organization_id, prepared.user_id)
        agent = await agents_service.get_agent_of_organization(
            session, prepared.organization_id, prepared.agent_id
        )
        if agent is None:
            return None
        scope = Scope(prepared.organization_id, agent.id, prepared.conversation_id)
        try:
            return await knowledge_service.retrieve(
                session,
                scope,
                agent,
                query,
                embedders,
                prepared.user_id,
                run_id=prepared.run_id,
            )
        except AppError:
            return None


def passages(result: SearchResult) -> str:
    """Numbered passages with where they come from, for the model (and the no-LLM mode)."""
    lines = []
    for number, hit in enumerate(result.hits, start=1):
        where = ", ".join(
            part
            for part in [
                hit.citation.source_name,
                f"page {hit.citation.page}" if hit.citation.page else "",
                hit.citation.heading or "",
            ]
            if part
        )
        lines.append(f"[{number}] ({where}) {hit.content}")
    return "\n\n".join(lines)
