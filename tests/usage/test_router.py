"""Usage and cost: admins see their organization's consumption by day, agent, user, model."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations.models import Conversation, Message, MessageRole
from app.core.db import set_tenant
from app.core.settings import Settings
from app.organizations.models import Organization
from tests.clerk import FakeClerk
from tests.conftest import DatabaseUnderTest


@pytest.fixture
def settings(test_database: DatabaseUnderTest, tmp_path: Path) -> Settings:
    return test_database.settings(
        workspaces_dir=tmp_path, llm_prices={"gpt-test": {"input": 1.0, "output": 2.0}}
    )


def admin(fake_clerk: FakeClerk, org: str = "org_A") -> dict[str, str]:
    return fake_clerk.headers(f"user_admin_{org}", org, "admin")


async def answer(
    session: AsyncSession,
    conversation: Conversation,
    model: str,
    tokens: tuple[int, int],
    when: datetime,
) -> None:
    await set_tenant(session, conversation.organization_id)
    session.add(
        Message(
            organization_id=conversation.organization_id,
            conversation_id=conversation.id,
            role=MessageRole.assistant,
            content="answer",
            model=model,
            input_tokens=tokens[0],
            output_tokens=tokens[1],
            created_at=when,
        )
    )
    await session.flush()


async def start_conversation(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str], org: str
) -> Conversation:
    agent = await client.post("/agents", json={"slug": "meter", "name": "Meter"}, headers=headers)
    created = await client.post(
        "/conversations", json={"agent_id": agent.json()["id"]}, headers=headers
    )
    organization = await session.scalar(select(Organization).where(Organization.clerk_id == org))
    assert organization is not None
    await set_tenant(session, organization.id)
    conversation = await session.get(
        Conversation, {"organization_id": organization.id, "id": uuid.UUID(created.json()["id"])}
    )
    assert conversation is not None
    return conversation


async def test_admins_see_tokens_and_cost_by_day_agent_user_and_model(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    mine = await start_conversation(client, session, admin(fake_clerk), "org_A")
    theirs = await start_conversation(client, session, admin(fake_clerk, "org_B"), "org_B")
    today = datetime.now(UTC)
    await answer(session, mine, "gpt-test", (1_000, 500), today)
    await answer(session, mine, "gpt-test", (2_000, 1_500), today)
    await answer(session, mine, "unpriced", (10, 10), today - timedelta(days=1))
    await answer(session, mine, "gpt-test", (9_999, 9_999), today - timedelta(days=60))
    await answer(session, theirs, "gpt-test", (7_777, 7_777), today)

    response = await client.get("/usage", headers=admin(fake_clerk))
    assert response.status_code == 200, response.text
    report = response.json()
    rows = [
        (row["model"], row["answers"], row["input_tokens"], row["output_tokens"], row["cost_usd"])
        for row in report["rows"]
    ]
    assert rows == [
        ("gpt-test", 2, 3_000, 2_000, pytest.approx(0.007)),
        ("unpriced", 1, 10, 10, None),
    ]
    assert report["rows"][0]["agent_id"] == str(mine.agent_id)
    assert report["rows"][0]["user_id"] == str(mine.user_id)
    assert (report["input_tokens"], report["output_tokens"]) == (3_010, 2_010)
    assert report["cost_usd"] is None  # part of it has no price

    older = await client.get(
        "/usage",
        params={
            "start": (today - timedelta(days=61)).date().isoformat(),
            "end": (today - timedelta(days=59)).date().isoformat(),
        },
        headers=admin(fake_clerk),
    )
    assert [row["input_tokens"] for row in older.json()["rows"]] == [9_999]
    assert older.json()["cost_usd"] == pytest.approx((9_999 * 1 + 9_999 * 2) / 1e6)


async def test_members_cannot_read_usage(client: httpx.AsyncClient, fake_clerk: FakeClerk) -> None:
    response = await client.get("/usage", headers=fake_clerk.headers("user_m", "org_A", "member"))
    assert response.status_code == 403


async def test_a_reversed_range_is_422(client: httpx.AsyncClient, fake_clerk: FakeClerk) -> None:
    response = await client.get(
        "/usage", params={"start": "2026-02-01", "end": "2026-01-01"}, headers=admin(fake_clerk)
    )
    assert response.status_code == 422
