"""Chat models behind one small interface: any OpenAI-compatible endpoint through the `openai`
SDK (OpenAI, Azure, vLLM, Ollama), or, with none configured, the labelled no-LLM mode so that
every other part of the service runs end to end on a fresh machine. Which model a run calls,
and its client, come from the registry: app/llm/clients.py.
"""

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import httpx2
import openai
import orjson

NO_LLM_MODEL = "no-llm"
NO_LLM_LABEL = (
    "[no-LLM mode: no language model is configured on this service, so this answer is not "
    "generated]"
)
NO_LLM_NOTHING = "I found nothing in this agent's knowledge that matches your question."
NO_LLM_PASSAGES = "The most relevant passages from this agent's knowledge:"


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call: the first piece of each call carries its id and name."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True)
class Usage:
    """The provider's count of a call's tokens (its last chunk, `stream_options`)."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0  # part of input_tokens


class ModelError(Exception):
    """The model endpoint failed or timed out; the message is safe to show to the user."""


class ChatModel(Protocol):
    name: str  # the provider's id of the model, stored with each answer
    model_id: uuid.UUID | None  # in the registry (None: the no-LLM mode)

    def stream(
        self,
        messages: list[dict[str, Any]],
        parameters: dict[str, Any],
        tools: list[dict[str, Any]],
    ) -> AsyncIterator[TextDelta | ToolCallDelta | Usage]: ...


class OpenAIChatModel:
    """The `openai` SDK sends the request (with its retries of 429/5xx, `Retry-After`, and
    its errors) through its low-level `post`, the body already JSON: its typed `create`
    walks every message against the parameters' TypedDicts before sending (a few
    milliseconds of CPU per run, growing with the history; bench/bench_ttft.py), to a body
    that is plain JSON from the database. The answer's stream is read here, as the
    server-sent events it is, with orjson: the SDK's own reader builds a pydantic object per
    chunk, which bench/bench_streams.py profiled at a third of a busy process's time."""

    def __init__(self, client: openai.AsyncOpenAI, name: str, model_id: uuid.UUID) -> None:
        self.client = client
        self.name = name
        self.model_id: uuid.UUID | None = model_id

    async def stream(
        self,
        messages: list[dict[str, Any]],
        parameters: dict[str, Any],
        tools: list[dict[str, Any]],
    ) -> AsyncIterator[TextDelta | ToolCallDelta | Usage]:
        body = {
            **parameters,
            "model": self.name,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            body["tools"] = tools
        try:
            response = await self.client.post(
                "/chat/completions",
                cast_to=httpx2.Response,
                content=orjson.dumps(body),
                options={"headers": {"Content-Type": "application/json"}},
                stream=True,
            )
            try:
                async for chunk in _chunks(response.aiter_lines()):
                    for item in _items(chunk):
                        yield item
            finally:
                await response.aclose()
        except (openai.APITimeoutError, httpx2.TimeoutException) as exc:
            raise ModelError("The model did not answer in time.") from exc
        except openai.APIStatusError as exc:
            raise ModelError(f"The model endpoint answered {exc.status_code}.") from exc
        except openai.APIError as exc:
            raise ModelError(f"The model endpoint failed: {exc.message}") from exc
        except (httpx2.HTTPError, anyio.EndOfStream) as exc:
            # What the SDK's own reader calls a connection error (`openai._httpx2`).
            raise ModelError("The model endpoint failed: Connection error.") from exc
        except orjson.JSONDecodeError as exc:
            raise ModelError("The model endpoint sent a malformed stream.") from exc


async def _chunks(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """The JSON of each event of an OpenAI-style SSE stream, up to `data: [DONE]` (a field
    may span several `data:` lines; comments and other fields are skipped)."""
    data: list[str] = []
    async for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            continue
        if line or not data:
            continue
        payload, data = "\n".join(data), []
        if payload == "[DONE]":
            return
        chunk = orjson.loads(payload)
        if not isinstance(chunk, dict):
            raise orjson.JSONDecodeError("not an object", payload, 0)
        if "error" in chunk:
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise ModelError(f"The model endpoint failed: {message}")
        yield chunk


def _items(chunk: dict[str, Any]) -> Iterator[TextDelta | ToolCallDelta | Usage]:
    usage = chunk.get("usage")
    if usage:
        details = usage.get("prompt_tokens_details") or {}
        yield Usage(
            usage.get("prompt_tokens") or 0,
            usage.get("completion_tokens") or 0,
            details.get("cached_tokens") or 0,
        )
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        # PostgreSQL stores no NUL: one in the answer would fail its save, so neither the
        # stream nor the stored message carries it.
        text = (delta.get("content") or "").replace("\x00", "")
        if text:
            yield TextDelta(text)
        for call in delta.get("tool_calls") or ():
            function = call.get("function") or {}
            yield ToolCallDelta(
                index=call.get("index", 0),
                id=call.get("id"),
                name=function.get("name"),
                arguments=function.get("arguments") or "",
            )


class NoModel:
    """No model configured: answer with the passages retrieved for the question (numbered,
    with their sources), or say that nothing matched; clearly labelled, through the same
    events as a model's answer."""

    name = NO_LLM_MODEL
    model_id: uuid.UUID | None = None

    def __init__(self, passages: str = "") -> None:
        body = f"{NO_LLM_PASSAGES}\n\n{passages}" if passages else NO_LLM_NOTHING
        self.answer = f"{NO_LLM_LABEL} {body}"

    async def stream(
        self,
        messages: list[dict[str, Any]],
        parameters: dict[str, Any],
        tools: list[dict[str, Any]],
    ) -> AsyncIterator[TextDelta | ToolCallDelta | Usage]:
        for line in self.answer.splitlines(keepends=True):
            yield TextDelta(line)
