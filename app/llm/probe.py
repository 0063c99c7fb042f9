"""`POST /models/{id}/test`: one tiny request to the model's provider, timed, with the
provider's own words when it fails.

Chat models get a one-word prompt with a small output cap (`max_completion_tokens` for OpenAI
and Azure, whose newer models refuse `max_tokens`; `max_tokens` for OpenAI-compatible servers,
which not all know the other); embedding models embed one word. Through the egress guard: an
organization's endpoint is a URL a tenant aims. The key goes in the header the provider
expects and nowhere else: it is scrubbed from any error text the provider echoes.

A probe that the provider answered is a model call like any other: its tokens (the
provider's count, else the probe's estimate) go to the usage ledger.
"""

import time
from typing import Any

import orjson

from app.core.egress import EgressError, EgressGuard
from app.llm.client import Usage
from app.llm.context import estimate_call_tokens
from app.llm.models import ModelCapability, ProviderKind, ProviderModel
from app.llm.schemas import ModelTestResult

OPENAI_BASE_URL = "https://api.openai.com/v1"
PROBE_SECONDS = 20.0
PROBE_MAX_BYTES = 256 * 1024
ERROR_CHARACTERS = 500
PROBE_MESSAGES = [{"role": "user", "content": "Reply with OK."}]
PROBE_OUTPUT_TOKENS = 16


def _embeds(model: ProviderModel) -> bool:
    """Whether the probe embeds a word (a model that only embeds) rather than chats."""
    return (
        ModelCapability.embeddings in model.capabilities
        and ModelCapability.chat not in model.capabilities
    )


def request_for(model: ProviderModel, api_key: str | None) -> tuple[str, dict[str, str], bytes]:
    """URL, headers and body of the probe."""
    embeddings = _embeds(model)
    operation = "embeddings" if embeddings else "chat/completions"
    headers = {"Content-Type": "application/json"}
    if model.provider == ProviderKind.azure_openai:
        url = (
            f"{model.endpoint}/openai/deployments/{model.azure_deployment}/{operation}"
            f"?api-version={model.azure_api_version}"
        )
        if api_key:
            headers["api-key"] = api_key
    else:
        url = f"{model.endpoint or OPENAI_BASE_URL}/{operation}"
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
    body: dict[str, object] = {"model": model.provider_model}
    if embeddings:
        body["input"] = ["ping"]
    else:
        body["messages"] = PROBE_MESSAGES
        cap = (
            "max_tokens"
            if model.provider == ProviderKind.openai_compatible
            else ("max_completion_tokens")
        )
        body[cap] = PROBE_OUTPUT_TOKENS
    return url, headers, orjson.dumps(body)


async def probe(
    guard: EgressGuard, model: ProviderModel, api_key: str | None
) -> tuple[ModelTestResult, Usage | None]:
    """The test's result, and its tokens when the provider answered it (None: no usage,
    the provider refused the request or was not reached)."""
    url, headers, body = request_for(model, api_key)
    started = time.perf_counter()
    try:
        answer = await guard.post(
            url,
            body,
            headers=headers,
            max_bytes=PROBE_MAX_BYTES,
            deadline_seconds=PROBE_SECONDS,
        )
    except EgressError as exc:
        failed = ModelTestResult(
            ok=False,
            latency_ms=_since(started),
            status_code=None,
            error=_scrubbed(str(exc), api_key),
        )
        return failed, None
    latency = _since(started)
    if 200 <= answer.status_code < 300:
        ok = ModelTestResult(
            ok=True, latency_ms=latency, status_code=answer.status_code, error=None
        )
        return ok, _usage(answer.content)
    refused = ModelTestResult(
        ok=False,
        latency_ms=latency,
        status_code=answer.status_code,
        error=_scrubbed(provider_message(answer.content), api_key),
    )
    return refused, None


def _usage(content: bytes) -> Usage | None:
    """The provider's count in its answer (`usage`), or None when it sent none."""
    try:
        document: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    usage = document.get("usage") if isinstance(document, dict) else None
    if not isinstance(usage, dict) or not isinstance(usage.get("prompt_tokens"), int):
        return None
    output = usage.get("completion_tokens")
    return Usage(usage["prompt_tokens"], output if isinstance(output, int) else 0)


def estimated_usage(model: ProviderModel) -> Usage:
    """The probe's tokens by estimate: its prompt, and at most its output cap."""
    if _embeds(model):
        return Usage(1, 0)
    return Usage(estimate_call_tokens(PROBE_MESSAGES), PROBE_OUTPUT_TOKENS)


def provider_message(content: bytes) -> str:
    """OpenAI's error shape (`{"error": {"message": ...}}`), else the body's text."""
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content.decode(errors="replace")[:ERROR_CHARACTERS] or "(empty answer)"
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:ERROR_CHARACTERS]
    if isinstance(error, str):
        return error[:ERROR_CHARACTERS]
    return content.decode(errors="replace")[:ERROR_CHARACTERS]


def _scrubbed(text: str, api_key: str | None) -> str:
    return text.replace(api_key, "[the key]") if api_key else text


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
