"""Fuzzing the live service from its own OpenAPI document (schemathesis): for every operation,
as an organization's admin and as its member, no server error, and every answer's status,
content type, headers and body as the document says. A failure prints the `curl` that
reproduces it.

Bounded for CI (tests/contract/fuzzing.py: a few cases per operation and role, a fixed
seed); `pytest tests/contract/test_fuzz.py --fuzz-long` runs ten times as many, with the
coverage phase and a random seed.
Operations run against one of everything of the organization (an agent, a conversation, a
file, a knowledge source, a quick task); a DELETE gets a fresh object of its own each time,
so the others keep theirs. The webhook gets bodies signed as Svix signs them.
"""

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from svix.webhooks import Webhook

from app.core.settings import Settings
from app.main import create_app
from tests import clerk
from tests.contract.fuzzing import BUDGET, TALLY
from tests.contract.live import LiveService, Objects, make_objects

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def objects(live: LiveService) -> Objects:
    return make_objects(live)


# The document the live service serves, built without starting one (no lifespan runs):
# collection needs it before any fixture exists.
schema = schemathesis.openapi.from_dict(
    create_app(Settings.model_validate({"app_env": "test"})).openapi(),
    config=SchemathesisConfig.from_dict(
        {"phases": {"coverage": {"enabled": BUDGET.coverage}}, "seed": 12345}
    ),
)


def with_objects(case: Any, objects: Objects, fresh: Callable[[], Objects]) -> None:
    parameters = case.path_parameters or {}
    # A DELETE takes what it removes from a fresh set of its own: the shared one stays.
    ids = (fresh() if case.method == "DELETE" and parameters else objects).ids()
    for name in parameters:
        if name in ids:
            parameters[name] = ids[name]
    if isinstance(case.body, dict) and "threadId" in case.body:
        case.body["threadId"] = str(uuid.uuid4())


def call_webhook(live: LiveService, case: Any) -> requests.Response:
    if isinstance(case.body, NotSet):
        body = b""
    elif isinstance(case.body, bytes):
        body = case.body
    else:
        body = json.dumps(case.body).encode()
    svix_id = f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    try:
        signature = Webhook(clerk.WEBHOOK_SECRET).sign(svix_id, now, body.decode())
    except UnicodeDecodeError:
        signature = "v1,c2lnbmVk"  # Svix signs text only: such a body arrives unverifiable
    headers = {
        "content-type": "application/json",
        "svix-id": svix_id,
        "svix-timestamp": str(int(now.timestamp())),
        "svix-signature": signature,
    }
    return requests.post(f"{live.base_url}/webhooks/clerk", data=body, headers=headers, timeout=60)


FUZZ_SETTINGS = settings(
    max_examples=BUDGET.examples,
    deadline=None,
    derandomize=BUDGET.derandomize,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_the_api_answers_an_admin_as_its_document_says(
    case: Any, live: LiveService, objects: Objects
) -> None:
    call_and_validate(case, "admin", live, objects)


@schema.parametrize()
@FUZZ_SETTINGS
def test_the_api_answers_a_member_as_its_document_says(
    case: Any, live: LiveService, objects: Objects
) -> None:
    call_and_validate(case, "member", live, objects)


def call_and_validate(case: Any, role: str, live: LiveService, objects: Objects) -> None:
    with_objects(case, objects, lambda: make_objects(live))
    if case.path == "/webhooks/clerk":
        answer = call_webhook(live, case)
        TALLY.count(f"{case.method} {case.path}", answer.status_code)
        case.validate_response(answer, checks=CHECKS)
        return
    headers = {**(case.headers or {}), **live.headers(role)}
    response = case.call(base_url=live.base_url, headers=headers, timeout=60)
    TALLY.count(f"{case.method} {case.path}", response.status_code)
    case.validate_response(response, checks=CHECKS)
