"""What admins and members read of the ledger: usage and cost per day, week or month of the
organization's calendar and per agent, user, model and purpose; the CSV export; a member's
own figures; and the organization's time zone."""

import csv
import io
import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.usage.models import UsagePurpose
from tests.clerk import FakeClerk
from tests.usage.ledger import admin, member, record, whoami

# Around the turn of March 2026 in New York (UTC-5 then):
SUNDAY_NIGHT = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # Sunday 1 March, 22:00 in New York
MONDAY_NIGHT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # Monday 2 March, 01:00
MARCH_LAST = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)  # Tuesday 31 March, 22:00 (UTC-4)
RANGE = {"start": "2026-02-20", "end": "2026-04-05"}


async def set_time_zone(client: httpx.AsyncClient, headers: dict[str, str], zone: str) -> None:
    changed = await client.patch(
        "/organizations/current", json={"time_zone": zone}, headers=headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["time_zone"] == zone


def periods(report: dict[str, object]) -> list[tuple[str, int]]:
    rows = report["rows"]
    assert isinstance(rows, list)
    return [(row["period_start"], row["calls"]) for row in rows]


async def test_days_weeks_and_months_are_the_organizations_own(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    organization, _ = await whoami(client, admin(fake_clerk))
    for when in (SUNDAY_NIGHT, MONDAY_NIGHT, MARCH_LAST):
        await record(session, organization, occurred_at=when)

    async def report(period: str) -> list[tuple[str, int]]:
        response = await client.get(
            "/usage",
            params={**RANGE, "period": period, "group_by": "purpose"},
            headers=admin(fake_clerk),
        )
        assert response.status_code == 200, response.text
        return periods(response.json())

    # In UTC (the default) the first two calls fall on Monday 2 March, the last in April.
    assert await report("day") == [("2026-04-01", 1), ("2026-03-02", 2)]
    assert await report("month") == [("2026-04-01", 1), ("2026-03-01", 2)]

    await set_time_zone(client, admin(fake_clerk), "America/New_York")
    assert await report("day") == [("2026-03-31", 1), ("2026-03-02", 1), ("2026-03-01", 1)]
    # ISO weeks begin on Monday: Sunday night is the week of 23 February.
    assert await report("week") == [("2026-03-30", 1), ("2026-03-02", 1), ("2026-02-23", 1)]
    assert await report("month") == [("2026-03-01", 3)]
    # The range is the organization's days too: 1 March alone is Sunday night's call.
    one_day = await client.get(
        "/usage", params={"start": "2026-03-01", "end": "2026-03-01"}, headers=admin(fake_clerk)
    )
    assert one_day.json()["totals"]["calls"] == 1
    assert one_day.json()["time_zone"] == "America/New_York"


async def test_rows_by_agent_user_model_and_purpose_with_totals_and_cost(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    organization, me = await whoami(client, admin(fake_clerk))
    theirs, _ = await whoami(client, admin(fake_clerk, "org_B"))
    agent = uuid.uuid4()
    await record(session, organization, user_id=me, agent_id=agent, tokens=(1_000, 100, 200))
    await record(session, organization, user_id=me, agent_id=agent, tokens=(500, 0, 50))
    await record(
        session,
        organization,
        user_id=me,
        purpose=UsagePurpose.embedding_search,
        model_name="feature-hashing-384",
        tokens=(8, 0, 0),
        estimated=True,
    )
    await record(session, theirs, tokens=(9_999, 0, 9_999))  # another organization's

    response = await client.get("/usage", headers=admin(fake_clerk))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["group_by"] == ["agent", "user", "model", "purpose"]
    rows = {(row["agent_id"], row["model_name"], row["purpose"]): row for row in report["rows"]}
    chat = rows[(str(agent), "fake-model", "chat")]
    assert (chat["calls"], chat["input_tokens"], chat["cached_input_tokens"]) == (2, 1_500, 100)
    assert (chat["output_tokens"], chat["user_id"], chat["unpriced_calls"]) == (250, str(me), 2)
    search = rows[(None, "feature-hashing-384", "embedding_search")]
    assert (search["calls"], search["estimated_calls"]) == (1, 1)
    assert report["totals"]["calls"] == 3
    assert report["totals"]["input_tokens"] == 1_508
    assert report["totals"]["cost_micro_usd"] == 0 and report["totals"]["unpriced_calls"] == 3

    by_purpose = await client.get(
        "/usage", params={"group_by": "purpose", "period": "month"}, headers=admin(fake_clerk)
    )
    assert {(row["purpose"], row["calls"]) for row in by_purpose.json()["rows"]} == {
        ("chat", 2),
        ("embedding_search", 1),
    }
    assert all(row["agent_id"] is None for row in by_purpose.json()["rows"])


async def test_members_read_their_own_usage_only(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    refused = await client.get("/usage", headers=member(fake_clerk))
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await client.get("/usage/export", headers=member(fake_clerk))).status_code == 403

    organization, mine = await whoami(client, member(fake_clerk))
    _, colleague = await whoami(client, member(fake_clerk, user="user_colleague"))
    await record(session, organization, user_id=mine, tokens=(10, 0, 1))
    await record(session, organization, user_id=colleague, tokens=(20, 0, 2))

    own = await client.get("/me/usage", headers=member(fake_clerk))
    assert own.status_code == 200, own.text
    assert own.json()["group_by"] == ["agent", "model", "purpose"]
    assert (own.json()["totals"]["calls"], own.json()["totals"]["input_tokens"]) == (1, 10)


async def test_the_export_streams_every_event_of_the_range_as_csv(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    organization, me = await whoami(client, admin(fake_clerk))
    theirs, _ = await whoami(client, admin(fake_clerk, "org_B"))
    first = await record(session, organization, user_id=me, occurred_at=SUNDAY_NIGHT)
    second = await record(session, organization, occurred_at=MONDAY_NIGHT, estimated=True)
    await record(session, organization, occurred_at=datetime(2025, 1, 1, tzinfo=UTC))
    await record(session, theirs, occurred_at=SUNDAY_NIGHT)

    response = await client.get("/usage/export", params=RANGE, headers=admin(fake_clerk))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "usage-2026-02-20-2026-04-05.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["request_id"] for row in rows] == [first, second]
    assert rows[0]["user_id"] == str(me) and rows[1]["user_id"] == ""
    assert (rows[0]["tokens_estimated"], rows[1]["tokens_estimated"]) == ("false", "true")
    assert rows[0]["occurred_at"] == SUNDAY_NIGHT.isoformat()
    assert rows[0]["cost_micro_usd"] == ""  # no price


async def test_a_range_must_be_in_order_and_at_most_two_years(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    for params in (
        {"start": "2026-02-01", "end": "2026-01-01"},
        {"start": "2023-01-01", "end": "2026-01-01"},
        {"group_by": "country"},
        {"period": "fortnight"},
    ):
        response = await client.get("/usage", params=params, headers=admin(fake_clerk))
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"


async def test_admins_set_the_organizations_time_zone(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    current = await client.get("/organizations/current", headers=member(fake_clerk))
    assert current.status_code == 200, current.text
    assert current.json()["time_zone"] == "UTC"

    by_member = await client.patch(
        "/organizations/current", json={"time_zone": "Europe/Paris"}, headers=member(fake_clerk)
    )
    assert by_member.status_code == 403
    unknown = await client.patch(
        "/organizations/current", json={"time_zone": "Mars/Olympus"}, headers=admin(fake_clerk)
    )
    assert unknown.status_code == 422 and "IANA" in unknown.text
    for refused in ({"time_zone": None}, {"name": "Renamed"}):
        response = await client.patch(
            "/organizations/current", json=refused, headers=admin(fake_clerk)
        )
        assert response.status_code == 422, refused

    await set_time_zone(client, admin(fake_clerk), "Europe/Paris")
    current = await client.get("/organizations/current", headers=member(fake_clerk))
    assert current.json()["time_zone"] == "Europe/Paris"
    theirs = await client.get("/organizations/current", headers=admin(fake_clerk, "org_B"))
    assert theirs.json()["time_zone"] == "UTC"
