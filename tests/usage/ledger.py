"""Helpers of the usage tests: an organization's id, and model calls recorded as the
service records them (`app.usage.service.record`, on the session's connection)."""

import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import driver_connection, set_tenant
from app.usage import service as usage_service
from app.usage.models import UsagePurpose
from app.usage.service import Attribution, ModelCall
from tests.clerk import FakeClerk


def admin(fake_clerk: FakeClerk, org: str = "org_A") -> dict[str, str]:
    return fake_clerk.headers(f"user_admin_{org}", org, "admin")


def member(fake_clerk: FakeClerk, org: str = "org_A", user: str = "user_member") -> dict[str, str]:
    return fake_clerk.headers(f"{user}_{org}", org, "member")


async def whoami(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[uuid.UUID, uuid.UUID]:
    """(organization id, user id) of the headers' caller, provisioned by a first request."""
    me = await client.get("/me", headers=headers)
    assert me.status_code == 200, me.text
    return uuid.UUID(me.json()["organization"]["id"]), uuid.UUID(me.json()["user"]["id"])


async def record(
    session: AsyncSession,
    organization: uuid.UUID,
    *,
    request_id: str | None = None,
    occurred_at: datetime | None = None,
    model_id: uuid.UUID | None = None,
    model_name: str = "fake-model",
    tokens: tuple[int, int, int] = (100, 0, 50),
    purpose: UsagePurpose = UsagePurpose.chat,
    user_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
    estimated: bool = False,
) -> str:
    """One model call in the organization's ledger; its request id."""
    request_id = request_id or f"test:{uuid.uuid4()}"
    await set_tenant(session, organization)
    call = ModelCall(
        request_id=request_id,
        purpose=purpose,
        occurred_at=occurred_at or datetime.now(UTC),
        model_id=model_id,
        model_name=model_name,
        input_tokens=tokens[0],
        cached_input_tokens=tokens[1],
        output_tokens=tokens[2],
        estimated=estimated,
        latency_ms=120,
    )
    attribution = Attribution(organization, user_id, agent_id)
    await usage_service.record(await driver_connection(session), attribution, [call])
    return request_id
