"""Fitting a conversation into the model's context window, and estimating a call's tokens
when its provider does not count them (usage events marked `tokens_estimated`).

Tokens are estimated, not counted: an exact count needs the model's own tokenizer, which
this service cannot download at run time and which differs between the providers it talks
to. About four characters a token (English, code) with a small overhead per message is
close enough to keep a margin; the estimate errs high for short messages.

A budget needs the opposite, a bound that no tokenizer exceeds (`bound_call_tokens`): the
byte-level BPE tokenizers of OpenAI's models (and the byte fallback of others) never make
more tokens than the UTF-8 bytes they read, and a message's JSON, its keys and quotes, is
longer than the few tokens the chat format adds around each message.
"""

from collections.abc import Iterable
from typing import Any

import orjson

CHARACTERS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def estimate_tokens(message: dict[str, Any]) -> int:
    content = message.get("content") or ""
    return len(str(content)) // CHARACTERS_PER_TOKEN + TOKENS_PER_MESSAGE


def estimate_text_tokens(text: str) -> int:
    return -(-len(text) // CHARACTERS_PER_TOKEN)  # rounded up: a short text is a token


def estimate_call_tokens(
    messages: Iterable[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> int:
    """What a chat request's input costs: its messages (with their tool calls) and the
    definitions of the tools it offers."""
    total = 0
    for message in messages:
        total += estimate_tokens(message)
        if message.get("tool_calls"):
            total += estimate_text_tokens(orjson.dumps(message["tool_calls"]).decode())
    if tools:
        total += estimate_text_tokens(orjson.dumps(tools).decode())
    return total


REPLY_PRIMING_TOKENS = 3  # what the chat format adds to start the model's reply


def bound_call_tokens(
    messages: Iterable[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> int:
    """At most the tokens a chat request's input can cost: its JSON's bytes."""
    size = len(orjson.dumps(list(messages))) + REPLY_PRIMING_TOKENS
    return size + (len(orjson.dumps(tools)) if tools else 0)


def trim_to_window(messages: list[dict[str, Any]], budget_tokens: int) -> list[dict[str, Any]]:
    """Drop the oldest messages (never the system prompt, never the newest message) until
    the rest fits in `budget_tokens`."""
    system = [message for message in messages if message["role"] == "system"]
    rest = [message for message in messages if message["role"] != "system"]
    used = sum(estimate_tokens(message) for message in system + rest)
    while len(rest) > 1 and used > budget_tokens:
        used -= estimate_tokens(rest.pop(0))
    return system + rest
