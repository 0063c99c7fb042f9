"""The built-in tools a run executes on the server, offered to the model when the agent's
capabilities allow them. (Knowledge search and file reading join them with issue 6.)

`update_state` changes the user's state with the agent by a JSON Patch: the change is saved
(a new version) and streamed to the client as `STATE_DELTA`.
"""

import json
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.schemas import Capability
from app.core.db import set_tenant, unit_of_work
from app.runs import state_service
from app.runs.errors import InvalidStatePatch

UPDATE_STATE = {
    "type": "function",
    "function": {
        "name": Capability.update_state.value,
        "description": "Change the state you share with the user (what the app shows), as a "
        "JSON Patch (RFC 6902) list of operations on it.",
        "parameters": {
            "type": "object",
            "properties": {
                "operations": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "op": {"type": "string"},
                            "path": {"type": "string"},
                            "value": {},
                        },
                        "required": ["op", "path"],
                    },
                }
            },
            "required": ["operations"],
        },
    },
}


def server_tools(capabilities: list[str]) -> list[dict[str, Any]]:
    return [UPDATE_STATE] if Capability.update_state in capabilities else []


async def update_state(
    sessionmaker: async_sessionmaker[AsyncSession],
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    agent_id: uuid.UUID,
    arguments: str,
) -> tuple[str, list[dict[str, Any]] | None]:
    """The tool's result for the model, and the operations applied (None if refused)."""
    try:
        operations = json.loads(arguments)["operations"]
        if not isinstance(operations, list):
            raise TypeError("operations must be a list")
    except (ValueError, KeyError, TypeError) as exc:
        return json.dumps({"error": f"Send {{'operations': [...]}}: {exc}"}), None
    try:
        async with sessionmaker() as session, unit_of_work(session):
            await set_tenant(session, organization_id, user_id)
            state = await state_service.apply_patch(
                session, organization_id, user_id, agent_id, operations, None
            )
    except InvalidStatePatch as exc:
        return json.dumps({"error": exc.detail}), None
    return json.dumps({"ok": True, "version": state.version, "state": state.state}), operations
