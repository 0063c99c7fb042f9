"""The OpenAPI document as a contract clients generate from (openapi-typescript, orval).

FastAPI documents the success response and a JSON 422 of its own. Everything else is added
here, by construction, so a new route is documented without anyone writing it down:

- The errors an operation can answer, each as `application/problem+json` with the one
  `Problem` schema. They are derived from the code (`app.core.raises`): the domain errors
  raised by the route's function, its dependencies, and what they call in `app`, plus what
  the route's shape implies (a body can be too large, of the wrong type or malformed; any
  request can fail validation). Fuzzing (tests/test_fuzz.py) checks every answered status is
  documented, so a derivation that misses one fails CI.
- `operationId`s from the route functions' names in camelCase (`list_agents` → `listAgents`),
  fit for generated method names; tests/test_openapi.py keeps them unique and unchanged.
- Security: Clerk's session token as a bearer JWT or the `__session` cookie, on every
  operation that needs a caller.
- Streams: the run routes answer `text/event-stream`, each event one of AG-UI's, whose union
  (`AgUiEvent`) is in the components.
"""

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from ag_ui.core import Event
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import TypeAdapter

from app.core.errors import (
    AppError,
    MalformedJSON,
    PayloadTooLarge,
    Problem,
    UnprocessableContent,
    UnsupportedMediaType,
)
from app.core.raises import errors_raised_by

BEARER = "ClerkSessionToken"
COOKIE = "ClerkSessionCookie"
PROBLEM_SCHEMA = "Problem"
EVENT_SCHEMA = "AgUiEvent"
EVENT_PREFIX = "AgUi"
# One event of the stream (OpenAPI 3.1 has `schema` describe each): its `data` is an AG-UI
# event as JSON. Comments (`: heartbeat`) are not events.
SERVER_SENT_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": f"#/components/schemas/{EVENT_SCHEMA}"},
        },
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}


class FormUnreadable(AppError):
    """What FastAPI answers for a multipart body it cannot parse (its own HTTPException)."""

    status_code = 400
    problem = "bad-request"
    title = "Bad Request"


def operation_id(route: APIRoute) -> str:
    """`list_agents` → `listAgents`: what generated clients name their methods."""
    head, *rest = route.name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def install(app: FastAPI, requires_caller: Callable[..., Any]) -> None:
    """Serve the contract at /openapi.json. `requires_caller` is the dependency that reads the
    session token: an operation that depends on it is marked with the security schemes."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app, requires_caller)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build(app: FastAPI, requires_caller: Callable[..., Any]) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_problem_schemas())
    schemas.update(_event_schemas())
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "Clerk's session token: `Authorization: Bearer <token>`.",
        },
        COOKIE: {
            "type": "apiKey",
            "in": "cookie",
            "name": "__session",
            "description": "Clerk's session cookie, as the browser sends it.",
        },
    }
    for route in _api_routes(app):
        calls = list(_calls(route.dependant))
        for method in route.methods:
            operation = document["paths"][route.path_format][method.lower()]
            _document_errors(operation, route, calls)
            if requires_caller in calls:
                operation["security"] = [{BEARER: []}, {COOKIE: []}]
            if _streams_events(route):
                operation["responses"]["200"]["content"] = {
                    "text/event-stream": {"schema": SERVER_SENT_EVENT}
                }
    # FastAPI's own validation error schemas answer nothing any more.
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    _defaults_of_requests_in_words(document)
    return document


def _defaults_of_requests_in_words(document: dict[str, Any]) -> None:
    """A field with a default may be left out of a request. Generators read `default` as
    "always there" (openapi-typescript's default `defaultNonNullable`), which is true of an
    answer and makes a request demand every defaulted field; so in the schemas only requests
    use, the default is said in the field's description instead."""
    schemas = document["components"]["schemas"]
    requested = _reachable(schemas, _media(document, "requestBody"))
    answered = _reachable(schemas, _media(document, "responses"))
    for name in requested - answered:
        for field in schemas[name].get("properties", {}).values():
            if "default" in field:
                default = json.dumps(field.pop("default"))
                field["description"] = f"{field.get('description', '')} Default: {default}.".strip()


def _media(document: dict[str, Any], part: str) -> list[Any]:
    found = []
    for item in document["paths"].values():
        for operation in item.values():
            section = operation.get(part, {})
            bodies = section.values() if part == "responses" else [section]
            found += [body.get("content", {}) for body in bodies if isinstance(body, dict)]
    return found


def _reachable(schemas: dict[str, Any], roots: list[Any]) -> set[str]:
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            reference = value.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/components/schemas/"):
                name = reference.rsplit("/", 1)[1]
                if name not in seen and name in schemas:
                    seen.add(name)
                    pending.append(schemas[name])
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return seen


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """The API routes as included (with their routers' prefixes and dependencies): FastAPI
    builds those lazily, and hands them to its own document builder this way."""
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            yield route


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for dependency in dependant.dependencies:
        yield from _calls(dependency)


def _document_errors(
    operation: dict[str, Any], route: Any, calls: list[Callable[..., Any]]
) -> None:
    errors: set[type[AppError]] = set()
    for call in calls:
        errors |= errors_raised_by(call)
    # Every request passes the NUL check (`app.core.request_checks`) and may fail validation.
    errors.add(UnprocessableContent)
    if route.body_field is not None or "requestBody" in (route.openapi_extra or {}):
        errors |= {PayloadTooLarge, UnsupportedMediaType}
        if _is_form(route):
            errors.add(FormUnreadable)
        else:
            errors.add(MalformedJSON)
    by_status: dict[int, set[type[AppError]]] = defaultdict(set)
    for error in errors:
        by_status[error.status_code].add(error)
    responses = operation.setdefault("responses", {})
    for status, group in by_status.items():
        if status not in route.responses:  # what the route documents itself stands
            responses[str(status)] = _problem_response(group)
    operation["responses"] = dict(sorted(responses.items()))


def _streams_events(route: Any) -> bool:
    content = route.responses.get(200, {}).get("content", {})
    return "text/event-stream" in content


def _is_form(route: Any) -> bool:
    body = route.body_field
    return body is not None and "multipart" in str(
        getattr(body.field_info, "media_type", "application/json")
    )


def _problem_response(group: set[type[AppError]]) -> dict[str, Any]:
    problems = sorted({(error.problem, error.title) for error in group})
    response: dict[str, Any] = {
        "description": "; ".join(f"`{problem}`: {title}" for problem, title in problems),
        "content": {
            "application/problem+json": {
                "schema": {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA}"},
            }
        },
    }
    if any(error.status_code in (429, 503) for error in group):
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again (when the cause is load).",
                "schema": {"type": "integer"},
            }
        }
    return response


def _problem_schemas() -> dict[str, Any]:
    schema = TypeAdapter(Problem).json_schema(ref_template="#/components/schemas/{model}")
    definitions: dict[str, Any] = schema.pop("$defs", {})
    return {PROBLEM_SCHEMA: schema, **definitions}


def _event_schemas() -> dict[str, Any]:
    """AG-UI's event union, its definitions prefixed so they cannot collide with the request
    models FastAPI names after the same classes (`RunAgentInput`'s messages)."""
    schema = TypeAdapter(Event).json_schema(
        ref_template=f"#/components/schemas/{EVENT_PREFIX}{{model}}", mode="serialization"
    )
    definitions: dict[str, Any] = schema.pop("$defs", {})
    prefixed = {f"{EVENT_PREFIX}{name}": value for name, value in definitions.items()}
    for member in schema["oneOf"]:
        # `type` has a default in the models, so their schemas leave it optional; every event
        # on the wire carries it, and without it every member would match an event.
        event = prefixed[member["$ref"].rsplit("/", 1)[1]]
        event["required"] = sorted({*event.get("required", []), "type"})
    return {EVENT_SCHEMA: schema, **prefixed}
