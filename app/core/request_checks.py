"""Checks every request meets before any route runs, whatever its schema.

PostgreSQL stores no NUL character (`\\u0000`) in `text` or `jsonb`: one anywhere in a body,
a query or a path would get past every schema and fail at the database as a 500. So the
route class refuses it first, as a 422 that names where it is. Multipart bodies are left to
their routes: a file's bytes may hold anything, and its name is cleaned of control
characters (`app.files.service.clean_name`).
"""

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.exceptions import RequestValidationError

NUL = "\x00"
_ESCAPED_NUL = b"\\u0000"
_MESSAGE = "NUL characters (\\u0000) are not accepted: PostgreSQL cannot store them."


def _nul_paths(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Where, in a parsed JSON document, a string or a key holds a NUL."""
    if isinstance(value, str):
        if NUL in value:
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if NUL in key:
                yield (*path, key)
            yield from _nul_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_paths(item, (*path, index))


def _error(loc: tuple[str | int, ...]) -> dict[str, Any]:
    return {"type": "nul_character", "loc": loc, "msg": _MESSAGE, "input": None}


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    """From the raw headers: on every request, without building a header mapping."""
    for name, value in headers:
        if name == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
            return media_type == b"application/json" or media_type.endswith(b"+json")
    return False


async def refuse_nul_characters(request: Request) -> None:
    """Raise a validation error (422) naming each place a NUL is in the request."""
    errors: list[dict[str, Any]] = []
    if NUL in request.scope["path"]:
        errors.append(_error(("path",)))
    query = request.scope.get("query_string", b"")
    if b"%00" in query.lower() or b"\x00" in query:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        errors += [_error(("query", name)) for name, value in pairs if NUL in name + value]
    if _is_json(request.scope["headers"]):
        # The common case costs one scan of the bytes: JSON can only carry a NUL escaped.
        body = await request.body()
        if _ESCAPED_NUL in body:
            try:
                document = await request.json()  # kept by the request for the route
            except ValueError:
                document = None  # malformed: the route's own parsing answers it (400)
            errors += [_error(("body", *path)) for path in _nul_paths(document)]
    if errors:
        raise RequestValidationError(errors)
