"""Running a prepared run: the model's answer streamed as AG-UI events and saved as it goes.

The run is a task of its own, not part of the HTTP response: a client that disconnects stops
receiving events, not the run, which finishes (within RUN_MAX_SECONDS) and saves its
message complete. The response only relays the task's events from a queue, with SSE comment
heartbeats during long silences; a client that falls behind gets what piled up in one write,
its consecutive text (or tool-argument) pieces merged into one event, so a busy process
spends its time per write, not per token, and nothing is lost.

`RunRegistry` knows the runs of this process: it admits at most RUN_MAX_CONCURRENT at once
(the next one is refused at once with 503 and Retry-After, rather than every stream slowing
down), and `POST /runs/{run_id}/cancel` stops one (the partial answer is kept, status
`cancelled`).
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias, cast

import orjson
from ag_ui.core import (
    BaseEvent,
    CustomEvent,
    EventType,
    MessagesSnapshotEvent,
    RunErrorEvent,
    RunFinishedEvent,
    RunStartedEvent,
    StateDeltaEvent,
    StateSnapshotEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.encoder import EventEncoder
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.budgets import service as budgets_service
from app.budgets.errors import BudgetExceeded, ModelUnpriced
from app.budgets.service import BudgetWarning, Reservation
from app.conversations import service as conversations_service
from app.conversations.models import FinishedMessage, Message, MessageRole, MessageStatus
from app.core.db import set_tenant, unit_of_work
from app.llm.client import ChatModel, ModelError, TextDelta, ToolCallDelta, Usage
from app.llm.context import bound_call_tokens, estimate_call_tokens, estimate_text_tokens
from app.observability import metrics
from app.runs.saving import AnswerSaver, Partial, durably
from app.runs.service import PreparedRun, chat_request_id
from app.runs.tools import ToolRunner
from app.usage.models import UsagePurpose
from app.usage.service import Attribution, ModelCall

logger = logging.getLogger(__name__)

MAX_TOOL_ROUNDS = 4  # model calls in one run when it keeps calling server-side tools
# The AG-UI custom event that carries the passages an answer draws on (app/runs/tools.py).
CITATIONS_EVENT = "citations"


@dataclass(frozen=True, slots=True)
class Piece:
    """A piece of the answer: its text (`TEXT_MESSAGE_CONTENT` of message `id`) or a tool
    call's arguments (`TOOL_CALL_ARGS` of call `id`), queued as the model sends it. The relay
    makes the pieces of one write into one event each (`merge_pieces`) and writes it
    (`encode_piece`): a pydantic event per token was a fifth of a streaming process's time
    (bench/bench_streams.py, profiled)."""

    event: type[TextMessageContentEvent | ToolCallArgsEvent]
    id: str
    delta: str


Queued: TypeAlias = "BaseEvent | Piece | None"
Events: TypeAlias = "asyncio.Queue[Queued]"


RunKey: TypeAlias = tuple[uuid.UUID, uuid.UUID, str]
"""(organization, user, run id): clients choose run ids (`run-1`), so two organizations, or
two users of one, may stream runs of the same id at once."""


def run_key(prepared: PreparedRun) -> RunKey:
    return (prepared.organization_id, prepared.user_id, prepared.run_id)


class Admission:
    """A run's place among the process's concurrent runs (app/runs/admission.py), held from
    the request that starts the run until the run's task ends, or until the request ends if
    it started no run."""

    def __init__(self, registry: "RunRegistry") -> None:
        self._registry: RunRegistry | None = registry
        self.taken_by_run = False

    def release(self) -> None:
        if self._registry is not None:
            self._registry.admitted -= 1
            self._registry = None


class RunRegistry:
    def __init__(self, max_concurrent: int) -> None:
        self.max_concurrent = max_concurrent
        self.admitted = 0
        self._runs: dict[RunKey, asyncio.Task[None]] = {}

    def admit(self) -> Admission | None:
        """A place for one more run, or None when the process streams as many as it may."""
        if self.admitted >= self.max_concurrent:
            return None
        self.admitted += 1
        return Admission(self)

    def add(self, key: RunKey, task: "asyncio.Task[None]", admission: Admission) -> None:
        self._runs[key] = task
        admission.taken_by_run = True
        metrics.RUNS_ACTIVE.inc()

        def done(_: object) -> None:
            if self._runs.get(key) is task:
                del self._runs[key]
            admission.release()
            metrics.RUNS_ACTIVE.dec()

        task.add_done_callback(done)

    def streams(self, key: RunKey) -> bool:
        """Whether this process streams the run."""
        return key in self._runs

    def cancel_here(self, key: RunKey) -> None:
        """Stop the run if this process streams it (whoever asked has been checked)."""
        task = self._runs.get(key)
        if task is not None:
            task.cancel()

    async def stop_all(self) -> None:
        for task in list(self._runs.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def start_run(
    prepared: PreparedRun,
    tools: ToolRunner,
    saver: AnswerSaver,
    registry: RunRegistry,
    admission: Admission,
    max_seconds: float,
    queue: Events,
) -> None:
    """Start the run's task; its events arrive on the queue, then None."""
    task = asyncio.create_task(
        execute(prepared, tools, saver, queue, max_seconds),
        name=f"run {prepared.run_id}",
    )
    registry.add(run_key(prepared), task, admission)


async def relay(
    queue: Events,
    heartbeat_seconds: float,
    requested_at: float | None = None,
    flush_seconds: float = 0.0,
) -> AsyncIterator[str]:
    """The run's events as SSE: everything queued since the last write goes in the next one,
    merged (`merge_pieces`); a comment after `heartbeat_seconds` of silence. Once the answer's
    first piece is out, writes are at least `flush_seconds` apart (RUN_FLUSH_INTERVAL_MS):
    at 50 tokens/s a write per token is 50 writes a second per stream, each paid in full on
    the event loop; a few tens of milliseconds between writes the eye cannot tell. Its
    metrics are counted per write: the answer's pieces, and the time from `requested_at` (a
    `time.perf_counter()`) to the first of them."""
    encoder = EventEncoder()
    loop = asyncio.get_running_loop()
    answering = False  # the first of the answer's pieces is out
    last_write = 0.0
    while True:
        try:
            async with asyncio.timeout(heartbeat_seconds):
                first = await queue.get()
        except TimeoutError:
            yield ": heartbeat\n\n"
            continue
        items = [first]
        _drain(queue, items)
        wait = last_write + flush_seconds - loop.time()
        if answering and items[-1] is not None and wait > 0:
            await asyncio.sleep(wait)
            _drain(queue, items)
        finished = items[-1] is None  # None is the last thing a run queues
        pending = [item for item in items if item is not None]
        if pending:
            pieces = sum(isinstance(item, _PIECES) for item in pending)
            if pieces:
                metrics.TOKENS_STREAMED.inc(pieces)
                if requested_at is not None:
                    metrics.TIME_TO_FIRST_TOKEN.observe(time.perf_counter() - requested_at)
                    requested_at = None
            yield "".join(
                encode_piece(item) if isinstance(item, Piece) else encoder.encode(item)
                for item in merge_pieces(pending)
            )
            last_write = loop.time()
            answering = answering or bool(pieces)
        if finished:
            return


def _drain(queue: Events, items: list[Queued]) -> None:
    while not queue.empty():
        items.append(queue.get_nowait())


_CONTENT_EVENTS = (TextMessageContentEvent, ToolCallArgsEvent)
_PIECES = (Piece, *_CONTENT_EVENTS)


def _as_piece(item: BaseEvent | Piece) -> Piece | None:
    """The piece an item is: a `Piece`, or a content event that carries nothing else (one
    with a timestamp or metadata of its own goes out as it is)."""
    if isinstance(item, Piece):
        return item
    if not isinstance(item, _CONTENT_EVENTS) or item.model_fields_set - _PIECE_FIELDS_SET:
        return None
    if isinstance(item, TextMessageContentEvent):
        return Piece(TextMessageContentEvent, item.message_id, item.delta)
    if isinstance(item, ToolCallArgsEvent):
        return Piece(ToolCallArgsEvent, item.tool_call_id, item.delta)
    return None


_PIECE_FIELDS_SET = {"type", "message_id", "tool_call_id", "delta"}


def merge_pieces(items: list[BaseEvent | Piece]) -> list[BaseEvent | Piece]:
    """Consecutive pieces of one message's text (or of one tool call's arguments) as one
    piece carrying them all, in order; every other event as it is."""
    merged: list[BaseEvent | Piece] = []
    deltas: list[str] = []  # of merged[-1], when it is a piece: joined once, at its end

    def close() -> None:
        if len(deltas) > 1:
            last = cast(Piece, merged[-1])
            merged[-1] = Piece(last.event, last.id, "".join(deltas))
        deltas.clear()

    for item in items:
        piece = _as_piece(item)
        if piece is None:
            close()
            merged.append(item)
            continue
        previous = merged[-1] if deltas else None
        if isinstance(previous, Piece) and (previous.event, previous.id) == (piece.event, piece.id):
            deltas.append(piece.delta)
            continue
        close()
        merged.append(piece)
        deltas.append(piece.delta)
    close()
    return merged


_PIECE_FIELDS = {TextMessageContentEvent: "messageId", ToolCallArgsEvent: "toolCallId"}
_PIECE_TYPES = {
    TextMessageContentEvent: EventType.TEXT_MESSAGE_CONTENT.value,
    ToolCallArgsEvent: EventType.TOOL_CALL_ARGS.value,
}


def encode_piece(piece: Piece) -> str:
    """The piece as the SSE frame ag_ui's `EventEncoder` writes for its event, with orjson
    (tests/runs/test_relay.py holds the two equal)."""
    event = {
        "type": _PIECE_TYPES[piece.event],
        _PIECE_FIELDS[piece.event]: piece.id,
        "delta": piece.delta,
    }
    return f"data: {orjson.dumps(event).decode()}\n\n"


async def execute(
    prepared: PreparedRun,
    tools: ToolRunner,
    saver: AnswerSaver,
    queue: Events,
    max_seconds: float,
) -> None:
    """Run to the end, its events on `queue` (then None) for whoever listens; the answer
    saved as it grows and at the end (`saver`)."""
    model = prepared.model
    emit = queue.put_nowait

    message_id = prepared.assistant_message_external_id
    emit(RunStartedEvent(thread_id=prepared.thread_id, run_id=prepared.run_id))
    if prepared.history_snapshot is not None:
        emit(MessagesSnapshotEvent(messages=prepared.history_snapshot))
    emit(StateSnapshotEvent(snapshot=prepared.state))

    if prepared.citations:
        emit(CustomEvent(name=CITATIONS_EVENT, value=prepared.citations))
    answer = _Answer(message_id, prepared.assistant_message_id, emit, prepared.citations)
    saver.watch(prepared.organization_id, prepared.conversation_id, answer.row_id, answer.partial)
    messages = list(prepared.model_messages)
    offered = prepared.tools + prepared.server_tools
    on_server = {tool["function"]["name"] for tool in prepared.server_tools}
    attribution = Attribution(
        prepared.organization_id,
        prepared.user_id,
        prepared.agent_id,
        prepared.conversation_id,
        prepared.run_id,
    )
    answer.output_tokens_allowed = prepared.first_round_output_tokens
    started = time.monotonic()
    status, error, code = MessageStatus.complete, None, None
    try:
        async with asyncio.timeout(max_seconds):
            for round_number in range(MAX_TOOL_ROUNDS):
                if round_number:
                    await _reserve_round(saver, prepared, attribution, answer, messages, offered)
                parameters = prepared.model_parameters
                if answer.output_tokens_allowed is not None:
                    parameters = {**parameters, "max_tokens": answer.output_tokens_allowed}
                async for item in model.stream(messages, parameters, offered):
                    if isinstance(item, Usage):
                        answer.count(item)
                    else:
                        answer.add(item)
                calls = list(answer.calls.values())
                # No call, or one the client must run: the run ends here (for the client,
                # until it sends the tool's result in its next run).
                if not calls or any(call["name"] not in on_server for call in calls):
                    break
                answer = await _run_server_tools(
                    tools, saver, prepared, attribution, model, answer, messages, offered, emit
                )
    except asyncio.CancelledError:
        status, error = MessageStatus.cancelled, "The run was cancelled."
    except TimeoutError:
        status, error = MessageStatus.error, "The run took too long and was stopped."
    except ModelError as exc:
        status, error = MessageStatus.error, str(exc)
    except (BudgetExceeded, ModelUnpriced) as exc:
        # A later round the budgets cannot fit: the answer so far is kept.
        status, error, code = MessageStatus.error, exc.detail, exc.problem
    except Exception:
        # Anything else (a tool's save that kept failing...) must not end the stream as if
        # the answer were whole.
        logger.exception("run failed", extra={"run_id": prepared.run_id})
        status, error = MessageStatus.error, "The run failed on our side; its text so far is kept."
    finally:
        try:
            answer.close()
            latency_ms = int((time.monotonic() - started) * 1000)
            last = _finished(model, answer, status, error, latency_ms)
            call = _model_call(prepared, answer, messages, offered, status)
            # Shielded: a cancelled run still saves what it has.
            warnings = await asyncio.shield(
                saver.finish(
                    prepared.organization_id,
                    prepared.user_id,
                    answer.row_id,
                    last,
                    "a run's answer",
                    None if call is None else (attribution, call),
                    answer.reserved,
                )
            )
            _warn(emit, warnings)
        except Exception:
            logger.exception("run's answer not saved", extra={"run_id": prepared.run_id})
            status, error = MessageStatus.error, "The answer could not be saved."
        if status == MessageStatus.complete:
            emit(RunFinishedEvent(thread_id=prepared.thread_id, run_id=prepared.run_id))
        else:
            emit(RunErrorEvent(message=error or "The run failed.", code=code or status.value))
        queue.put_nowait(None)  # whatever happened: the client's stream ends


async def _run_server_tools(
    tools: ToolRunner,
    saver: AnswerSaver,
    prepared: PreparedRun,
    attribution: Attribution,
    model: ChatModel,
    answer: "_Answer",
    messages: list[dict[str, Any]],
    offered: list[dict[str, Any]],
    emit: Callable[[BaseEvent | Piece], None],
) -> "_Answer":
    """Run the answer's (server-side) tool calls, save the answer and the results as
    messages of their own, and return the next answer, which continues from them (and cites
    what the tools found)."""
    sessionmaker = tools.sessionmaker
    answer.close()
    complete = _finished(model, answer, MessageStatus.complete)
    model_call = _model_call(prepared, answer, messages, offered, MessageStatus.complete)
    warnings = await saver.finish(
        prepared.organization_id,
        prepared.user_id,
        answer.row_id,
        complete,
        "an answer",
        None if model_call is None else (attribution, model_call),
        answer.reserved,
    )
    _warn(emit, warnings)
    messages.append(answer.as_model_message())
    citations: list[dict[str, Any]] = []
    for call in answer.calls.values():
        outcome = await tools.run(prepared, call["name"], call["arguments"])
        if outcome.state_operations is not None:
            emit(StateDeltaEvent(delta=outcome.state_operations))
        citations += outcome.citations
        result_id = str(uuid.uuid4())
        emit(
            ToolCallResultEvent(
                message_id=result_id, tool_call_id=call["id"], content=outcome.content, role="tool"
            )
        )
        await _add_message(
            sessionmaker,
            prepared,
            external_id=result_id,
            role=MessageRole.tool,
            content=outcome.content,
            tool_call_id=call["id"],
        )
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": outcome.content})
    if citations:
        emit(CustomEvent(name=CITATIONS_EVENT, value=citations))
    next_id = str(uuid.uuid4())
    row_id = await _add_message(
        sessionmaker,
        prepared,
        external_id=next_id,
        role=MessageRole.assistant,
        status=MessageStatus.streaming,
        model=model.name,
    )
    following = _Answer(next_id, row_id, emit, citations)
    saver.watch(prepared.organization_id, prepared.conversation_id, row_id, following.partial)
    return following


async def _reserve_round(
    saver: AnswerSaver,
    prepared: PreparedRun,
    attribution: Attribution,
    answer: "_Answer",
    messages: list[dict[str, Any]],
    offered: list[dict[str, Any]],
) -> None:
    """A later round's reservation under the budgets (the first one's was the request's),
    in a transaction of its own before its model call; refused with the error the request
    would have had."""
    model_id = prepared.model.model_id
    if model_id is None:
        return

    async def reserve() -> Reservation:
        tenant = (prepared.organization_id, prepared.user_id)
        async with saver.database.transaction(tenant) as connection:
            return await budgets_service.reserve(
                connection,
                attribution,
                chat_request_id(answer.row_id),
                model_id,
                bound_call_tokens(messages, offered),
                prepared.output_tokens,
                prepared.reservation_seconds,
            )

    reservation = await durably(reserve, "a round's reservation")
    answer.output_tokens_allowed = reservation.max_output_tokens


def _warn(emit: Callable[[BaseEvent | Piece], None], warnings: list[BudgetWarning]) -> None:
    for warning in warnings:
        emit(CustomEvent(name=budgets_service.WARNING_EVENT, value=warning.as_event_value()))


class _Answer:
    """The assistant's message as it streams: its text and the tool calls it makes, turned
    into AG-UI events (a text message opens on its first text, and closes when a tool call
    starts or the answer ends)."""

    def __init__(
        self,
        message_id: str,
        row_id: uuid.UUID,
        emit: Callable[[BaseEvent | Piece], None],
        citations: list[dict[str, Any]] | None = None,
    ) -> None:
        self.message_id = message_id
        self.row_id = row_id
        self.emit = emit
        self.citations = citations or []
        self._closed = False
        self.text: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}
        self._text_open = False
        self.usage: Usage | None = None  # the provider's count, once it sends one
        self.version = 0  # grows with each piece (`AnswerSaver` writes what changed)
        # The model call this answer is (usage events): when it began.
        self.started_at = datetime.now(UTC)
        self.started = time.monotonic()
        # What its call's budget reservation allows it to produce (None: no budget applied).
        self.output_tokens_allowed: int | None = None

    @property
    def reserved(self) -> list[str]:
        """The request ids its call reserved under (given back as it settles)."""
        return [] if self.output_tokens_allowed is None else [chat_request_id(self.row_id)]

    def count(self, usage: Usage) -> None:
        counted = self.usage or Usage(0, 0)
        self.usage = Usage(
            counted.input_tokens + usage.input_tokens,
            counted.output_tokens + usage.output_tokens,
            counted.cached_input_tokens + usage.cached_input_tokens,
        )
        self.version += 1

    @property
    def input_tokens(self) -> int:
        return self.usage.input_tokens if self.usage else 0

    @property
    def output_tokens(self) -> int:
        return self.usage.output_tokens if self.usage else 0

    def partial(self) -> Partial:
        return Partial(
            self.version, self.content, self.parts, self.input_tokens, self.output_tokens
        )

    def add(self, item: TextDelta | ToolCallDelta) -> None:
        self.version += 1
        if isinstance(item, TextDelta):
            if not self._text_open:
                self.emit(TextMessageStartEvent(message_id=self.message_id, role="assistant"))
                self._text_open = True
            self.text.append(item.text)
            self.emit(Piece(TextMessageContentEvent, self.message_id, item.text))
            return
        call = self.calls.get(item.index)
        if call is None:
            self._close_text()
            call = {
                "id": item.id or f"call_{uuid.uuid4().hex}",
                "name": item.name or "",
                "arguments": "",
            }
            self.calls[item.index] = call
            self.emit(
                ToolCallStartEvent(
                    tool_call_id=call["id"],
                    tool_call_name=call["name"],
                    parent_message_id=self.message_id,
                )
            )
        if item.arguments:
            call["arguments"] += item.arguments
            self.emit(Piece(ToolCallArgsEvent, call["id"], item.arguments))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_text()
        for call in self.calls.values():
            self.emit(ToolCallEndEvent(tool_call_id=call["id"]))

    def as_model_message(self) -> dict[str, Any]:
        return {
            "role": "assistant",
            "content": self.content or None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
                for call in self.calls.values()
            ],
        }

    def _close_text(self) -> None:
        if self._text_open:
            self.emit(TextMessageEndEvent(message_id=self.message_id))
            self._text_open = False

    @property
    def content(self) -> str:
        return "".join(self.text)

    @property
    def parts(self) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"type": "text", "text": self.content}] if self.text else []
        calls = [{"type": "tool_call", **call} for call in self.calls.values()]
        return parts + calls + self.citations


def _finished(
    model: ChatModel,
    answer: _Answer,
    status: MessageStatus,
    error: str | None = None,
    latency_ms: int | None = None,
) -> FinishedMessage:
    return FinishedMessage(
        content=answer.content,
        parts=answer.parts,
        status=status,
        model=model.name,
        input_tokens=answer.input_tokens,
        output_tokens=answer.output_tokens,
        latency_ms=latency_ms,
        error=error,
    )


def _model_call(
    prepared: PreparedRun,
    answer: _Answer,
    sent: list[dict[str, Any]],
    offered: list[dict[str, Any]],
    status: MessageStatus,
) -> ModelCall | None:
    """The answer's model call as the usage ledger records it: the provider's count, or
    the estimate from what was sent (`sent`, `offered`) and what came back. None for the
    no-LLM mode, and for a call that failed before the model answered anything (nothing
    was consumed)."""
    model = prepared.model
    if model.model_id is None:
        return None
    usage = answer.usage
    if usage is None and status != MessageStatus.complete and not (answer.text or answer.calls):
        return None
    if usage is None:
        arguments = "".join(call["name"] + call["arguments"] for call in answer.calls.values())
        usage = Usage(
            estimate_call_tokens(sent, offered),
            estimate_text_tokens(answer.content + arguments),
        )
    return ModelCall(
        request_id=chat_request_id(answer.row_id),
        purpose=UsagePurpose.chat,
        occurred_at=answer.started_at,
        model_id=model.model_id,
        model_name=model.name,
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        output_tokens=usage.output_tokens,
        estimated=answer.usage is None,
        latency_ms=int((time.monotonic() - answer.started) * 1000),
        instructions_template_version_id=prepared.instructions_template_version_id,
        task_template_version_id=prepared.task_template_version_id,
    )


async def _add_message(
    sessionmaker: async_sessionmaker[AsyncSession], prepared: PreparedRun, **fields: Any
) -> uuid.UUID:
    async with sessionmaker() as session, unit_of_work(session):
        await set_tenant(session, prepared.organization_id, prepared.user_id)
        message = Message(
            organization_id=prepared.organization_id,
            conversation_id=prepared.conversation_id,
            run_id=prepared.run_id,
            **fields,
        )
        await conversations_service.add_messages(session, [message])
        return message.id
