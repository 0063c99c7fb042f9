"""The usage ledger: each model call's cost at the price in force when it began (micro-USD,
rounded up), once per request id, none for a model without a price, and rows the
application can add but never change."""

import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.usage.models import UsageEvent
from tests.clerk import FakeClerk
from tests.usage.ledger import admin, record, whoami

PRICE = {"input_micro_usd": 150_000, "cached_input_micro_usd": 75_000, "output_micro_usd": 600_000}
LATER_PRICE = {**PRICE, "output_micro_usd": 1_200_000, "effective_from": "2100-01-01T00:00:00Z"}


async def priced_model(client: httpx.AsyncClient, headers: dict[str, str]) -> uuid.UUID:
    """An organization's model priced now, and again (dearer output) from 2100 on."""
    created = await client.post(
        "/models",
        json={
            "name": f"Priced {uuid.uuid4().hex[:6]}",
            "provider": "openai-compatible",
            "provider_model": "fake-model",
            "endpoint": "https://llm.example.com/v1",
            "capabilities": ["chat"],
            "price": PRICE,
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    later = await client.post(
        f"/models/{created.json()['id']}/prices", json=LATER_PRICE, headers=headers
    )
    assert later.status_code == 201, later.text
    return uuid.UUID(created.json()["id"])


async def event(session: AsyncSession, request_id: str) -> UsageEvent:
    found = (
        await session.execute(select(UsageEvent).where(UsageEvent.request_id == request_id))
    ).scalar_one()
    return found


async def test_the_cost_is_the_price_in_force_when_the_call_began_rounded_up(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    organization, _ = await whoami(client, admin(fake_clerk))
    model_id = await priced_model(client, admin(fake_clerk))

    # 800 fresh input tokens, 200 cached, 500 output at the first price:
    # (800 * 150,000 + 200 * 75,000 + 500 * 600,000) / 1,000,000 = 435 micro-USD.
    now = await record(session, organization, model_id=model_id, tokens=(1_000, 200, 500))
    charged = await event(session, now)
    assert charged.cost_micro_usd == 435 and charged.price_id is not None

    # The same call in 2100 is charged at the price of then: 500 * 1,200,000 / 1e6 = 600 more.
    later = await record(
        session,
        organization,
        model_id=model_id,
        tokens=(1_000, 200, 500),
        occurred_at=datetime(2100, 6, 1, tzinfo=UTC),
    )
    assert (await event(session, later)).cost_micro_usd == 735
    assert (await event(session, later)).price_id != charged.price_id

    # A millionth of a dollar is the smallest charge: one token at 0.15 micro-USD costs 1.
    tiny = await record(session, organization, model_id=model_id, tokens=(1, 0, 0))
    assert (await event(session, tiny)).cost_micro_usd == 1


async def test_a_call_recorded_twice_counts_once(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    organization, _ = await whoami(client, admin(fake_clerk))
    request_id = await record(session, organization, tokens=(10, 0, 5))
    await record(session, organization, request_id=request_id, tokens=(10, 0, 5))
    rows = (
        await session.execute(select(UsageEvent).where(UsageEvent.request_id == request_id))
    ).all()
    assert len(rows) == 1


async def test_a_model_without_a_price_has_no_cost(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    organization, _ = await whoami(client, admin(fake_clerk))
    request_id = await record(session, organization, model_id=None, model_name="outside")
    unpriced = await event(session, request_id)
    assert (unpriced.cost_micro_usd, unpriced.price_id) == (None, None)


async def test_another_organizations_price_is_never_charged(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    """An event naming another organization's model finds no price: row-level security
    hides the other's prices from the recording transaction."""
    model_id = await priced_model(client, admin(fake_clerk))
    theirs, _ = await whoami(client, admin(fake_clerk, "org_B"))
    request_id = await record(session, theirs, model_id=model_id)
    assert (await event(session, request_id)).cost_micro_usd is None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE usage_events SET cost_micro_usd = 0",
        "DELETE FROM usage_events",
    ],
)
async def test_the_application_cannot_change_or_remove_an_event(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk, statement: str
) -> None:
    organization, _ = await whoami(client, admin(fake_clerk))
    await record(session, organization)
    with pytest.raises(Exception) as refused:
        async with session.begin_nested():
            await session.execute(text(statement))
    assert isinstance(refused.value.orig.__cause__, asyncpg.InsufficientPrivilegeError)  # type: ignore[attr-defined]
