"""Ingestion: chunks stored per second by the production path, against a bare COPY of the same
rows in the same run (goal: at least half of COPY's rate), with the embedding rate measured
apart.

Starts a fresh embedded database, migrated, with one organization, one agent and two
knowledge sources (A for the production path, B for COPY). Builds CHUNKS chunks of real prose
(sentences of README.md and the test samples, laid out as a Markdown document with headings and
paragraphs, then parsed and chunked by `app.knowledge.parsing` and `app.knowledge.chunking`, as
ingestion does: ~150-200 tokens each, with production's metadata), and 384-d unit vectors drawn
around shared cluster centres (like a real corpus; embedding every chunk with the model would
take minutes and is measured apart). Then, ROUNDS times in alternating order, each from an
emptied table (TRUNCATE, then CHECKPOINT) so both write into indexes of the same size:

- store: `repository.replace_chunks` on a session of the application role, with `set_tenant`
  and `unit_of_work` (commit included), as `knowledge.service.ingest_source` calls it: row-level
  security, the foreign keys, the model's partial HNSW index, the GIN index of the generated
  tsvector and the btree indexes all apply;
- COPY: the same rows (same columns, same values) by `COPY embeddings FROM STDIN` in one
  transaction with its commit, as the owner role (psycopg, binary format, pgvector's binary
  vectors): the fastest way PostgreSQL has to load rows, paying the same indexes, triggers and
  constraints. The owner, because PostgreSQL refuses `COPY FROM` into a table whose row-level
  security applies to the role ("COPY FROM not supported with row-level security"): the
  application role could not use it at all, and the owner has BYPASSRLS;
- re-ingest: each path again, now replacing the source's N chunks by N new ones (same texts,
  new vectors) in one transaction (`replace_chunks`; `DELETE` then COPY for the baseline).

Both paths start from the same in-memory `ChunkRow`s and pay their own encoding in the timing;
the emptying between runs (TRUNCATE, CHECKPOINT) is the superuser's and is not timed.
Prints the medians in chunks/s, their spread and ratio (with --variants, also other ways of
writing `replace_chunks`, timed in the same rounds on the same rows), the time `replace_chunks`
spends formatting parameters in Python, then the embedding rate of the local model on 256
chunks in production's batches (after a warm-up call: loading the model is not counted) and
what an N-chunk source would take end to end. About 10 minutes on 2 cores (14 with --variants).

    .venv/bin/python bench/bench_ingest.py [--chunks 20000] [--rounds 3] [--variants]
"""

import argparse
import asyncio
import contextlib
import json
import random
import re
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from pgvector import Vector
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import migrations
from app.core.db import (
    create_engine,
    create_sessionmaker,
    driver_connection,
    set_tenant,
    unit_of_work,
)
from app.core.embedded import SUPERUSER, open_database
from app.core.settings import Settings
from app.files.media_types import MARKDOWN
from app.knowledge import chunking, parsing, repository
from app.knowledge.embedders import Embedders
from app.knowledge.repository import ChunkOwner, ChunkRow
from app.knowledge.service import EMBED_BATCH

MODEL = "all-MiniLM-L6-v2"
DIMENSIONS = 384
CENTRES = 500
NOISE = 0.35
EMBED_SAMPLE = 256
ROOT = Path(__file__).resolve().parent.parent
CORPUS = [
    ROOT / "README.md",
    ROOT / "tests/knowledge/samples/handbook.md",
    ROOT / "tests/knowledge/samples/notes.txt",
]
COLUMNS = (
    "organization_id, agent_id, knowledge_source_id, file_id, conversation_id, "
    "embedding_model, dimensions, chunk_index, content, embedding, metadata"
)
COPY_TYPES = ["uuid", "uuid", "uuid", "uuid", "uuid", "text", "int2", "int4", "text", "vector"]


@dataclass(frozen=True)
class Tenant:
    organization_id: uuid.UUID
    agent_id: uuid.UUID
    source_a: uuid.UUID
    source_b: uuid.UUID


def libpq(url: str, role: str | None = None) -> str:
    """psycopg's form of the asyncpg URL, as `role` if given (same socket, same database)."""
    url = url.replace("postgresql+asyncpg://", "postgresql://")
    return re.sub(r"^postgresql://[^@]*@", f"postgresql://{role}@", url) if role else url


# Data -------------------------------------------------------------------------------------


def sentences() -> list[str]:
    """Prose sentences of the corpus: no code blocks, tables or headings."""
    found: list[str] = []
    for path in CORPUS:
        text = re.sub(r"```.*?```", " ", path.read_text(), flags=re.DOTALL)
        lines = [line for line in text.splitlines() if not line.lstrip().startswith(("#", "|"))]
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(lines)):
            if len(sentence.split()) >= 5:
                found.append(sentence.strip())
    return found


def document(pool: list[str], words: int, rng: random.Random) -> str:
    """A Markdown document of about `words` words: chapters, sections, paragraphs."""
    parts: list[str] = []
    total = 0
    chapter = 0
    while total < words:
        chapter += 1
        parts.append(f"# Chapter {chapter}: {' '.join(rng.choice(pool).split()[:4])}")
        for section in range(rng.randint(2, 5)):
            parts.append(f"## {chapter}.{section + 1} {' '.join(rng.choice(pool).split()[:5])}")
            for _ in range(rng.randint(2, 8)):
                paragraph = " ".join(rng.sample(pool, rng.randint(2, 7)))
                parts.append(paragraph)
                total += len(paragraph.split())
    return "\n\n".join(parts)


def make_chunks(count: int) -> tuple[list[chunking.Chunk], float]:
    """`count` chunks and the seconds parsing and chunking took (production code)."""
    rng = random.Random(7)
    pool = sentences()
    chunks: list[chunking.Chunk] = []
    spent = 0.0
    words = count * 160
    while len(chunks) < count:
        data = document(pool, words, rng).encode()
        started = time.perf_counter()
        chunks = chunking.chunk(parsing.parse(data, MARKDOWN))
        spent = time.perf_counter() - started
        words *= 2
    return chunks[:count], spent * count / len(chunks)


def vectors(rng: np.random.Generator, centres: np.ndarray, count: int) -> list[list[float]]:
    """Unit vectors around the centres, as float32 values in Python floats (what
    `LocalModelEmbedder.embed` returns)."""
    picks = centres[rng.integers(0, len(centres), count)]
    drawn = picks + NOISE * rng.standard_normal((count, DIMENSIONS)).astype(np.float32)
    drawn /= np.linalg.norm(drawn, axis=1, keepdims=True)
    return [list(map(float, vector)) for vector in drawn]


def rows_of(chunks: list[chunking.Chunk], vectors: list[list[float]]) -> list[ChunkRow]:
    return [
        ChunkRow(
            index=chunk.index,
            content=chunk.content,
            vector=vector,
            metadata={
                "page": chunk.page,
                "heading": chunk.heading,
                "start": chunk.start,
                "end": chunk.end,
            },
        )
        for chunk, vector in zip(chunks, vectors, strict=True)
    ]


# Database ---------------------------------------------------------------------------------


def seed(owner_url: str) -> Tenant:
    tenant = Tenant(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    with psycopg.connect(libpq(owner_url)) as conn:
        conn.execute(
            "INSERT INTO organizations (id, clerk_id, name) VALUES (%s, 'org_bench', 'Bench')",
            (tenant.organization_id,),
        )
        conn.execute(
            "INSERT INTO agents (id, owner_organization_id, slug, name, embedding_model) "
            "VALUES (%s, %s, 'bench', 'Bench', %s)",
            (tenant.agent_id, tenant.organization_id, MODEL),
        )
        for source, name in ((tenant.source_a, "A"), (tenant.source_b, "B")):
            conn.execute(
                "INSERT INTO agent_knowledge_sources (id, organization_id, agent_id, kind, name)"
                " VALUES (%s, %s, %s, 'text', %s)",
                (source, tenant.organization_id, tenant.agent_id, name),
            )
    return tenant


def reset(superuser: psycopg.Connection) -> None:
    """An empty table and indexes, and no checkpoint due in the middle of the next run."""
    superuser.execute("TRUNCATE embeddings")
    superuser.execute("CHECKPOINT")


def copy_rows(
    conn: psycopg.Connection, tenant: Tenant, rows: list[ChunkRow], replace: bool
) -> float:
    """The baseline: one transaction of (DELETE and) binary COPY, committed; its seconds."""
    started = time.perf_counter()
    with conn.transaction(), conn.cursor() as cursor:
        if replace:
            cursor.execute(
                "DELETE FROM embeddings WHERE organization_id = %s AND knowledge_source_id = %s",
                (tenant.organization_id, tenant.source_b),
            )
        with cursor.copy(f"COPY embeddings ({COLUMNS}) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types([*COPY_TYPES, "jsonb"])
            fixed = (tenant.organization_id, tenant.agent_id, tenant.source_b, None, None, MODEL)
            for row in rows:
                copy.write_row(
                    (
                        *fixed,
                        len(row.vector),
                        row.index,
                        row.content,
                        Vector(row.vector),
                        Jsonb(row.metadata),
                    )
                )
    return time.perf_counter() - started


StoreFunction = Callable[[AsyncSession, ChunkOwner, str, list[ChunkRow]], Awaitable[None]]


async def store_rows(
    sessionmaker: async_sessionmaker[AsyncSession],
    owner: ChunkOwner,
    rows: list[ChunkRow],
    store: StoreFunction = repository.replace_chunks,
) -> float:
    """The production path (or a variant of `replace_chunks`), committed; its seconds."""
    started = time.perf_counter()
    async with sessionmaker() as session, unit_of_work(session):
        await set_tenant(session, owner.organization_id)
        await store(session, owner, MODEL, rows)
    return time.perf_counter() - started


# Variants of replace_chunks, for the investigation ----------------------------------------


def batched(rows_per_batch: int) -> StoreFunction:
    """`replace_chunks` as it is, with another batch size."""

    async def store(
        session: AsyncSession, owner: ChunkOwner, model: str, rows: list[ChunkRow]
    ) -> None:
        saved = repository.INSERT_BATCH_ROWS
        repository.INSERT_BATCH_ROWS = rows_per_batch
        try:
            await repository.replace_chunks(session, owner, model, rows)
        finally:
            repository.INSERT_BATCH_ROWS = saved

    return store


def float_array(rows_per_batch: int) -> StoreFunction:
    """The vectors as one flat `real[]` parameter (asyncpg's binary array encoding, no float
    formatting or parsing), each row's vector a slice of it; the rest as `replace_chunks`."""

    async def store(
        session: AsyncSession, owner: ChunkOwner, model: str, rows: list[ChunkRow]
    ) -> None:
        connection = await driver_connection(session)
        await connection.execute(
            "DELETE FROM embeddings WHERE organization_id = $1 "
            "AND knowledge_source_id IS NOT DISTINCT FROM $2 AND file_id IS NOT DISTINCT FROM $3",
            owner.organization_id,
            owner.knowledge_source_id,
            owner.file_id,
        )
        for start in range(0, len(rows), rows_per_batch):
            batch = rows[start : start + rows_per_batch]
            width = len(batch[0].vector)
            flat = np.array([row.vector for row in batch], dtype=np.float32).ravel().tolist()
            await connection.execute(
                """
                INSERT INTO embeddings (organization_id, agent_id, knowledge_source_id, file_id,
                    conversation_id, embedding_model, dimensions, chunk_index, content,
                    embedding, metadata)
                SELECT $1, $2, $3, $4, $5, $6, $7, chunk.index, chunk.content,
                    ($12::real[])[chunk.n * $13 + 1 : (chunk.n + 1) * $13]::vector,
                    chunk.metadata::jsonb
                FROM unnest($8::int[], $9::text[], $10::text[], $11::int[])
                    AS chunk(index, content, metadata, n)
                """,
                owner.organization_id,
                owner.agent_id,
                owner.knowledge_source_id,
                owner.file_id,
                owner.conversation_id,
                model,
                width,
                [row.index for row in batch],
                [row.content for row in batch],
                [json.dumps(row.metadata) for row in batch],
                list(range(len(batch))),
                flat,
                width,
            )

    return store


# Measurements -----------------------------------------------------------------------------


async def measure(
    urls_app: str,
    urls_owner: str,
    settings: Settings,
    rows: list[ChunkRow],
    rounds: int,
    variants: dict[str, StoreFunction],
) -> dict[str, list[float]]:
    """Chunks/s of each path, `rounds` times, each round in another order."""
    tenant = seed(urls_owner)
    renewed = [  # the same texts, new vectors: a re-ingest after an edit or a new model
        ChunkRow(row.index, row.content, vector, row.metadata)
        for row, vector in zip(
            rows, vectors(np.random.default_rng(11), centres(), len(rows)), strict=True
        )
    ]
    owner_a = ChunkOwner(
        tenant.organization_id, tenant.agent_id, knowledge_source_id=tenant.source_a
    )
    engine = create_engine(urls_app, settings)
    sessionmaker = create_sessionmaker(engine)
    rates: dict[str, list[float]] = {}

    def record(label: str, seconds: float) -> None:
        rates.setdefault(label, []).append(len(rows) / seconds)

    try:
        with (
            psycopg.connect(libpq(urls_owner)) as owner,
            psycopg.connect(libpq(urls_owner, SUPERUSER), autocommit=True) as superuser,
        ):
            register_vector(owner)

            async def by_store() -> None:
                reset(superuser)
                record("store", await store_rows(sessionmaker, owner_a, rows))
                record("store, re-ingest", await store_rows(sessionmaker, owner_a, renewed))

            async def by_copy() -> None:
                reset(superuser)
                record("COPY", await asyncio.to_thread(copy_rows, owner, tenant, rows, False))
                record(
                    "COPY, re-ingest",
                    await asyncio.to_thread(copy_rows, owner, tenant, renewed, True),
                )

            def by_variant(label: str, variant: StoreFunction) -> Callable[[], Awaitable[None]]:
                async def step() -> None:
                    reset(superuser)
                    record(label, await store_rows(sessionmaker, owner_a, rows, variant))

                return step

            steps = [by_store, by_copy] + [by_variant(*item) for item in variants.items()]
            # Warm-up: the pooled connection, psycopg's type lookups, the server's caches.
            await store_rows(sessionmaker, owner_a, rows[:500])
            for variant in variants.values():
                await store_rows(sessionmaker, owner_a, rows[:500], variant)
            await asyncio.to_thread(copy_rows, owner, tenant, rows[:500], False)
            for number in range(rounds):
                for step in steps[number % len(steps) :] + steps[: number % len(steps)]:
                    await step()
            reset(superuser)
    finally:
        await engine.dispose()
    return rates


VARIANTS: dict[str, StoreFunction] = {
    "store, batches of 2000": batched(2000),
    "store, real[] vectors, 500": float_array(500),
    "store, real[] vectors, 2000": float_array(2000),
}


def centres() -> np.ndarray:
    return np.random.default_rng(5).standard_normal((CENTRES, DIMENSIONS)).astype(np.float32)


async def embedding_rate(settings: Settings, texts: list[str]) -> tuple[float, str]:
    """Texts per second of the local model, in production's batches, after a warm-up call on
    a full batch (a first call of one text leaves the first full batch twice as slow)."""
    embedder = Embedders(settings).for_model(MODEL)
    await embedder.embed(texts[:EMBED_BATCH])
    started = time.perf_counter()
    for start in range(0, len(texts), EMBED_BATCH):
        await embedder.embed(texts[start : start + EMBED_BATCH])
    return len(texts) / (time.perf_counter() - started), embedder.model


def encoding_seconds(rows: list[ChunkRow]) -> float:
    """What `replace_chunks` spends in Python formatting the rows' parameters (vector
    literals, JSON), part of the store's time."""
    started = time.perf_counter()
    for row in rows:
        repository._vector_literal(row.vector)
        json.dumps(row.metadata)
    return time.perf_counter() - started


async def main(count: int, rounds: int, with_variants: bool) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="ajc-bench-"))
    settings = Settings.model_validate({"data_dir": data_dir})
    chunks, chunking_seconds = make_chunks(count)
    rows = rows_of(chunks, vectors(np.random.default_rng(7), centres(), count))
    tokens = statistics.mean(chunking.count_tokens(chunk.content) for chunk in chunks)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, data_dir, ignore_errors=True)
        urls = cleanup.enter_context(open_database(settings))
        await asyncio.to_thread(migrations.upgrade, urls.owner, settings.database_app_role)
        variants = VARIANTS if with_variants else {}
        rates = await measure(urls.app, urls.owner, settings, rows, rounds, variants)
    sample = [chunk.content for chunk in chunks[:: max(1, count // EMBED_SAMPLE)]][:EMBED_SAMPLE]
    embed_rate, model = await embedding_rate(settings, sample)
    encoding = encoding_seconds(rows)

    print(f"{count} chunks of {tokens:.0f} tokens on average, {DIMENSIONS}-d; median of {rounds}")
    print(f"{'path':28} {'chunks/s':>9} {'min-max':>11} {'vs COPY':>8}")
    median = {label: statistics.median(values) for label, values in rates.items()}
    for label, rate in median.items():
        baseline = median["COPY, re-ingest" if "re-ingest" in label else "COPY"]
        spread = f"{min(rates[label]):.0f}-{max(rates[label]):.0f}"
        print(f"{label:28} {rate:9.0f} {spread:>11} {rate / baseline:8.2f}")
    ratio = median["store"] / median["COPY"]
    print(f"goal: store >= 0.5 x COPY: {ratio:.2f}, {'met' if ratio >= 0.5 else 'NOT met'}")
    store_seconds = count / median["store"]
    print(
        f"store's Python encoding of the rows (vector literals, JSON): {encoding:.1f} s "
        f"of its {store_seconds:.1f} s"
    )
    print(f"embedding: {embed_rate:.1f} texts/s ({model}, {len(sample)} chunks)")
    embed_seconds = count / embed_rate
    print(
        f"a {count}-chunk source end to end: "
        f"{chunking_seconds + embed_seconds + store_seconds:.0f} s (parse and chunk "
        f"{chunking_seconds:.1f} s, embed {embed_seconds:.0f} s, store {store_seconds:.1f} s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--variants", action="store_true", help="also time other ways to write replace_chunks"
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.chunks, arguments.rounds, arguments.variants))
