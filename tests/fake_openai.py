"""A small OpenAI-compatible server for the tests: `POST /v1/chat/completions` streaming
chunks exactly as OpenAI's API does (`chat.completion.chunk` objects, a usage chunk, then
`data: [DONE]`), and `POST /v1/embeddings` (vectors derived from the texts' hashes, as floats
or base64 as asked; a batch with a text containing `slow to embed` takes
EMBEDDING_DELAY_SECONDS). The last user message steers the chat:

- `please fail`: 500 before any token (the SDK's retries are off in the tests);
- `break midway`: three tokens, then the connection drops;
- `say nul`: "Hello", a NUL character, " world";
- `send garbage`: three tokens, then a `data:` line that is not JSON;
- `reset midway`: three tokens, then the connection is reset (a TCP RST, not a close);
- `stall midway`: three tokens, then silence on an open connection for STALL_SECONDS;
- `rate limit once` (with anything after it, to tell scenarios apart): the first request
  with that message is a 429 with `Retry-After`, as OpenAI sends it; the next is answered;
- `go slowly`: one token every 50 ms, 200 tokens (for cancel and disconnect); `go slowly N`:
  N of them;
- `from the cache`: the usage chunk counts 8 of the prompt's tokens as cached
  (`prompt_tokens_details.cached_tokens`, as OpenAI's prompt caching reports them);
- `call the tool` (with `tools` in the request): a call of the first tool, its arguments in
  two pieces; after a `tool` message: "The tool said: <its content>";
- `remember milk` (with the `update_state` tool offered): a call adding "milk" to `/items`;
- `use <tool>: <JSON arguments>` (with that tool offered): a call of it with those arguments;
- anything else: the answer "Hello from the fake model." token by token.

Every answer of tokens stops at the request's `max_tokens` (or `max_completion_tokens`).
"""

import asyncio
import base64
import hashlib
import json
import re
import socket
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ANSWER = ["Hello", " from", " the", " fake", " model", "."]
STALL_SECONDS = 30.0
RETRY_AFTER_SECONDS = 1
requests_seen: list[dict[str, Any]] = []
# The API key of each chat request (its `Authorization: Bearer`), in order.
keys_seen: list[str] = []
EMBEDDING_DELAY_SECONDS = 0.5
EMBEDDING_DIMENSIONS = {"text-embedding-3-small": 1536}
embedding_requests_seen: list[dict[str, Any]] = []
rate_limited: set[str] = set()  # messages already answered 429 once
# Every server `serve` started, so a request can find its own connection to reset.
running_servers: list[uvicorn.Server] = []


def _chunk(
    content: str | None = None,
    usage: dict[str, Any] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> str:
    delta: dict[str, Any] = {"tool_calls": tool_calls} if tool_calls else {"content": content}
    body: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "fake-model",
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    if usage:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n"


def _refused_key(request: Request) -> Response | None:
    """A key that begins `sk-refused` is refused as OpenAI refuses a wrong key: 401, the key
    echoed in the message."""
    key = request.headers.get("authorization", "").removeprefix("Bearer ")
    if not key.startswith("sk-refused"):
        return None
    message = f"Incorrect API key provided: {key}. You can find your API key at ..."
    error = {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
    return JSONResponse({"error": error}, status_code=401)


async def chat_completions(request: Request) -> Response:
    keys_seen.append(request.headers.get("authorization", "").removeprefix("Bearer "))
    if (refused := _refused_key(request)) is not None:
        return refused
    payload = await request.json()
    requests_seen.append(payload)
    last_user = next(
        (m["content"] for m in reversed(payload["messages"]) if m["role"] == "user"), ""
    )
    if "please fail" in last_user:
        return JSONResponse({"error": {"message": "upstream exploded"}}, status_code=500)
    if "rate limit once" in last_user and last_user not in rate_limited:
        rate_limited.add(last_user)
        return JSONResponse(
            {
                "error": {
                    "message": "Rate limit reached for requests",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            },
            status_code=429,
            headers={"retry-after": str(RETRY_AFTER_SECONDS)},
        )

    last = payload["messages"][-1]

    async def stream() -> AsyncIterator[str]:
        if last["role"] == "tool":
            yield _chunk(f"The tool said: {last['content']}")
            yield "data: [DONE]\n\n"
            return
        offered = [tool["function"]["name"] for tool in payload.get("tools", [])]
        if "remember milk" in last_user and "update_state" in offered:
            arguments = json.dumps(
                {"operations": [{"op": "add", "path": "/items", "value": ["milk"]}]}
            )
            call = {"index": 0, "id": "call_state1", "type": "function"}
            yield _chunk(
                tool_calls=[{**call, "function": {"name": "update_state", "arguments": arguments}}]
            )
            yield "data: [DONE]\n\n"
            return
        wanted = re.search(r"use (\w+): (\{.*\})", last_user)
        if wanted and wanted.group(1) in offered:
            call = {"index": 0, "id": "call_use1", "type": "function"}
            function = {"name": wanted.group(1), "arguments": wanted.group(2)}
            yield _chunk(tool_calls=[{**call, "function": function}])
            yield "data: [DONE]\n\n"
            return
        if "call the tool" in last_user and payload.get("tools"):
            name = payload["tools"][0]["function"]["name"]
            start = {"index": 0, "id": "call_fe1", "type": "function"}
            yield _chunk(tool_calls=[{**start, "function": {"name": name, "arguments": ""}}])
            for piece in ('{"city": ', '"Oslo"}'):
                yield _chunk(tool_calls=[{"index": 0, "function": {"arguments": piece}}])
            yield "data: [DONE]\n\n"
            return
        if "break midway" in last_user:
            for token in ANSWER[:3]:
                yield _chunk(token)
            raise RuntimeError("connection dropped")  # uvicorn aborts the response
        if any(fault in last_user for fault in ("send garbage", "reset midway", "stall midway")):
            for token in ANSWER[:3]:
                yield _chunk(token)
            # Time for the good chunks to reach the client before the fault: a reset
            # discards whatever is still in either side's buffers.
            await asyncio.sleep(0.2)
            if "send garbage" in last_user:
                yield "data: {this is not json\n\n"
                # Then the rest, as if nothing happened: skipping the line is not an option.
                for token in ANSWER[3:]:
                    yield _chunk(token)
                yield "data: [DONE]\n\n"
            elif "reset midway" in last_user:
                _reset(request)
            else:
                await asyncio.sleep(STALL_SECONDS)
            return
        if "go slowly" in last_user:
            count = re.search(r"go slowly (\d+)", last_user)
            tokens = [f"t{i} " for i in range(int(count[1]) if count else 200)]
        elif "say nul" in last_user:
            tokens = ["Hello", "\u0000", " world"]
        else:
            tokens = ANSWER
        # As OpenAI does: the answer stops at the request's cap (`finish_reason: length`).
        cap = payload.get("max_tokens") or payload.get("max_completion_tokens")
        tokens = tokens[:cap] if cap else tokens
        for token in tokens:
            if "go slowly" in last_user:
                await asyncio.sleep(0.05)
            yield _chunk(token)
        usage: dict[str, Any] = {
            "prompt_tokens": 12,
            "completion_tokens": len(tokens),
            "total_tokens": 12 + len(tokens),
        }
        if "from the cache" in last_user:
            usage["prompt_tokens_details"] = {"cached_tokens": 8}
        yield _chunk(usage=usage)
        yield "data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


async def embeddings(request: Request) -> Response:
    payload = await request.json()
    embedding_requests_seen.append(payload)
    texts = [payload["input"]] if isinstance(payload["input"], str) else payload["input"]
    if any("slow to embed" in text for text in texts):
        await asyncio.sleep(EMBEDDING_DELAY_SECONDS)
    dimensions = payload.get("dimensions") or EMBEDDING_DIMENSIONS[payload["model"]]
    data = []
    for index, text in enumerate(texts):
        vector = _vector(text, dimensions)
        encoded: Any = vector
        if payload.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(len(text.split()) for text in texts)
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": payload["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _vector(text: str, dimensions: int) -> list[float]:
    """A unit vector that depends on the text only."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [seed[i % len(seed)] - 127.5 + i % 7 for i in range(dimensions)]
    norm = sum(value * value for value in raw) ** 0.5
    return [value / norm for value in raw]


def _reset(request: Request) -> None:
    """Abort the request's connection with a TCP RST (SO_LINGER 0, then close), as a crashed
    proxy or a load balancer's idle reaper does; the ASGI interface has no way to say it."""
    for server in running_servers:
        for connection in list(server.server_state.connections):
            # Read loosely: uvicorn's protocol classes (h11, httptools...) share no base.
            ends = (getattr(connection, "client", None), getattr(connection, "server", None))
            if ends == (tuple(request.scope["client"]), tuple(request.scope["server"])):
                transport = connection.transport
                sock = transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
                return
    raise RuntimeError("the request's connection was not found")


app = Starlette(
    routes=[
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
    ]
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def serve(
    application: Any, port: int, root_path: str = ""
) -> tuple[uvicorn.Server, "asyncio.Task[None]"]:
    """Run an ASGI app on a loopback port in this event loop; wait until it listens.
    `root_path`: as `uvicorn --root-path` behind a proxy that mounts the app under a prefix."""
    server = uvicorn.Server(
        uvicorn.Config(
            application,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            root_path=root_path,
        )
    )
    running_servers.append(server)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            return server, task
        await asyncio.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


def new_id() -> str:
    return str(uuid.uuid4())
