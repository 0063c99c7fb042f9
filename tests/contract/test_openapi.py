"""The OpenAPI document is the contract front ends generate their clients from: stable,
unique operation ids; every error an operation can answer, as problem+json; the streams'
event schema; the security schemes. (That no answer goes undocumented is fuzzing's part:
tests/contract/test_fuzz.py.)"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core.settings import Settings
from app.main import create_app

OPERATION_IDS = Path(__file__).parent / "operation_ids.txt"
METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    # Building the document needs no database: no lifespan runs.
    schema: dict[str, Any] = create_app(Settings.model_validate({"app_env": "test"})).openapi()
    return schema


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def test_operation_ids_are_unique_and_unchanged(document: dict[str, Any]) -> None:
    """A changed id renames a method in every generated client: change the file on purpose
    (`METHOD path operationId` per line) when you mean it."""
    lines = sorted(f"{m} {p} {op['operationId']}" for m, p, op in operations(document))
    ids = [line.rsplit(" ", 1)[1] for line in lines]
    assert len(set(ids)) == len(ids)
    assert all(i[0].islower() and i.isalnum() for i in ids)
    assert lines == OPERATION_IDS.read_text().splitlines()


def test_every_error_is_problem_json_with_the_one_schema(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) and path != "/readyz":
                assert list(response["content"]) == ["application/problem+json"], (
                    method,
                    path,
                    status,
                )
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "request_id"} <= set(
        problem["required"]
    )
    assert "errors" in problem["properties"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_errors_are_derived_from_what_the_code_raises(document: dict[str, Any]) -> None:
    def problems(method: str, path: str, status: str) -> str:
        description: str = document["paths"][path][method]["responses"][status]["description"]
        return description

    assert "`agent-not-found`" in problems("patch", "/agents/{agent_id}", "404")
    assert "`platform-agent-read-only`" in problems("patch", "/agents/{agent_id}", "403")
    assert "`admin-required`" in problems("patch", "/agents/{agent_id}", "403")
    assert "`agent-slug-taken`" in problems("post", "/agents", "409")
    assert "`invalid-cursor`" in problems("get", "/conversations", "400")
    assert "`runs-at-capacity`" in problems("post", "/agents/{agent_id}/runs", "503")
    run_503 = document["paths"]["/agents/{agent_id}/runs"]["post"]["responses"]["503"]
    assert "Retry-After" in run_503["headers"]
    assert "`invalid-webhook-signature`" in problems("post", "/webhooks/clerk", "401")
    # A member's route has no admin error; a route without a body no 413.
    assert "admin-required" not in problems("get", "/agents", "403")
    assert "413" not in document["paths"]["/agents/{agent_id}"]["get"]["responses"]


def test_operations_that_need_a_caller_name_the_security_schemes(
    document: dict[str, Any],
) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["ClerkSessionToken"]["scheme"] == "bearer"
    assert schemes["ClerkSessionCookie"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "__session",
        "description": schemes["ClerkSessionCookie"]["description"],
    }
    public = {"/healthz", "/readyz", "/webhooks/clerk"}
    for method, path, operation in operations(document):
        if path in public:
            assert "security" not in operation, (method, path)
        else:
            assert operation["security"] == [
                {"ClerkSessionToken": []},
                {"ClerkSessionCookie": []},
            ], (method, path)
            assert "401" in operation["responses"], (method, path)
    webhook = document["paths"]["/webhooks/clerk"]["post"]
    headers = {p["name"] for p in webhook["parameters"] if p["in"] == "header"}
    assert headers == {"svix-id", "svix-timestamp", "svix-signature"}
    assert "application/json" in webhook["requestBody"]["content"]


def test_runs_stream_ag_ui_events(document: dict[str, Any]) -> None:
    for path in ("/agents/{agent_id}/runs", "/agents/{agent_id}/quick-tasks/{task_id}/runs"):
        content = document["paths"][path]["post"]["responses"]["200"]["content"]
        event = content["text/event-stream"]["schema"]
        assert event["required"] == ["data"]
        data = event["properties"]["data"]
        assert data["contentSchema"] == {"$ref": "#/components/schemas/AgUiEvent"}
    schemas = document["components"]["schemas"]
    kinds = {ref["$ref"].rsplit("/", 1)[1] for ref in schemas["AgUiEvent"]["oneOf"]}
    assert {"AgUiRunStartedEvent", "AgUiTextMessageContentEvent", "AgUiRunErrorEvent"} <= kinds
    # Each event names its type, so exactly one member of the union matches it.
    assert all("type" in schemas[kind]["required"] for kind in kinds)


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]

    def references(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "$ref" and isinstance(item, str):
                    yield item
                else:
                    yield from references(item)
        elif isinstance(value, list):
            for item in value:
                yield from references(item)

    missing = {
        ref
        for ref in references(document)
        if ref.removeprefix("#/components/schemas/") not in schemas
    }
    assert missing == set()
