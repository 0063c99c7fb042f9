"""Retrieval: tenant-filtered hybrid search. An organization never sees another's chunks,
even with the same text, and a tenant that owns a small share of the vectors still gets its
full top-k (pgvector's iterative index scan)."""

import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import set_tenant
from app.knowledge import repository
from app.knowledge.embedders import FeatureHashingEmbedder
from app.knowledge.repository import ChunkOwner, ChunkRow
from tests.clerk import FakeClerk

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]


def admin(fake_clerk: FakeClerk, org: str) -> dict[str, str]:
    return fake_clerk.headers(f"user_admin_{org}", org, "admin")


async def agent_with_source(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, str]:
    agent = await client.post(
        "/agents",
        json={
            "slug": f"k-{uuid.uuid4().hex[:8]}",
            "name": "Knows",
            "embedding_model": "feature-hashing-384",
        },
        headers=headers,
    )
    assert agent.status_code == 201, agent.text
    agent_id = agent.json()["id"]
    source = await client.post(
        f"/agents/{agent_id}/knowledge-sources",
        json={"kind": "text", "name": "Seed", "text": "seed"},
        headers=headers,
    )
    assert source.status_code == 201, source.text
    return agent_id, source.json()["id"]


async def store(
    session: AsyncSession,
    organization_id: uuid.UUID,
    agent_id: str,
    source_id: str,
    texts: list[str],
) -> None:
    """Chunks as ingestion stores them, written in the organization's own tenant."""
    await set_tenant(session, organization_id)
    vectors = (await FeatureHashingEmbedder().embed(texts)).vectors
    await repository.replace_chunks(
        session,
        ChunkOwner(organization_id, uuid.UUID(agent_id), knowledge_source_id=uuid.UUID(source_id)),
        "feature-hashing-384",
        [
            ChunkRow(index, text, vector, {"page": None, "heading": None})
            for index, (text, vector) in enumerate(zip(texts, vectors, strict=True))
        ],
    )


async def organization_id(client: httpx.AsyncClient, headers: dict[str, str]) -> uuid.UUID:
    me = await client.get("/me", headers=headers)
    return uuid.UUID(me.json()["organization"]["id"])


async def test_an_organization_never_sees_anothers_chunks_even_with_the_same_text(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    a, b = admin(fake_clerk, "org_A"), admin(fake_clerk, "org_B")
    a_agent, a_source = await agent_with_source(client, a)
    b_agent, b_source = await agent_with_source(client, b)
    text = "Parental leave is sixteen weeks at full pay."
    await store(session, await organization_id(client, a), a_agent, a_source, [text])
    await store(session, await organization_id(client, b), b_agent, b_source, [text, text + "!"])

    found = await client.post(
        f"/agents/{a_agent}/search", json={"query": "parental leave"}, headers=a
    )

    assert found.status_code == 200, found.text
    hits = found.json()["hits"]
    assert [hit["citation"]["source_id"] for hit in hits] == [a_source]
    assert hits[0]["content"] == text
    assert hits[0]["citation"]["source_name"] == "Seed"
    refused = await client.post(f"/agents/{b_agent}/search", json={"query": "leave"}, headers=a)
    assert refused.status_code == 404


async def test_a_tenant_with_one_percent_of_the_vectors_gets_its_full_top_k(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    big, small = admin(fake_clerk, "org_big"), admin(fake_clerk, "org_small")
    big_agent, big_source = await agent_with_source(client, big)
    small_agent, small_source = await agent_with_source(client, small)

    def texts(count: int, offset: int) -> list[str]:
        return [
            " ".join(WORDS[(i * 7 + j + offset) % len(WORDS)] for j in range(6)) + f" n{i}"
            for i in range(count)
        ]

    await store(session, await organization_id(client, big), big_agent, big_source, texts(3000, 0))
    await store(
        session, await organization_id(client, small), small_agent, small_source, texts(30, 3)
    )

    found = await client.post(
        f"/agents/{small_agent}/search",
        json={"query": "alpha bravo charlie", "top_k": 10},
        headers=small,
    )

    hits = found.json()["hits"]
    assert len(hits) == 10
    assert {hit["citation"]["source_id"] for hit in hits} == {small_source}
    # All ten found by meaning too: the vector search filled its list from the small tenant.
    assert all(hit["similarity"] is not None for hit in hits)


async def test_the_word_search_function_sees_the_calling_tenant_only(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    """It runs as the schema's owner (past row-level security, for its index): its own
    tenant filter is all that stands between organizations."""
    a, b = admin(fake_clerk, "org_A"), admin(fake_clerk, "org_B")
    a_agent, a_source = await agent_with_source(client, a)
    b_org = await organization_id(client, b)
    await store(session, await organization_id(client, a), a_agent, a_source, ["holiday rules"])

    async def matches(tenant: uuid.UUID | None) -> int:
        await set_tenant(session, tenant)
        found = await session.execute(
            text(
                "SELECT count(*) FROM knowledge_word_matches(:agent, NULL, "
                "'feature-hashing-384', to_tsquery('english', 'holiday'), 10)"
            ),
            {"agent": uuid.UUID(a_agent)},
        )
        return int(found.scalar_one())

    assert await matches(await organization_id(client, a)) == 1
    assert await matches(b_org) == 0
    assert await matches(None) == 0


async def test_a_query_without_words_finds_by_meaning_alone(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    """Found by fuzzing: a query of only punctuation or emoji built an invalid tsquery (500)."""
    a = admin(fake_clerk, "org_A")
    agent, source = await agent_with_source(client, a)
    await store(session, await organization_id(client, a), agent, source, ["Holidays: 25 days."])
    for query in ["?!", "\U00065740", "''"]:
        found = await client.post(f"/agents/{agent}/search", json={"query": query}, headers=a)
        assert found.status_code == 200, (query, found.text)
