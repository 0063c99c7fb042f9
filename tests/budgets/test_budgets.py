"""Budgets as admins manage them (`/budgets`), their windows (the organization's calendar
months, made when first needed, never inheriting a month's figures), and reservations of
crashed calls given back by the periodic job."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.budgets import repository, service, tasks
from app.budgets.errors import BudgetExceeded
from app.core.db import driver_connection, set_tenant
from app.usage.service import Attribution
from tests.clerk import FakeClerk
from tests.usage.ledger import admin, member, whoami


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: object
) -> httpx.Response:
    return await client.post("/budgets", json=fields, headers=headers)


async def test_admins_create_read_change_and_delete_budgets(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    headers = admin(fake_clerk)
    created = await create(client, headers, metric="cost", limit=10_000_000)
    assert created.status_code == 201, created.text
    budget = created.json()
    assert (budget["metric"], budget["limit"], budget["user_id"]) == ("cost", 10_000_000, None)
    assert budget["thresholds"] == [80]  # the default soft threshold
    window = budget["current_window"]
    assert (window["spent"], window["reserved"], window["remaining"]) == (0, 0, 10_000_000)
    now = datetime.now(UTC)
    starts_at = datetime.fromisoformat(window["starts_at"])
    assert starts_at == datetime(now.year, now.month, 1, tzinfo=UTC)
    assert datetime.fromisoformat(window["resets_at"]) > now

    changed = await client.patch(
        f"/budgets/{budget['id']}",
        json={"limit": 5_000_000, "thresholds": [90, 50, 90]},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["limit"], changed.json()["thresholds"]) == (5_000_000, [50, 90])
    listed = await client.get("/budgets", headers=headers)
    assert [item["id"] for item in listed.json()] == [budget["id"]]

    deleted = await client.delete(f"/budgets/{budget['id']}", headers=headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/budgets/{budget['id']}", headers=headers)
    assert gone.status_code == 404
    assert gone.json()["type"] == "/problems/budget-not-found"


async def test_one_budget_per_metric_for_the_organization_and_for_each_member(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    headers = admin(fake_clerk)
    _, member_id = await whoami(client, member(fake_clerk))
    assert (await create(client, headers, metric="tokens", limit=100)).status_code == 201
    again = await create(client, headers, metric="tokens", limit=200)
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/budget-exists"
    assert (await create(client, headers, metric="cost", limit=100)).status_code == 201
    own = await create(client, headers, metric="tokens", limit=50, user_id=str(member_id))
    assert own.status_code == 201, own.text
    assert own.json()["user_id"] == str(member_id)
    twice = await create(client, headers, metric="tokens", limit=50, user_id=str(member_id))
    assert twice.status_code == 409


async def test_what_a_budget_must_be(client: httpx.AsyncClient, fake_clerk: FakeClerk) -> None:
    headers = admin(fake_clerk)
    _, outsider = await whoami(client, admin(fake_clerk, "org_B"))
    for fields, where in (
        ({"metric": "cost", "limit": 0}, "limit"),
        ({"metric": "cost", "limit": 2**63}, "limit"),
        ({"metric": "money", "limit": 10}, "metric"),
        ({"metric": "cost", "limit": 10, "thresholds": [0]}, "thresholds"),
        ({"metric": "cost", "limit": 10, "thresholds": [101]}, "thresholds"),
        ({"metric": "cost", "limit": 10, "period": "week"}, "period"),
    ):
        refused = await create(client, headers, **fields)
        assert refused.status_code == 422, fields
        assert where in str(refused.json()["errors"]), fields
    # Someone of another organization is not a member here.
    stranger = await create(client, headers, metric="cost", limit=10, user_id=str(outsider))
    assert stranger.status_code == 422
    assert stranger.json()["type"] == "/problems/not-a-member"


async def test_members_cannot_manage_budgets_and_others_budgets_are_not_found(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    created = await create(client, admin(fake_clerk), metric="cost", limit=10)
    assert created.status_code == 201
    budget_id = created.json()["id"]
    assert (await client.get("/budgets", headers=member(fake_clerk))).status_code == 403
    assert (await create(client, member(fake_clerk), metric="tokens", limit=1)).status_code == 403
    other = admin(fake_clerk, "org_B")
    assert (await client.get(f"/budgets/{budget_id}", headers=other)).status_code == 404
    assert (await client.delete(f"/budgets/{budget_id}", headers=other)).status_code == 404
    assert (await client.get("/budgets", headers=other)).json() == []


async def tokens_budget(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, limit: int
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """(organization, admin, budget) of a fresh tokens budget of org_A."""
    headers = admin(fake_clerk)
    organization, user = await whoami(client, headers)
    created = await create(client, headers, metric="tokens", limit=limit)
    assert created.status_code == 201, created.text
    return organization, user, uuid.UUID(created.json()["id"])


async def test_windows_are_the_organizations_calendar_months_and_start_from_nothing(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    organization, _, budget_id = await tokens_budget(client, fake_clerk, 1000)
    await set_tenant(session, organization)
    connection = await driver_connection(session)
    # 31 January 23:30 in Tokyo is 14:30 UTC; 1 February 00:30 there is 15:30 UTC.
    january = datetime(2027, 1, 31, 14, 30, tzinfo=UTC)
    february = january + timedelta(hours=1)

    [first] = await repository.lock_windows(
        connection, organization, [budget_id], january, "Asia/Tokyo"
    )
    assert first["starts_at"] == datetime(2026, 12, 31, 15, 0, tzinfo=UTC)  # 1 January, Tokyo
    assert first["ends_at"] == datetime(2027, 1, 31, 15, 0, tzinfo=UTC)
    await repository.settle(connection, organization, [], [(first["id"], 900, [80])])

    [again] = await repository.lock_windows(
        connection, organization, [budget_id], january, "Asia/Tokyo"
    )
    assert (again["id"], again["spent"]) == (first["id"], 900)
    [second] = await repository.lock_windows(
        connection, organization, [budget_id], february, "Asia/Tokyo"
    )
    assert second["id"] != first["id"]
    assert (second["spent"], second["reserved"], list(second["notified"])) == (0, 0, [])
    assert second["starts_at"] == first["ends_at"]

    # A time zone changed mid-month opens no second window over the same days: the current
    # one runs to its end, and the next begins where it ended.
    mid_february = february + timedelta(days=10)
    [same] = await repository.lock_windows(
        connection, organization, [budget_id], mid_february, "America/Los_Angeles"
    )
    assert same["id"] == second["id"]
    march = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    [third] = await repository.lock_windows(
        connection, organization, [budget_id], march, "America/Los_Angeles"
    )
    assert third["starts_at"] == datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # midnight there
    rows = await connection.fetch(
        "SELECT starts_at, ends_at FROM budget_windows WHERE budget_id = $1 ORDER BY starts_at",
        budget_id,
    )
    assert all(a["ends_at"] <= b["starts_at"] for a, b in itertools.pairwise(rows))


async def reserve(
    session: AsyncSession,
    organization: uuid.UUID,
    user: uuid.UUID,
    tokens: tuple[int, int],
    expires_in_seconds: float = 600.0,
) -> service.Reservation:
    await set_tenant(session, organization, user)
    return await service.reserve(
        await driver_connection(session),
        Attribution(organization, user),
        f"chat:{uuid.uuid4()}",
        uuid.uuid4(),  # a tokens budget needs no price
        tokens[0],
        tokens[1],
        expires_in_seconds,
    )


async def window_figures(session: AsyncSession, budget_id: uuid.UUID) -> tuple[int, int]:
    row = (
        await session.execute(
            text("SELECT spent, reserved FROM budget_windows WHERE budget_id = :id"),
            {"id": budget_id},
        )
    ).one()
    return row.spent, row.reserved


async def test_a_crashed_calls_reservation_is_given_back_by_the_job(
    app: object, client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    organization, user, budget_id = await tokens_budget(client, fake_clerk, 1000)
    live = await reserve(session, organization, user, (100, 100))
    crashed = await reserve(session, organization, user, (100, 500), expires_in_seconds=-1)
    assert (live.max_output_tokens, crashed.max_output_tokens) == (100, 500)
    assert await window_figures(session, budget_id) == (0, 800)

    report = await tasks.release_all_expired(app.state.database)  # type: ignore[attr-defined]

    assert report["amount"] >= 600
    assert await window_figures(session, budget_id) == (0, 200)  # the live one stays


async def test_a_reservation_gives_back_the_expired_ones_it_finds_and_clamps_the_output(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    organization, user, budget_id = await tokens_budget(client, fake_clerk, 1000)
    await reserve(session, organization, user, (100, 800), expires_in_seconds=-1)
    # 900 expired: this one finds the whole limit, and may produce what its input leaves.
    reservation = await reserve(session, organization, user, (100, 5000))
    assert reservation.max_output_tokens == 900
    assert await window_figures(session, budget_id) == (0, 1000)
    with pytest.raises(BudgetExceeded) as refused:
        await reserve(session, organization, user, (1, 1))
    assert refused.value.extensions["reserved"] == 1000
