"""No secret reaches the logs: the session token, the webhook signing secret and its
signatures, and the model's API key, through a whole request cycle (sign in, a webhook, a
run that calls the model, a model that fails, a refused token), with every logger at DEBUG
and the service's own JSON formatter."""

import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from pythonjsonlogger.json import JsonFormatter

from app.core.logging import RequestIdFilter
from tests import clerk
from tests.conftest import DatabaseUnderTest
from tests.runs.conftest import Service, new_agent, run_input, start_service

pytestmark = pytest.mark.asyncio(loop_scope="session")

MODEL_KEY = f"sk-test-{uuid.uuid4().hex}"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(uuid.uuid4().bytes * 2).decode()


@pytest.fixture(scope="module")
async def service(test_database: DatabaseUnderTest, model_url: str) -> AsyncIterator[Service]:
    async for running in start_service(
        test_database,
        "secrets",
        openai_base_url=model_url,
        openai_api_key=MODEL_KEY,
        llm_model="fake-model",
        llm_max_retries=0,
        clerk_webhook_signing_secret=WEBHOOK_SECRET,
    ):
        yield running


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s %(request_id)s"))
        self.addFilter(RequestIdFilter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        if record.exc_info:
            line += logging.Formatter().formatException(record.exc_info)
        self.lines.append(line)


async def test_no_secret_is_ever_logged(service: Service, http: httpx.AsyncClient) -> None:
    collected = Collected()
    root = logging.getLogger()
    level = root.level
    root.addHandler(collected)
    root.setLevel(logging.DEBUG)
    token = service.clerk.token("user_runner", "org_runs", "admin")
    auth = {"Authorization": f"Bearer {token}"}
    try:
        assert (await http.get(f"{service.base_url}/me", headers=auth)).status_code == 200
        agent_id = await new_agent(http, service)
        for text in ("hello", "please fail"):
            ran = await http.post(
                f"{service.base_url}/agents/{agent_id}/runs",
                json=run_input(str(uuid.uuid4()), ("m1", text)),
                headers=auth,
            )
            assert ran.status_code == 200
        body, headers = clerk.signed_webhook(clerk.fixture("user.created"), secret=WEBHOOK_SECRET)
        delivered = await http.post(
            f"{service.base_url}/webhooks/clerk", content=body, headers=headers
        )
        assert delivered.status_code == 200
        forged = dict(headers, **{"svix-signature": "v1,forged"})
        await http.post(f"{service.base_url}/webhooks/clerk", content=body, headers=forged)
        refused = await http.get(
            f"{service.base_url}/me", headers={"Authorization": f"Bearer {token[:-4]}abcd"}
        )
        assert refused.status_code == 401
    finally:
        root.removeHandler(collected)
        root.setLevel(level)

    logged = "\n".join(collected.lines)
    assert len(collected.lines) > 10  # the cycle was logged: the check is not vacuous
    assert "request" in logged
    secrets = {
        "session token": token,
        "token's signature": token.rsplit(".", 1)[1],
        "model key": MODEL_KEY,
        "webhook secret": WEBHOOK_SECRET,
        "webhook secret's key": WEBHOOK_SECRET.removeprefix("whsec_"),
        "webhook signature": headers["svix-signature"].split(",", 1)[1],
    }
    leaked = [name for name, secret in secrets.items() if secret in logged]
    assert leaked == [], json.dumps(leaked)
