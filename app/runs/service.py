"""A run is one turn of an agent: `POST /agents/{agent_id}/runs` with AG-UI's
`RunAgentInput`, answered as a stream of AG-UI events.

`prepare_run` does, in the request's own transaction (committed before the stream starts),
everything that must hold before the first byte: the agent may be used, the thread
(conversation) is the caller's and this agent's, the messages the client sent that are not
stored yet are stored (by their AG-UI ids: resending is harmless), the assistant's
message exists with status `streaming`, the instructions are rendered (from a prompt
template, if the agent names one), and the first model call is reserved under the budgets
(app/budgets/; a refusal rolls all of it back). `app.runs.executor` then streams and saves
the answer, on sessions of its own, whether or not the client stays.
"""

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ag_ui.core import RunAgentInput, UserMessage
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import quick_tasks
from app.agents import service as agents_service
from app.auth.identity import OrganizationPrincipal
from app.budgets import service as budgets_service
from app.conversations import service as conversations_service
from app.conversations.messages import file_parts, to_ag_ui
from app.conversations.models import Message, MessageRole, MessageStatus
from app.core.db import driver_connection
from app.core.errors import UnprocessableContent
from app.core.settings import Settings
from app.files import service as files_service
from app.files.errors import InvalidAttachment
from app.knowledge import service as knowledge_service
from app.knowledge.embedders import Embedders
from app.knowledge.repository import Scope
from app.llm.client import ChatModel, NoModel
from app.llm.clients import ModelClients, RegisteredChatModel
from app.llm.context import bound_call_tokens, trim_to_window
from app.prompts import service as prompts_service
from app.runs import cancellation, repository
from app.runs.errors import DuplicateMessageIds, RunNotFound
from app.runs.saving import SAVE_RETRY_SECONDS
from app.runs.schemas import QuickTaskRunRequest
from app.runs.tools import passages, server_tools
from app.usage.service import Attribution

if TYPE_CHECKING:
    from app.runs.executor import RunRegistry

ROLES = {role.value for role in MessageRole}


class InvalidThread(UnprocessableContent):
    problem = "invalid-thread-id"
    title = "Invalid threadId"


@dataclass(frozen=True)
class PreparedRun:
    organization_id: uuid.UUID
    user_id: uuid.UUID
    agent_id: uuid.UUID
    conversation_id: uuid.UUID
    thread_id: str
    run_id: str
    assistant_message_id: uuid.UUID
    assistant_message_external_id: str
    model_messages: list[dict[str, Any]]
    model_parameters: dict[str, Any]
    model: ChatModel
    history_snapshot: list[dict[str, Any]] | None
    state: dict[str, Any]
    # Front-end tools (declared by the client in `tools`): the model may call them; the run
    # then ends, and the client runs the tool and sends its result in the next run.
    tools: list[dict[str, Any]]
    # Built-in tools the agent may call, run here (see app.runs.tools).
    server_tools: list[dict[str, Any]]
    # What the answer cites from the start (the no-LLM mode's passages).
    citations: list[dict[str, Any]]
    # Budgets (app/budgets/service.py): the output the first round's reservation allows
    # (its `max_tokens`; None: no budget applied), the output a round may ask for before a
    # budget clamps it, and how long a reservation holds.
    first_round_output_tokens: int | None = None
    output_tokens: int = 0
    reservation_seconds: float = 0.0
    # The prompt template versions the instructions and the quick task's prompt were
    # rendered from (usage events).
    instructions_template_version_id: uuid.UUID | None = None
    task_template_version_id: uuid.UUID | None = None


def conversation_id_of(thread_id: str) -> uuid.UUID:
    """AG-UI's threadId is the conversation's id."""
    try:
        return uuid.UUID(thread_id)
    except ValueError as exc:
        raise InvalidThread("threadId must be a UUID: it is the conversation's id.") from exc


async def prepare_run(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID,
    run_input: RunAgentInput,
    settings: Settings,
    model_clients: ModelClients,
    embedders: Embedders,
    title: str | None = None,
    task_template_version_id: uuid.UUID | None = None,
) -> PreparedRun:
    """The run's rows and its first reservation, in the request's transaction; what the
    executor needs to stream it. `task_template_version_id`: the template version a quick
    task's prompt (the run's user message) was rendered from."""
    agent = await agents_service.get_usable_agent(session, principal, agent_id)
    model, registered = await model_clients.chat_model(
        session, principal.organization_id, agent.chat_model_id, agent.model_settings.get("model")
    )
    conversation_id = conversation_id_of(run_input.thread_id)
    sent = [_text_of(message) for message in run_input.messages]
    repeated = sorted(i for i, n in Counter(i for _, i, _ in sent).items() if n > 1)
    if repeated:
        # Each message is stored under its id: two of one id cannot both be the thread's.
        raise DuplicateMessageIds(f"Each message needs an id of its own; repeated: {repeated}.")
    first_user_text = next((text for role, _, text in sent if role == "user"), "")
    conversation, created = await conversations_service.open_thread(
        session, principal, conversation_id, agent_id, title or first_user_text
    )
    stored = [] if created else await conversations_service.thread_messages(session, conversation)
    stored_ids = {message.external_id or str(message.id) for message in stored}
    sent_ids = {message_id for _, message_id, _ in sent}
    unsaved = [
        (role, message_id, text, message)
        for (role, message_id, text), message in zip(sent, run_input.messages, strict=True)
        if message_id not in stored_ids and role in ROLES
    ]
    attached = {message_id: _attached_file_ids(message) for _, message_id, _, message in unsaved}
    files = await files_service.get_in_conversation(
        session, conversation, {file_id for ids in attached.values() for file_id in ids}
    )
    new = [
        Message(
            organization_id=principal.organization_id,
            conversation_id=conversation.id,
            external_id=message_id,
            role=MessageRole(role),
            content=text,
            parts=[{"type": "text", "text": text}]
            + [files_service.as_part(files[file_id]) for file_id in attached[message_id]],
            tool_call_id=getattr(message, "tool_call_id", None),
            run_id=run_input.run_id,
        )
        for role, message_id, text, message in unsaved
    ]
    history = stored + new
    assistant = Message(
        organization_id=principal.organization_id,
        conversation_id=conversation.id,
        external_id=str(uuid.uuid4()),
        role=MessageRole.assistant,
        status=MessageStatus.streaming,
        run_id=run_input.run_id,
        model=model.name,
    )
    await conversations_service.add_messages(session, [*new, assistant])
    state = await repository.user_state(
        session, principal.organization_id, principal.user_id, agent_id
    )
    citations: list[dict[str, Any]] = []
    if isinstance(model, NoModel):
        # No model to call tools: the answer is what retrieval finds for the question.
        question = next((text for role, _, text in reversed(sent) if role == "user"), "")
        scope = Scope(principal.organization_id, agent.id, conversation.id)
        found = await knowledge_service.retrieve(
            session,
            scope,
            agent,
            question,
            embedders,
            principal.user_id,
            run_id=run_input.run_id,
        )
        model = NoModel(passages(found))
        citations = [hit.as_part() for hit in found.hits]
    instructions, template_version_id = agent.instructions, None
    if agent.instructions_template is not None:
        instructions, template_version_id = await prompts_service.render_reference(
            session, principal.organization_id, agent.instructions_template
        )
    model_messages = trim_to_window(
        _model_messages(instructions, history),
        _budget(agent.model_settings, registered, settings),
    )
    parameters = _parameters(agent.model_settings, registered)
    client_tools = [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        }
        for tool in run_input.tools or []
    ]
    agent_tools = server_tools(agent.capabilities)
    output_tokens = int(parameters.get("max_tokens", settings.llm_reserved_output_tokens))
    reservation_seconds = budgets_service.reservation_seconds(
        settings.run_max_seconds, SAVE_RETRY_SECONDS
    )
    allowed = None
    if model.model_id is not None:
        # Last, so the windows stay locked only for the commit that follows.
        reservation = await budgets_service.reserve(
            await driver_connection(session),
            Attribution(
                principal.organization_id,
                principal.user_id,
                agent_id,
                conversation.id,
                run_input.run_id,
            ),
            chat_request_id(assistant.id),
            model.model_id,
            bound_call_tokens(model_messages, client_tools + agent_tools),
            output_tokens,
            reservation_seconds,
        )
        allowed = reservation.max_output_tokens
    return PreparedRun(
        organization_id=principal.organization_id,
        user_id=principal.user_id,
        agent_id=agent_id,
        conversation_id=conversation.id,
        thread_id=run_input.thread_id,
        run_id=run_input.run_id,
        assistant_message_id=assistant.id,
        assistant_message_external_id=assistant.external_id or str(assistant.id),
        model_messages=model_messages,
        model_parameters=parameters,
        model=model,
        # The client lacks part of the thread (a reload, another device): send it first.
        history_snapshot=[to_ag_ui(message) for message in history]
        if stored_ids - sent_ids
        else None,
        state=state,
        tools=client_tools,
        server_tools=agent_tools,
        citations=citations,
        first_round_output_tokens=allowed,
        instructions_template_version_id=template_version_id,
        task_template_version_id=task_template_version_id,
        output_tokens=output_tokens,
        reservation_seconds=reservation_seconds,
    )


def chat_request_id(message_id: uuid.UUID) -> str:
    """The usage request id of the model call that makes an answer (its message)."""
    return f"chat:{message_id}"


async def quick_task_input(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID,
    task_id: uuid.UUID,
    data: QuickTaskRunRequest,
) -> tuple[RunAgentInput, uuid.UUID | None]:
    """The run of a quick task: its user message is the task's prompt; and the template
    version the prompt came from (`prepare_run`'s `task_template_version_id`)."""
    task = await quick_tasks.get_quick_task(session, principal, agent_id, task_id)
    prompt, version_id = await quick_tasks.prompt_for(session, task, data.parameters)
    run_input = RunAgentInput(
        thread_id=data.thread_id or str(uuid.uuid4()),
        run_id=str(uuid.uuid4()),
        state={},
        messages=[UserMessage(id=str(uuid.uuid4()), content=prompt)],
        tools=[],
        context=[],
        forwarded_props={},
    )
    return run_input, version_id


def _attached_file_ids(message: Any) -> list[uuid.UUID]:
    """The files a message's media parts name by our id: AG-UI's `{"type": "document" (or
    image, audio, video), "source": {"type": "file", "value": "<file id>"}}`, after the file
    was uploaded to the conversation."""
    content = getattr(message, "content", None)
    ids: list[uuid.UUID] = []
    for part in content if isinstance(content, list) else []:
        source: Any = getattr(part, "source", None)
        if getattr(source, "type", None) != "file":
            continue
        try:
            file_id = uuid.UUID(source.value)
        except ValueError as exc:
            raise InvalidAttachment(f"{source.value!r} is not a file id.") from exc
        if file_id not in ids:
            ids.append(file_id)
    return ids


def _text_of(message: Any) -> tuple[str, str, str]:
    content = getattr(message, "content", None)
    if isinstance(content, list):
        content = " ".join(text for part in content if (text := getattr(part, "text", None)))
    return message.role, message.id, content or ""


def _model_messages(instructions: str, history: list[Message]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for message in history:
        calls = [
            {
                "id": part["id"],
                "type": "function",
                "function": {"name": part["name"], "arguments": part.get("arguments", "")},
            }
            for part in message.parts
            if part.get("type") == "tool_call"
        ]
        if message.role == MessageRole.assistant and (message.content or calls):
            messages.append(
                {"role": "assistant", "content": message.content or None}
                | ({"tool_calls": calls} if calls else {})
            )
        elif message.role == MessageRole.tool and message.tool_call_id:
            messages.append(
                {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
            )
        elif message.role == MessageRole.user and (message.content or file_parts(message)):
            notes = [
                f"[Attached file {part['name']!r} ({part['media_type']}), id {part['file_id']}]"
                for part in file_parts(message)
            ]
            messages.append({"role": "user", "content": "\n\n".join([message.content, *notes])})
    return messages


def _budget(
    model_settings: dict[str, Any], model: RegisteredChatModel | None, settings: Settings
) -> int:
    """Tokens of history the window leaves: the agent's window, else its model's, else
    LLM_CONTEXT_TOKENS; less what the answer may take."""
    window = (
        model_settings.get("context_window")
        or (model.context_window if model else None)
        or settings.llm_context_tokens
    )
    reserved = _parameters(model_settings, model).get(
        "max_tokens", settings.llm_reserved_output_tokens
    )
    return max(int(window) - int(reserved), 1)


def _parameters(
    model_settings: dict[str, Any], model: RegisteredChatModel | None
) -> dict[str, Any]:
    """The agent's sampling parameters; `max_tokens` no more than its model produces."""
    parameters = {
        name: value
        for name, value in model_settings.items()
        if name in ("temperature", "max_tokens", "top_p") and value is not None
    }
    if model is not None and model.max_output_tokens is not None:
        parameters["max_tokens"] = min(
            parameters.get("max_tokens", model.max_output_tokens), model.max_output_tokens
        )
    return parameters


async def cancel_run(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    run_id: str,
    registry: "RunRegistry",
) -> None:
    """Stop one of the caller's runs, wherever it streams (`app.runs.cancellation`); the
    partial answer is kept with status `cancelled`. Anyone else's run is unknown to them,
    whatever its id: runs are known by (organization, user, run id)."""
    key = (principal.organization_id, principal.user_id, run_id)
    if registry.streams(key):
        registry.cancel_here(key)
        return
    if not await repository.is_in_progress(session, *key):
        raise RunNotFound()
    await cancellation.notify(session, key)
