"""Saving runs' answers: the text so far of every streaming answer of this process, written
together on a timer, and each answer's last save, made until it holds.

While a run streams, its answer is saved at least every SAVE_EVERY_SECONDS so that a crash
loses at most that much of it. One transaction per run per second was most of a busy
process's database time (bench/bench_streams.py, 200 runs at 50 tokens/s, profiled: half
the API's CPU in the saves) and held a pooled connection per run per second: under load a
save waited for the pool, timed out, and ended a run whose model was fine with RUN_ERROR.

`AnswerSaver` instead watches the live answers (reading one costs nothing until the timer)
and, each tick, writes what changed: one transaction per organization, one statement for
all of its answers (row-level security scopes each transaction to its organization). A
tick that fails (the pool is exhausted, the database is slow) is logged and its answers are
written by the next tick: a run is never failed by a partial save. The statement writes
only answers still `streaming`, so a tick that lands after a run's last save cannot undo it.

A run's last save (its status, complete or not) is its own, through `durably`: retried with
backoff while the failure is the database's load or connection (SAVE_RETRY_SECONDS in all),
so that under overload a run slows down rather than fails.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import orjson
from sqlalchemy import exc as sqlalchemy_errors

from app.budgets import service as budgets_service
from app.budgets.service import BudgetWarning
from app.conversations import service as conversations_service
from app.conversations.models import FinishedMessage
from app.core.db import Database
from app.usage.service import Attribution, ModelCall

logger = logging.getLogger(__name__)

SAVE_EVERY_SECONDS = 1.0
SAVE_RETRY_SECONDS = 60.0  # how long a run's last save keeps trying

T = TypeVar("T")

# The database is busy or out of reach, not refusing what is written: worth trying again.
TRANSIENT = (
    sqlalchemy_errors.TimeoutError,  # no pooled connection in time
    sqlalchemy_errors.OperationalError,
    sqlalchemy_errors.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.QueryCanceledError,  # statement_timeout
    asyncpg.InterfaceError,
    TimeoutError,
    OSError,
)

_WRITE_PARTIAL = """
UPDATE messages AS m
SET content = v.content, parts = v.parts::jsonb,
    input_tokens = v.input_tokens, output_tokens = v.output_tokens
FROM unnest($2::uuid[], $3::text[], $4::text[], $5::int[], $6::int[])
    AS v(id, content, parts, input_tokens, output_tokens)
WHERE m.organization_id = $1 AND m.id = v.id AND m.status = 'streaming'
"""
_TOUCH = """
UPDATE conversations SET last_activity_at = now()
WHERE organization_id = $1 AND id = ANY($2::uuid[])
"""


@dataclass(frozen=True)
class Partial:
    """An answer as it stands: what the message's row gets."""

    version: int  # grows with every piece: unchanged answers are not written again
    content: str
    parts: list[dict[str, Any]]
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Watched:
    organization_id: uuid.UUID
    conversation_id: uuid.UUID
    read: Callable[[], Partial]


class AnswerSaver:
    def __init__(self, database: Database, every_seconds: float = SAVE_EVERY_SECONDS) -> None:
        self.database = database
        self.every_seconds = every_seconds
        self._watched: dict[uuid.UUID, Watched] = {}
        self._written: dict[uuid.UUID, int] = {}  # message id: version last written

    def watch(
        self,
        organization_id: uuid.UUID,
        conversation_id: uuid.UUID,
        message_id: uuid.UUID,
        read: Callable[[], Partial],
    ) -> None:
        """Save the message's answer, as `read` gives it, every tick until `forget`."""
        self._watched[message_id] = Watched(organization_id, conversation_id, read)

    def forget(self, message_id: uuid.UUID) -> None:
        """Its last save is the run's own."""
        self._watched.pop(message_id, None)
        self._written.pop(message_id, None)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["AnswerSaver"]:
        task = asyncio.create_task(self._tick_forever(), name="answer saver")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.every_seconds)
            await self.write_changed()

    async def write_changed(self) -> None:
        """Write every watched answer that changed since it was last written; an
        organization whose write fails is tried again next tick."""
        changed: dict[uuid.UUID, list[tuple[uuid.UUID, Watched, Partial]]] = {}
        for message_id, watched in list(self._watched.items()):
            partial = watched.read()
            if self._written.get(message_id) != partial.version:
                changed.setdefault(watched.organization_id, []).append(
                    (message_id, watched, partial)
                )
        for organization_id, answers in changed.items():
            try:
                await self._write(organization_id, answers)
            except TRANSIENT:
                logger.warning(
                    "partial answers not saved this time; next tick",
                    extra={"organization_id": str(organization_id), "answers": len(answers)},
                    exc_info=True,
                )
                continue
            for message_id, _, partial in answers:
                if message_id in self._watched:
                    self._written[message_id] = partial.version

    async def _write(
        self, organization_id: uuid.UUID, answers: list[tuple[uuid.UUID, Watched, Partial]]
    ) -> None:
        async with self.database.transaction((organization_id, None)) as connection:
            await connection.execute(
                _WRITE_PARTIAL,
                organization_id,
                [message_id for message_id, _, _ in answers],
                [partial.content for _, _, partial in answers],
                [orjson.dumps(partial.parts).decode() for _, _, partial in answers],
                [partial.input_tokens for _, _, partial in answers],
                [partial.output_tokens for _, _, partial in answers],
            )
            conversations = {watched.conversation_id for _, watched, _ in answers}
            await connection.execute(_TOUCH, organization_id, list(conversations))

    async def finish(
        self,
        organization_id: uuid.UUID,
        user_id: uuid.UUID,
        message_id: uuid.UUID,
        answer: FinishedMessage,
        what: str,
        usage: tuple[Attribution, ModelCall] | None = None,
        reserved: Sequence[str] = (),
    ) -> list[BudgetWarning]:
        """The answer's save with its status (complete, or how it ended), the usage event of
        the model call that made it and its settlement under the budgets (what the call
        `reserved`, given back), in one transaction: the run's own, made `durably` (the
        event's request id keeps a retried save from counting it twice), after which no
        tick writes the answer. The budgets' thresholds the call crossed."""
        self.forget(message_id)

        async def save() -> list[BudgetWarning]:
            async with self.database.transaction((organization_id, user_id)) as connection:
                await conversations_service.save_assistant_message(
                    connection, organization_id, message_id, answer
                )
                if usage is not None:
                    attribution, call = usage
                    return await budgets_service.account(connection, attribution, [call], reserved)
                if reserved:
                    owner = Attribution(organization_id, user_id)
                    await budgets_service.release(connection, owner, reserved)
                return []

        return await durably(save, what)


async def durably(write: Callable[[], Awaitable[T]], what: str) -> T:
    """`write()`, tried again with backoff while it fails for the database's load or
    connection, for SAVE_RETRY_SECONDS; then (or on any other failure) its error."""
    deadline = time.monotonic() + SAVE_RETRY_SECONDS
    delay = 0.05
    while True:
        try:
            return await write()
        except TRANSIENT:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning(f"{what}: the database is busy; trying again", exc_info=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
