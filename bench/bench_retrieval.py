"""Retrieval at scale: top-10 search filtered by organization and agent over 200,000 chunks of
384 dimensions, for a big tenant (half the rows) and a small one (1%), the rest spread over 98
others. Prints recall@10 against exact search on the same rows (a sequential scan with the
same filter) and p50/p99 latency of the production search (`app.knowledge.repository.search`:
application role, row-level security, the tenant set per query, iterative HNSW scan).

    .venv/bin/python bench/bench_retrieval.py [--rows 200000] [--queries 100]

Data: vectors drawn around 2,000 shared cluster centres (tenants share one semantic space,
like real corpora; uniform random vectors would make every index look bad), loaded by binary
COPY as the owner with the model's HNSW index dropped, then the index is built (its build time
is printed). Queries are fresh draws from the same clusters. The query text matches no chunk,
so the ranking is the vector search alone. Needs numpy (installed with the
`local-embeddings` extra).
"""

import argparse
import asyncio
import contextlib
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb

from app.core import migrations
from app.core.db import create_engine, create_sessionmaker, set_tenant
from app.core.embedded import open_database
from app.core.settings import Settings
from app.knowledge import repository
from app.knowledge.repository import Scope

MODEL = "all-MiniLM-L6-v2"
DIMENSIONS = 384
INDEX = "ix_embeddings_hnsw_all_minilm_l6_v2"
INDEX_SQL = (
    f"CREATE INDEX {INDEX} ON embeddings USING hnsw "
    f"((embedding::vector({DIMENSIONS})) vector_cosine_ops) WHERE embedding_model = '{MODEL}'"
)
CENTRES = 2000
NOISE = 0.35


def libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def draws(rng: np.random.Generator, centres: np.ndarray, count: int) -> np.ndarray:
    picks = centres[rng.integers(0, len(centres), count)]
    vectors = picks + NOISE * rng.standard_normal((count, DIMENSIONS)).astype(np.float32)
    normalized: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalized


def tenant_sizes(rows: int) -> list[int]:
    big, small = rows // 2, rows // 100
    others = rows - big - small
    return [big, small] + [others // 98 + (1 if i < others % 98 else 0) for i in range(98)]


def load(owner_url: str, rows: int, rng: np.random.Generator, centres: np.ndarray) -> list[Any]:
    """Organizations, agents, sources and the chunks; the tenants as (org, agent, rows)."""
    tenants = [(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), size) for size in tenant_sizes(rows)]
    columns = ["uuid", "uuid", "uuid", "int4", "text", "vector", "text", "int2", "jsonb"]
    with psycopg.connect(libpq(owner_url)) as conn:
        register_vector(conn)
        conn.execute(f"DROP INDEX {INDEX}")
        for number, (org, agent, source, _) in enumerate(tenants):
            conn.execute(
                "INSERT INTO organizations (id, clerk_id, name) VALUES (%s, %s, %s)",
                (org, f"org_bench_{number}", f"Tenant {number}"),
            )
            conn.execute(
                "INSERT INTO agents (id, owner_organization_id, slug, name) "
                "VALUES (%s, %s, 'bench', 'Bench')",
                (agent, org),
            )
            conn.execute(
                "INSERT INTO agent_knowledge_sources "
                "(id, organization_id, agent_id, kind, name) VALUES (%s, %s, %s, 'text', 'x')",
                (source, org, agent),
            )
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY embeddings (organization_id, agent_id, knowledge_source_id, chunk_index, "
                "content, embedding, embedding_model, dimensions, metadata) FROM STDIN "
                "WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(columns)
            for org, agent, source, size in tenants:
                for index, vector in enumerate(draws(rng, centres, size)):
                    row = (org, agent, source, index, f"chunk {index}", vector)
                    copy.write_row((*row, MODEL, DIMENSIONS, Jsonb({})))
        conn.commit()
        started = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(INDEX_SQL)
        conn.execute("ANALYZE embeddings")
        conn.commit()
        print(f"HNSW index built over {rows} rows in {time.perf_counter() - started:.0f} s")
    return [(org, agent, size) for org, agent, _, size in tenants]


def explain(app_url: str, org: uuid.UUID, agent: uuid.UUID, query: np.ndarray) -> None:
    """The plan of the production statement, as the application role runs it."""
    vector = "[" + ",".join(map(str, query)) + "]"
    sql = repository.search_sql(MODEL, DIMENSIONS).replace("$1::vector", f"'{vector}'::vector")
    with psycopg.connect(libpq(app_url)) as conn:
        conn.execute("SELECT set_config('app.org_id', %s, false)", (str(org),))
        conn.execute("SET hnsw.iterative_scan = relaxed_order")
        conn.execute("SET hnsw.ef_search = 100")
        conn.execute("SET plan_cache_mode = force_custom_plan")
        names = ["$2", "$3", "$4", "$5", "$6", "$7", "$8"]
        for number, name in enumerate(names, start=1):
            sql = sql.replace(name, f"${number}")
        conn.execute("PREPARE probe (uuid, uuid, uuid, int, float8, text, int) AS " + sql)
        words = repository.any_of_words("zzqxv").replace("'", "''")
        plan = conn.execute(
            f"EXPLAIN (ANALYZE, COSTS OFF) EXECUTE probe ('{org}', '{agent}', NULL, 40, -1, "
            f"'{words}', 10)"
        ).fetchall()
        print("\n".join(row[0][:160] for row in plan))


def exact(owner_url: str, org: uuid.UUID, agent: uuid.UUID, queries: np.ndarray) -> list[set[Any]]:
    """The true top 10 with the same filter: no index, a sequential scan."""
    truth = []
    with psycopg.connect(libpq(owner_url)) as conn:
        register_vector(conn)
        conn.execute("SET enable_indexscan = off")
        conn.execute("SET enable_bitmapscan = off")
        for query in queries:
            rows = conn.execute(
                f"SELECT id FROM embeddings WHERE organization_id = %s AND agent_id = %s "
                f"AND embedding_model = %s ORDER BY embedding::vector({DIMENSIONS}) <=> "
                f"%s::vector({DIMENSIONS}) LIMIT 10",
                (org, agent, MODEL, query),
            ).fetchall()
            truth.append({row[0] for row in rows})
    return truth


async def searched(
    app_url: str, settings: Settings, org: uuid.UUID, agent: uuid.UUID, queries: np.ndarray
) -> tuple[list[set[Any]], list[float]]:
    engine = create_engine(app_url, settings)
    sessionmaker = create_sessionmaker(engine)
    found, latencies = [], []
    try:
        for warm in queries[:5]:  # connections, prepared statements
            async with sessionmaker() as session:
                await set_tenant(session, org)
                await repository.search(
                    session,
                    Scope(org, agent, None),
                    MODEL,
                    DIMENSIONS,
                    list(map(float, warm)),
                    "zzqxv",
                    10,
                    -1.0,
                )
        for query in queries:
            started = time.perf_counter()
            async with sessionmaker() as session:
                await set_tenant(session, org)
                rows = await repository.search(
                    session,
                    Scope(org, agent, None),
                    MODEL,
                    DIMENSIONS,
                    list(map(float, query)),
                    "zzqxv",
                    10,
                    -1.0,
                )
            latencies.append((time.perf_counter() - started) * 1000)
            found.append({row["id"] for row in rows})
    finally:
        await engine.dispose()
    return found, latencies


def main(rows: int, query_count: int, explain_plans: bool) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="ajc-bench-"))
    settings = Settings.model_validate({"data_dir": data_dir})
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((CENTRES, DIMENSIONS)).astype(np.float32)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, data_dir, ignore_errors=True)
        urls = cleanup.enter_context(open_database(settings))
        migrations.upgrade(urls.owner, settings.database_app_role)
        tenants = load(urls.owner, rows, rng, centres)
        print(f"{'tenant':8} {'rows':>7} {'recall@10':>10} {'p50 ms':>8} {'p99 ms':>8}")
        for label, (org, agent, size) in [("big", tenants[0]), ("small", tenants[1])]:
            queries = draws(rng, centres, query_count)
            if explain_plans:
                explain(urls.app, org, agent, queries[0])
            truth = exact(urls.owner, org, agent, queries)
            found, latencies = asyncio.run(searched(urls.app, settings, org, agent, queries))
            recall = statistics.mean(len(f & t) / len(t) for f, t in zip(found, truth, strict=True))
            p50 = statistics.median(latencies)
            p99 = statistics.quantiles(latencies, n=100)[98]
            print(f"{label:8} {size:7d} {recall:10.3f} {p50:8.1f} {p99:8.1f}")
    print("goals: recall@10 >= 0.95 for both, p50 < 20 ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    arguments = parser.parse_args()
    main(arguments.rows, arguments.queries, arguments.explain)
