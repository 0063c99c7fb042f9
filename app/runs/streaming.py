"""Run responses: a run's events as an SSE stream (`text/event-stream`), for every route that
starts one (`POST /agents/{id}/runs`, quick tasks, CopilotKit's `/copilotkit/agent/{id}/run`),
and a short fixed stream for answers that are known before they are sent (a replay, an error
told in AG-UI's own terms)."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable

from ag_ui.core import BaseEvent, RunAgentInput
from ag_ui.encoder import EventEncoder
from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.identity import OrganizationPrincipal
from app.core.db import after_commit
from app.runs import executor
from app.runs import service as run_service

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def stream_run(
    request: Request,
    session: AsyncSession,
    principal: OrganizationPrincipal,
    admission: executor.Admission,
    agent_id: uuid.UUID,
    run_input: RunAgentInput,
    task_template_version_id: uuid.UUID | None = None,
) -> StreamingResponse:
    requested_at = time.perf_counter()  # for the time to the first token
    state = request.app.state
    prepared = await run_service.prepare_run(
        session,
        principal,
        agent_id,
        run_input,
        state.settings,
        state.model_clients,
        state.embedders,
        task_template_version_id=task_template_version_id,
    )
    queue: executor.Events = asyncio.Queue()

    def start() -> None:
        # After the commit: the run's own sessions must see the rows prepared here.
        executor.start_run(
            prepared,
            state.tool_runner,
            state.answer_saver,
            state.run_registry,
            admission,
            state.settings.run_max_seconds,
            queue,
        )

    after_commit(session, start)
    return StreamingResponse(
        executor.relay(
            queue,
            state.settings.run_heartbeat_seconds,
            requested_at,
            state.settings.run_flush_interval_ms / 1000,
        ),
        media_type="text/event-stream",
        headers=STREAM_HEADERS,
    )


def event_stream(events: Iterable[BaseEvent]) -> StreamingResponse:
    """Events known in full before the first byte, as one SSE write."""
    encoder = EventEncoder()
    body = "".join(encoder.encode(event) for event in events)

    async def once() -> AsyncIterator[str]:
        if body:
            yield body

    return StreamingResponse(once(), media_type="text/event-stream", headers=STREAM_HEADERS)
