"""Chat models behind one small interface: any OpenAI-compatible endpoint through the `openai`
SDK (OpenAI, Azure, vLLM, Ollama), or, with none configured, the labelled no-LLM mode so that
every other part of the service runs end to end on a fresh machine.
"""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import openai

from app.core.settings import Settings

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
    input_tokens: int
    output_tokens: int


class ModelError(Exception):
    """The model endpoint failed or timed out; the message is safe to show to the user."""


class ChatModel(Protocol):
    name: str

    def stream(
        self,
        messages: list[dict[str, Any]],
        parameters: dict[str, Any],
        tools: list[dict[str, Any]],
    ) -> AsyncIterator[TextDelta | ToolCallDelta | Usage]: ...


class OpenAIChatModel:
    def __init__(self, client: openai.AsyncOpenAI, name: str) -> None:
        self.client = client
        self.name = name

    async def stream(
        self,
        messages: list[dict[str, Any]],
        parameters: dict[str, Any],
        tools: list[dict[str, Any]],
    ) -> AsyncIterator[TextDelta | ToolCallDelta | Usage]:
        if tools:
            parameters = {**parameters, "tools": tools}
        try:
            # The SDK retries 429/5xx with backoff (max_retries) before the stream starts.
            # Typed loosely on purpose: messages and parameters come from stored JSON.
            create: Any = self.client.chat.completions.create
            stream = await create(
                model=self.name,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                **parameters,
            )
            async for chunk in stream:
                if chunk.usage is not None:
                    yield Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    # PostgreSQL stores no NUL: one in the answer would fail its save, so
                    # neither the stream nor the stored message carries it.
                    text = (choice.delta.content or "").replace("\x00", "")
                    if text:
                        yield TextDelta(text)
                    for call in choice.delta.tool_calls or []:
                        function = call.function
                        yield ToolCallDelta(
                            index=call.index,
                            id=call.id,
                            name=function.name if function else None,
                            arguments=(function.arguments or "") if function else "",
                        )
        except openai.APITimeoutError as exc:
            raise ModelError("The model did not answer in time.") from exc
        except openai.APIStatusError as exc:
            raise ModelError(f"The model endpoint answered {exc.status_code}.") from exc
        except openai.APIError as exc:
            raise ModelError(f"The model endpoint failed: {exc.message}") from exc
        except json.JSONDecodeError as exc:
            # The SDK parses each `data:` line as it comes and lets a bad one through as is:
            # the endpoint's fault, not ours.
            raise ModelError("The model endpoint sent a malformed stream.") from exc


class NoModel:
    """No model configured: answer with the passages retrieved for the question (numbered,
    with their sources), or say that nothing matched; clearly labelled, through the same
    events as a model's answer."""

    name = NO_LLM_MODEL

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


def create_chat_client(settings: Settings) -> openai.AsyncOpenAI | None:
    if not settings.llm_configured:
        return None
    client = openai.AsyncOpenAI(
        api_key=settings.openai_api_key or "not-needed",
        base_url=settings.openai_base_url,
        timeout=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
    )
    # The SDK imports its chat resources on first use: about 50 ms with the event loop
    # blocked, paid by the first run of each process (and by every run waiting behind it).
    # Here it is paid at startup instead.
    _ = client.chat.completions
    return client


def chat_model(
    client: openai.AsyncOpenAI | None, settings: Settings, agent_model: str | None
) -> ChatModel:
    if client is None:
        return NoModel()
    return OpenAIChatModel(client, agent_model or settings.llm_model or "")
