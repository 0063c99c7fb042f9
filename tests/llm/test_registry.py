"""The model registry: what members and admins see and may do, keys written and never read
back, prices in versions, and a model's test request."""

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.secrets.models import Secret
from app.usage.models import UsageEvent
from tests import fake_openai
from tests.clerk import FakeClerk
from tests.conftest import DatabaseUnderTest

API_KEY = "sk-test-secret-value-1234"


@pytest.fixture
def settings(test_database: DatabaseUnderTest, tmp_path: Path) -> Settings:
    # The fake provider listens on loopback, which the egress guard refuses by default.
    return test_database.settings(workspaces_dir=tmp_path, egress_allow_private_addresses=True)


@pytest.fixture
async def provider() -> AsyncIterator[str]:
    """tests/fake_openai.py on a port of its own: the base URL of an OpenAI-compatible API."""
    port = fake_openai.free_port()
    server, task = await fake_openai.serve(fake_openai.app, port)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    await task


@pytest.fixture(scope="module")
def platform_model(test_database: DatabaseUnderTest) -> Iterator[uuid.UUID]:
    """A platform model (no owner), committed by the owner role, removed afterwards."""
    url = test_database.owner_url.replace("postgresql+asyncpg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO models (name, provider, provider_model, capabilities) "
            "VALUES (%s, 'openai', 'gpt-platform', '[\"chat\"]') RETURNING id",
            (f"platform-{uuid.uuid4().hex[:8]}",),
        ).fetchone()
        assert row is not None
        yield row[0]
        conn.execute("DELETE FROM models WHERE id = %s", (row[0],))


def admin(fake_clerk: FakeClerk, org: str = "org_A") -> dict[str, str]:
    return fake_clerk.headers(f"user_admin_{org}", org, "admin")


def member(fake_clerk: FakeClerk, org: str = "org_A") -> dict[str, str]:
    return fake_clerk.headers(f"user_member_{org}", org, "member")


def compatible(endpoint: str, **fields: object) -> dict[str, object]:
    return {
        "name": "Our vLLM",
        "provider": "openai-compatible",
        "provider_model": "fake-model",
        "endpoint": endpoint,
        "api_key": API_KEY,
        "context_window": 32_000,
        "capabilities": ["chat", "tools"],
        **fields,
    }


async def test_an_admin_registers_a_model_whose_key_is_never_shown(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, session: AsyncSession
) -> None:
    created = await client.post(
        "/models", json=compatible("https://llm.example.com/v1/"), headers=admin(fake_clerk)
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert API_KEY not in created.text
    assert body["has_api_key"] is True and body["api_key_hint"] == "1234"
    assert body["endpoint"] == "https://llm.example.com/v1"  # a base URL, no trailing slash
    assert body["owner_organization_id"] is not None and body["prices"] == []

    read = await client.get(f"/models/{body['id']}", headers=member(fake_clerk))
    assert read.status_code == 200 and API_KEY not in read.text
    stored = (await session.execute(select(Secret))).scalars().all()
    assert [secret.purpose for secret in stored] == [f"model:{body['id']}:api_key"]
    assert API_KEY.encode() not in stored[0].ciphertext


async def test_members_list_the_platforms_models_and_their_own_only(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, platform_model: uuid.UUID
) -> None:
    ours = await client.post(
        "/models", json=compatible("https://llm.example.com/v1"), headers=admin(fake_clerk)
    )
    theirs = await client.post(
        "/models",
        json=compatible("https://other.example.com/v1"),
        headers=admin(fake_clerk, "org_B"),
    )
    listed = await client.get("/models", headers=member(fake_clerk))
    ids = [model["id"] for model in listed.json()]
    assert str(platform_model) in ids and ours.json()["id"] in ids
    assert theirs.json()["id"] not in ids
    assert ids.index(str(platform_model)) < ids.index(ours.json()["id"])  # the platform's first

    other = f"/models/{theirs.json()['id']}"
    for response in (
        await client.get(other, headers=admin(fake_clerk)),
        await client.patch(other, json={"name": "Mine"}, headers=admin(fake_clerk)),
        await client.delete(other, headers=admin(fake_clerk)),
        await client.post(f"{other}/test", headers=admin(fake_clerk)),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


async def test_the_platforms_models_are_read_only_and_members_cannot_write(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, platform_model: uuid.UUID
) -> None:
    path = f"/models/{platform_model}"
    patched = await client.patch(path, json={"name": "Mine"}, headers=admin(fake_clerk))
    assert patched.status_code == 403
    assert patched.json()["type"].endswith("platform-model-read-only")
    assert (await client.delete(path, headers=admin(fake_clerk))).status_code == 403
    created = await client.post(
        "/models", json=compatible("https://llm.example.com/v1"), headers=member(fake_clerk)
    )
    assert created.status_code == 403


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"endpoint": None}, "needs `endpoint`"),
        ({"provider": "azure-openai", "azure_api_version": "2024-10-21"}, "azure_deployment"),
        ({"capabilities": ["embeddings"]}, "embedding_dimensions"),
        ({"embedding_dimensions": 768}, "embedding_dimensions"),
        ({"provider": "local"}, "`local` models are the platform's own"),
        ({"endpoint": "ftp://llm.example.com"}, "endpoint"),
    ],
)
async def test_an_incomplete_model_is_refused_with_what_it_lacks(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, fields: dict[str, object], named: str
) -> None:
    body = {**compatible("https://llm.example.com/v1"), **fields}
    refused = await client.post("/models", json=body, headers=admin(fake_clerk))
    assert refused.status_code == 422
    assert named in refused.text
    assert API_KEY not in refused.text  # not echoed back with the input


async def test_a_change_that_leaves_a_model_incomplete_is_refused(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    created = await client.post(
        "/models", json=compatible("https://llm.example.com/v1"), headers=admin(fake_clerk)
    )
    path = f"/models/{created.json()['id']}"
    refused = await client.patch(path, json={"endpoint": None}, headers=admin(fake_clerk))
    assert refused.status_code == 422 and "needs `endpoint`" in refused.json()["detail"]
    renamed = await client.patch(path, json={"name": "Renamed"}, headers=admin(fake_clerk))
    assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed"


async def test_names_are_unique_in_an_organization(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    body = compatible("https://llm.example.com/v1")
    assert (await client.post("/models", json=body, headers=admin(fake_clerk))).status_code == 201
    again = await client.post("/models", json=body, headers=admin(fake_clerk))
    assert again.status_code == 409
    elsewhere = await client.post("/models", json=body, headers=admin(fake_clerk, "org_B"))
    assert elsewhere.status_code == 201
    other = await client.post("/models", json={**body, "name": "Second"}, headers=admin(fake_clerk))
    renamed = await client.patch(
        f"/models/{other.json()['id']}", json={"name": body["name"]}, headers=admin(fake_clerk)
    )
    assert renamed.status_code == 409


async def test_prices_are_versions_that_start_now_or_later(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    price = {"input_micro_usd": 150_000, "output_micro_usd": 600_000}
    created = await client.post(
        "/models",
        json=compatible("https://llm.example.com/v1", price=price),
        headers=admin(fake_clerk),
    )
    first = created.json()["prices"]
    assert len(first) == 1 and first[0]["cached_input_micro_usd"] == 150_000
    path = f"/models/{created.json()['id']}/prices"
    later = {**price, "output_micro_usd": 500_000, "effective_from": "2100-01-01T00:00:00Z"}
    added = await client.post(path, json=later, headers=admin(fake_clerk))
    assert added.status_code == 201
    assert [p["output_micro_usd"] for p in added.json()["prices"]] == [500_000, 600_000]

    past = {**price, "effective_from": "2020-01-01T00:00:00Z"}
    refused = await client.post(path, json=past, headers=admin(fake_clerk))
    assert refused.status_code == 422 and "keeps the price it had" in refused.json()["detail"]
    negative = await client.post(
        path, json={**price, "input_micro_usd": -1}, headers=admin(fake_clerk)
    )
    assert negative.status_code == 422


async def test_a_key_is_replaced_or_removed_and_the_old_secret_goes(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, session: AsyncSession
) -> None:
    created = await client.post(
        "/models", json=compatible("https://llm.example.com/v1"), headers=admin(fake_clerk)
    )
    path = f"/models/{created.json()['id']}"
    replaced = await client.patch(
        path, json={"api_key": "sk-new-secret-value-9876"}, headers=admin(fake_clerk)
    )
    assert replaced.json()["api_key_hint"] == "9876"
    assert len((await session.execute(select(Secret))).scalars().all()) == 1
    removed = await client.patch(path, json={"api_key": None}, headers=admin(fake_clerk))
    assert removed.json()["has_api_key"] is False and removed.json()["api_key_hint"] is None
    assert (await session.execute(select(Secret))).scalars().all() == []


async def test_deleting_a_model_deletes_its_key(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, session: AsyncSession
) -> None:
    created = await client.post(
        "/models", json=compatible("https://llm.example.com/v1"), headers=admin(fake_clerk)
    )
    path = f"/models/{created.json()['id']}"
    assert (await client.delete(path, headers=admin(fake_clerk))).status_code == 204
    assert (await client.get(path, headers=admin(fake_clerk))).status_code == 404
    assert (await session.execute(select(Secret))).scalars().all() == []


async def test_a_models_test_reports_latency_or_the_providers_own_error(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, provider: str, session: AsyncSession
) -> None:
    good = await client.post("/models", json=compatible(provider), headers=admin(fake_clerk))
    tested = await client.post(f"/models/{good.json()['id']}/test", headers=admin(fake_clerk))
    assert tested.status_code == 200
    assert tested.json()["ok"] is True and tested.json()["status_code"] == 200
    assert tested.json()["latency_ms"] > 0
    sent = fake_openai.requests_seen[-1]
    assert sent["model"] == "fake-model" and sent["max_tokens"] == 16

    wrong_key = "sk-refused-by-the-provider-5555"
    bad = await client.post(
        "/models",
        json=compatible(provider, name="Wrong key", api_key=wrong_key),
        headers=admin(fake_clerk),
    )
    failed = await client.post(f"/models/{bad.json()['id']}/test", headers=admin(fake_clerk))
    result = failed.json()
    assert (result["ok"], result["status_code"]) == (False, 401)
    assert result["error"].startswith("Incorrect API key provided: [the key].")
    assert wrong_key not in failed.text

    # The answered test is a model call of the ledger; the refused one consumed nothing.
    tests = (
        (await session.execute(select(UsageEvent).where(UsageEvent.purpose == "model_test")))
        .scalars()
        .all()
    )
    assert [str(event.model_id) for event in tests] == [good.json()["id"]]
    assert tests[0].input_tokens > 0 and tests[0].user_id is not None


async def test_a_model_on_a_private_address_is_refused_by_the_egress_guard(
    test_database: DatabaseUnderTest,
    tmp_path: Path,
    fake_clerk: FakeClerk,
    provider: str,
    session: AsyncSession,
) -> None:
    from tests.conftest import client_for, running_app

    guarded = test_database.settings(workspaces_dir=tmp_path)
    async with running_app(guarded, session, fake_clerk.transport) as app, client_for(app) as c:
        created = await c.post("/models", json=compatible(provider), headers=admin(fake_clerk))
        tested = await c.post(f"/models/{created.json()['id']}/test", headers=admin(fake_clerk))
    assert tested.json()["ok"] is False and tested.json()["status_code"] is None
    assert "refused" in tested.json()["error"]


async def test_a_key_never_reaches_the_logs(
    client: httpx.AsyncClient,
    fake_clerk: FakeClerk,
    provider: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await client.post("/models", json=compatible(provider), headers=admin(fake_clerk))
    path = f"/models/{created.json()['id']}"
    await client.post(f"{path}/test", headers=admin(fake_clerk))
    await client.patch(
        path, json={"api_key": "sk-refused-second-key-7777"}, headers=admin(fake_clerk)
    )
    await client.post(f"{path}/test", headers=admin(fake_clerk))
    await client.delete(path, headers=admin(fake_clerk))
    assert caplog.records  # the cycle was logged
    for key in (API_KEY, "sk-refused-second-key-7777"):
        assert key not in caplog.text
