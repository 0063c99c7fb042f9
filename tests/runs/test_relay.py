"""The relay between a run and its client: what piled up while the client was slow goes out
in one write, text pieces merged, nothing lost or reordered."""

import asyncio
import itertools
import json
from collections.abc import Sequence
from typing import Any

from ag_ui.core import (
    BaseEvent,
    RunFinishedEvent,
    RunStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallStartEvent,
)
from ag_ui.encoder import EventEncoder

from app.runs.executor import Events, Piece, encode_piece, relay


def decode(chunk: str) -> list[dict[str, Any]]:
    return [
        json.loads(line.removeprefix("data: "))
        for line in chunk.splitlines()
        if line.startswith("data: ")
    ]


async def relayed(events: Sequence[BaseEvent | Piece | None], heartbeat: float = 5) -> list[str]:
    queue: Events = asyncio.Queue()
    for event in events:
        queue.put_nowait(event)
    return [chunk async for chunk in relay(queue, heartbeat)]


async def test_what_piled_up_goes_out_in_one_write_with_pieces_merged() -> None:
    events: list[BaseEvent | None] = [
        RunStartedEvent(thread_id="t", run_id="r"),
        TextMessageStartEvent(message_id="m1", role="assistant"),
        *(TextMessageContentEvent(message_id="m1", delta=f"w{i} ") for i in range(50)),
        TextMessageEndEvent(message_id="m1"),
        ToolCallStartEvent(tool_call_id="c1", tool_call_name="lookup", parent_message_id="m1"),
        ToolCallArgsEvent(tool_call_id="c1", delta='{"q": '),
        ToolCallArgsEvent(tool_call_id="c1", delta='"milk"}'),
        TextMessageContentEvent(message_id="m2", delta="a"),
        TextMessageContentEvent(message_id="m3", delta="b"),
        RunFinishedEvent(thread_id="t", run_id="r"),
        None,
    ]

    chunks = await relayed(events)

    assert len(chunks) == 1
    sent = decode(chunks[0])
    assert [event["type"] for event in sent] == [
        "RUN_STARTED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_CONTENT",
        "RUN_FINISHED",
    ]
    assert sent[2] == {
        "type": "TEXT_MESSAGE_CONTENT",
        "messageId": "m1",
        "delta": "".join(f"w{i} " for i in range(50)),
    }
    assert sent[5]["delta"] == '{"q": "milk"}'
    assert [(e["messageId"], e["delta"]) for e in sent[6:8]] == [("m2", "a"), ("m3", "b")]


async def test_a_client_that_keeps_up_gets_each_piece_as_it_comes() -> None:
    queue: Events = asyncio.Queue()
    chunks = relay(queue, heartbeat_seconds=5)
    for word in ["one", "two"]:
        queue.put_nowait(TextMessageContentEvent(message_id="m1", delta=word))
        assert decode(await anext(chunks))[0]["delta"] == word
    queue.put_nowait(None)
    assert [chunk async for chunk in chunks] == []


async def test_silence_is_filled_with_heartbeat_comments() -> None:
    queue: Events = asyncio.Queue()
    chunks = relay(queue, heartbeat_seconds=0.05)
    assert await anext(chunks) == ": heartbeat\n\n"
    queue.put_nowait(None)
    assert [chunk async for chunk in chunks] == []


async def test_once_the_answer_has_begun_writes_are_a_flush_interval_apart() -> None:
    """A piece every 10 ms, writes at least 100 ms apart: a few writes, the text whole. (That
    the first piece goes out at once, without waiting the interval, is the time to the first
    token bench/bench_streams.py measures.)"""
    queue: Events = asyncio.Queue()

    async def model() -> None:
        queue.put_nowait(RunStartedEvent(thread_id="t", run_id="r"))
        queue.put_nowait(TextMessageStartEvent(message_id="m1", role="assistant"))
        for i in range(30):
            queue.put_nowait(TextMessageContentEvent(message_id="m1", delta=f"w{i} "))
            await asyncio.sleep(0.01)
        queue.put_nowait(TextMessageEndEvent(message_id="m1"))
        queue.put_nowait(RunFinishedEvent(thread_id="t", run_id="r"))
        queue.put_nowait(None)

    loop = asyncio.get_running_loop()
    writes: list[tuple[float, list[dict[str, Any]]]] = []
    producing = asyncio.create_task(model())
    async for chunk in relay(queue, 5, flush_seconds=0.1):
        writes.append((loop.time(), decode(chunk)))
    await producing

    texts = [at for at, sent in writes if any(e["type"] == "TEXT_MESSAGE_CONTENT" for e in sent)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(texts)]
    assert gaps and min(gaps) >= 0.095  # never sooner (a busy machine only makes them later)
    assert len(texts) <= 5  # 300 ms of pieces, not 30 writes
    text = "".join(
        e["delta"] for _, sent in writes for e in sent if e["type"] == "TEXT_MESSAGE_CONTENT"
    )
    assert text == "".join(f"w{i} " for i in range(30))
    assert writes[-1][1][-1]["type"] == "RUN_FINISHED"


async def test_the_runs_pieces_go_out_as_the_ag_ui_events_they_stand_for() -> None:
    """What a run queues (pieces, not an event per token) is written merged, each write an
    AG-UI event that ag_ui.core accepts."""
    chunks = await relayed(
        [
            TextMessageStartEvent(message_id="m1", role="assistant"),
            *(Piece(TextMessageContentEvent, "m1", f"w{i} ") for i in range(20)),
            TextMessageEndEvent(message_id="m1"),
            ToolCallStartEvent(tool_call_id="c1", tool_call_name="lookup", parent_message_id="m1"),
            Piece(ToolCallArgsEvent, "c1", '{"q": '),
            Piece(ToolCallArgsEvent, "c1", '"milk"}'),
            None,
        ]
    )

    sent = decode(chunks[0])
    assert [event["type"] for event in sent] == [
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
    ]
    text = TextMessageContentEvent.model_validate(sent[1])
    assert (text.message_id, text.delta) == ("m1", "".join(f"w{i} " for i in range(20)))
    arguments = ToolCallArgsEvent.model_validate(sent[4])
    assert (arguments.tool_call_id, arguments.delta) == ("c1", '{"q": "milk"}')


def test_a_piece_is_written_as_ag_uis_encoder_writes_its_event() -> None:
    encoder = EventEncoder()
    for delta in [
        "plain",
        'quote " and \\ backslash',
        "line\nbreak\ttab",
        "\x01\x1f",
        "é 中文 🙂",
        "\u2028",
    ]:
        assert encode_piece(Piece(TextMessageContentEvent, "m1", delta)) == encoder.encode(
            TextMessageContentEvent(message_id="m1", delta=delta)
        )
        assert encode_piece(Piece(ToolCallArgsEvent, "c1", delta)) == encoder.encode(
            ToolCallArgsEvent(tool_call_id="c1", delta=delta)
        )


async def test_a_content_event_with_more_than_its_text_goes_out_whole() -> None:
    events: list[BaseEvent | Piece | None] = [
        Piece(TextMessageContentEvent, "m1", "a"),
        TextMessageContentEvent(message_id="m1", delta="b", timestamp=7),
        Piece(TextMessageContentEvent, "m1", "c"),
        None,
    ]

    sent = decode((await relayed(events))[0])

    assert [(e["delta"], e.get("timestamp")) for e in sent] == [("a", None), ("b", 7), ("c", None)]
