"""CopilotKit's runtime, served by this service itself (`/copilotkit`): what a Next.js app's
`<CopilotKit runtimeUrl=…>` asks of its runtime, answered from the stored conversations, for
the caller and their organization only, so nothing between the browser and the service keeps
a copy of anyone's thread.

- `info`: the agents the organization may use, by id; SSE mode; thread listing and reading.
- `run` is `POST /agents/{id}/runs` under CopilotKit's path (`app.runs.streaming`).
- `connect`: the stored thread replayed as one finished run (`RUN_STARTED`,
  `MESSAGES_SNAPSHOT` in stored order, `STATE_SNAPSHOT`, `RUN_FINISHED`), which the client
  shows before any new run; nothing for an id no conversation has yet (a new chat).
- `stop`: the thread's streaming run cancelled through `POST /runs/{id}/cancel`'s path, in
  whichever process streams it; the partial answer is kept, `cancelled`.
- `threads`: the caller's conversations with the agent and those shared with the
  organization; `clear` deletes the caller's own only.
"""

import uuid
from typing import Any

from ag_ui.core import (
    BaseEvent,
    MessagesSnapshotEvent,
    RunAgentInput,
    RunFinishedEvent,
    RunStartedEvent,
    StateSnapshotEvent,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import service as agents_service
from app.auth.identity import OrganizationPrincipal
from app.conversations import service as conversations_service
from app.conversations.errors import ThreadOfAnotherAgent
from app.conversations.messages import to_ag_ui
from app.conversations.models import Conversation
from app.copilotkit.schemas import (
    PROTOCOL_VERSION,
    AgentDescription,
    RuntimeInfo,
    StopInterrupt,
    StopRequest,
    StopResult,
    Thread,
    ThreadEndpoints,
    ThreadPage,
)
from app.files.storage import Storage
from app.runs import service as run_service
from app.runs import state_service
from app.runs.errors import RunNotFound
from app.runs.executor import RunRegistry


async def runtime_info(session: AsyncSession, principal: OrganizationPrincipal) -> RuntimeInfo:
    agents = await agents_service.list_agents(session, principal)
    return RuntimeInfo(
        version=PROTOCOL_VERSION,
        agents={
            str(agent.id): AgentDescription(
                name=agent.name, class_name="HttpAgent", description=agent.description
            )
            for agent in agents
        },
        audio_file_transcription_enabled=False,
        mode="sse",
        thread_endpoints=ThreadEndpoints(
            list=True, inspect=True, mutations=False, realtime_metadata=False
        ),
        suggestions=False,
        a2ui_enabled=False,
        open_generative_ui_enabled=False,
        telemetry_disabled=True,
    )


async def replay(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID,
    run_input: RunAgentInput,
) -> list[BaseEvent]:
    """The stored thread as one finished run, for `connect` (none for a new thread)."""
    conversation = await _thread(session, principal, agent_id, run_input.thread_id)
    if conversation is None:
        return []
    return await _replay_events(session, principal, conversation, run_input.run_id)


async def thread_events(
    session: AsyncSession, principal: OrganizationPrincipal, conversation_id: uuid.UUID
) -> list[BaseEvent]:
    conversation = await conversations_service.get_readable_conversation(
        session, principal, conversation_id
    )
    return await _replay_events(session, principal, conversation, str(uuid.uuid4()))


async def _replay_events(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    conversation: Conversation,
    run_id: str,
) -> list[BaseEvent]:
    thread_id = str(conversation.id)
    messages = await conversations_service.thread_messages(session, conversation)
    state = await state_service.read_state(session, principal, conversation.agent_id)
    return [
        RunStartedEvent(thread_id=thread_id, run_id=run_id),
        MessagesSnapshotEvent(messages=[to_ag_ui(message) for message in messages]),
        StateSnapshotEvent(snapshot=state.state),
        RunFinishedEvent(thread_id=thread_id, run_id=run_id),
    ]


async def _thread(
    session: AsyncSession, principal: OrganizationPrincipal, agent_id: uuid.UUID, thread_id: str
) -> Conversation | None:
    await agents_service.get_usable_agent(session, principal, agent_id)
    conversation_id = run_service.conversation_id_of(thread_id)
    return await conversations_service.readable_thread(
        session, principal, conversation_id, agent_id
    )


async def stop(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID,
    conversation_id: uuid.UUID,
    data: StopRequest,
    registry: RunRegistry,
) -> StopResult:
    """Cancel the thread's streaming run (only `data.run_id`, if given). Runs on a thread
    are its owner's: anyone else's stop is refused as a write would be."""
    await agents_service.get_usable_agent(session, principal, agent_id)
    conversation = await conversations_service.get_own_conversation(
        session, principal, conversation_id
    )
    if conversation.agent_id != agent_id:
        raise ThreadOfAnotherAgent("This thread belongs to another agent.")
    run_ids = await conversations_service.streaming_run_ids(session, conversation)
    if data.run_id is not None:
        run_ids = [run_id for run_id in run_ids if run_id == data.run_id]
    stopped = 0
    for run_id in run_ids:
        try:
            await run_service.cancel_run(session, principal, run_id, registry)
        except RunNotFound:
            continue  # it ended in between
        stopped += 1
    if not stopped:
        scope = f"Run '{data.run_id}' is not" if data.run_id else "No run is"
        return StopResult(
            stopped=False, message=f"{scope} streaming on thread '{conversation.id}'."
        )
    return StopResult(
        stopped=True,
        interrupt=StopInterrupt(message="Run stopped by user", code="cancelled"),
    )


async def list_threads(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> ThreadPage:
    conversations, next_cursor = await conversations_service.list_readable(
        session, principal, agent_id, cursor, limit
    )
    return ThreadPage(
        threads=[
            Thread(
                id=str(conversation.id),
                name=conversation.title or None,
                agent_id=str(conversation.agent_id),
                organization_id=str(conversation.organization_id),
                created_by_id=str(conversation.user_id),
                archived=False,
                created_at=conversation.created_at,
                updated_at=conversation.last_activity_at,
            )
            for conversation in conversations
        ],
        next_cursor=next_cursor,
    )


async def thread_messages(
    session: AsyncSession, principal: OrganizationPrincipal, conversation_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The thread in the runtime's own message shape (its `threads/{id}/messages`)."""
    conversation = await conversations_service.get_readable_conversation(
        session, principal, conversation_id
    )
    messages = await conversations_service.thread_messages(session, conversation)
    return [_runtime_message(to_ag_ui(message)) for message in messages]


def _runtime_message(message: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {
        key: message[key] for key in ("id", "role", "content") if key in message
    }
    if message.get("toolCalls"):
        shown["toolCalls"] = [
            {
                "id": call["id"],
                "name": call["function"]["name"],
                "args": call["function"]["arguments"],
            }
            for call in message["toolCalls"]
        ]
    if "toolCallId" in message:
        shown["toolCallId"] = message["toolCallId"]
    return shown


async def thread_state(
    session: AsyncSession, principal: OrganizationPrincipal, conversation_id: uuid.UUID
) -> dict[str, Any]:
    """The state a run on the thread starts from: the caller's with the thread's agent."""
    conversation = await conversations_service.get_readable_conversation(
        session, principal, conversation_id
    )
    state = await state_service.read_state(session, principal, conversation.agent_id)
    return state.state


async def clear_threads(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID | None,
    storage: Storage,
) -> None:
    await conversations_service.delete_own_conversations(session, principal, agent_id, storage)
