"""The usage dashboard on a million events, by the index on time, in one run on a fresh
embedded database.

A year of EVENTS usage events, written in time order as the service writes them, over
ORGANIZATIONS organizations: one large one holds half of them (about 40,000 a month), the
others share the rest. Then the queries `GET /usage` makes for a calendar month (its rows
per day, agent, user, model and purpose, whose sums are its totals: `app.usage.repository`, as the
application role under row-level security, the tenant set) are timed, for the large
organization and a small one, with each of:

- `btree`: B-tree on (organization_id, occurred_at), what the service ships;
- `brin`: BRIN on occurred_at instead (the time order of an append-only table);
- `none`: neither, the baseline: only the primary key (organization_id, id) narrows to the
  organization.

Prints p50 and p99 per query and index, the ratios against the baseline, and the sizes of
the indexes. Also the cost of writing: `app.usage.service.record` of one event, sequential,
with the B-tree and with BRIN.

    .venv/bin/python bench/bench_usage.py [--events 1000000] [--repeats 20]
"""

import argparse
import asyncio
import contextlib
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg

from app.core import migrations
from app.core.db import create_engine, create_sessionmaker, driver_transaction, set_tenant
from app.core.embedded import open_database
from app.core.settings import Settings
from app.usage import repository
from app.usage import service as usage_service
from app.usage.models import UsagePurpose
from app.usage.service import Attribution, ModelCall

ORGANIZATIONS = 100
GROUPS = ["agent", "user", "model", "purpose"]
BTREE = "ix_usage_events_organization_id_occurred_at"
BRIN = "ix_usage_events_occurred_at_brin"

_EVENTS = """
INSERT INTO usage_events (
    organization_id, occurred_at, request_id, purpose, user_id, agent_id, conversation_id,
    run_id, model_id, model_name, input_tokens, cached_input_tokens, output_tokens,
    tokens_estimated, latency_ms, cost_micro_usd
)
SELECT CASE WHEN i % 2 = 0 THEN $1::uuid ELSE ($2::uuid[])[1 + (i / 2) % cardinality($2)] END,
       $3::timestamptz + (i - 1) * ($4::interval / $5::int),
       'bench:' || i,
       (ARRAY['chat', 'chat', 'chat', 'embedding_search', 'embedding_ingest'])[1 + i % 5],
       md5('user' || i % 40)::uuid, md5('agent' || i % 12)::uuid, md5('thread' || i)::uuid,
       'run-' || i, md5('model' || i % 3)::uuid, 'model-' || i % 3,
       200 + i % 3000, i % 100, 50 + i % 700, i % 17 = 0, 300 + i % 2000, 10 + i % 900
FROM generate_series($6::int, $7::int) AS i
"""


def percentile(values: list[float], fraction: float) -> float:
    return statistics.quantiles(values, n=100)[int(fraction * 100) - 1] * 1000


async def timed(call: Callable[[], Awaitable[object]], repeats: int) -> list[float]:
    await call()  # warm: the pages in the cache, the plan's statistics read
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        durations.append(time.perf_counter() - started)
    return durations


async def fill(owner: asyncpg.Connection, events: int) -> tuple[uuid.UUID, uuid.UUID]:
    """The organizations and a year of events; (the large organization, a small one)."""
    ids = [
        await owner.fetchval(
            "INSERT INTO organizations (clerk_id, name) VALUES ($1, $2) RETURNING id",
            f"org_bench_{number}",
            f"Bench {number}",
        )
        for number in range(ORGANIZATIONS)
    ]
    large, others = ids[0], ids[1:]
    start = datetime.now(UTC) - timedelta(days=365)
    batch = 100_000
    started = time.perf_counter()
    for first in range(1, events + 1, batch):
        last = min(first + batch - 1, events)
        await owner.execute(_EVENTS, large, others, start, timedelta(days=365), events, first, last)
        print(f"  {last:,} events", end="\r", flush=True)
    print(f"  {events:,} events written in {time.perf_counter() - started:.0f} s")
    return large, others[0]


async def use_index(owner: asyncpg.Connection, kind: str) -> str:
    """Only the index of `kind` on time (none for `none`); its size."""
    await owner.execute(f"DROP INDEX IF EXISTS {BTREE}")
    await owner.execute(f"DROP INDEX IF EXISTS {BRIN}")
    if kind == "btree":
        await owner.execute(f"CREATE INDEX {BTREE} ON usage_events (organization_id, occurred_at)")
    elif kind == "brin":
        await owner.execute(f"CREATE INDEX {BRIN} ON usage_events USING brin (occurred_at)")
    await owner.execute("VACUUM ANALYZE usage_events")
    if kind == "none":
        return "-"
    name = BTREE if kind == "btree" else BRIN
    size: str = await owner.fetchval(f"SELECT pg_size_pretty(pg_relation_size('{name}'))")
    return size


def last_month() -> tuple[date, date]:
    first_of_this = datetime.now(UTC).date().replace(day=1)
    end = first_of_this - timedelta(days=1)
    return end.replace(day=1), end


async def main(events: int, repeats: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="ajc-bench-usage-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, data_dir, ignore_errors=True)
        settings = Settings.model_validate(
            {"data_dir": data_dir, "workspaces_dir": data_dir / "workspaces"}
        )
        urls = cleanup.enter_context(open_database(settings))
        await asyncio.to_thread(migrations.upgrade, urls.owner, settings.database_app_role)
        owner = await asyncpg.connect(urls.owner.replace("postgresql+asyncpg://", "postgresql://"))
        app = await asyncpg.connect(urls.app.replace("postgresql+asyncpg://", "postgresql://"))
        engine = create_engine(urls.app, settings)
        sessions = create_sessionmaker(engine)
        try:
            large, small = await fill(owner, events)
            start, end = last_month()
            print(f"dashboard: {start} to {end}, per day, by {', '.join(GROUPS)}")

            async def dashboard(organization: uuid.UUID) -> None:
                async with sessions() as session, session.begin():
                    await set_tenant(session, organization)
                    await repository.report(session, organization, "UTC", "day", GROUPS, start, end)

            async def write(organization: uuid.UUID) -> None:
                async with driver_transaction(app, (organization, None)) as connection:
                    call = ModelCall(
                        request_id=f"write:{uuid.uuid4()}",
                        purpose=UsagePurpose.chat,
                        occurred_at=datetime.now(UTC),
                        model_id=None,
                        model_name="model-0",
                        input_tokens=1_000,
                        cached_input_tokens=0,
                        output_tokens=200,
                        estimated=False,
                        latency_ms=900,
                    )
                    await usage_service.record(connection, Attribution(organization, None), [call])

            figures: dict[str, dict[str, list[float]]] = {}
            sizes: dict[str, str] = {}
            for kind in ("none", "brin", "btree"):
                sizes[kind] = await use_index(owner, kind)
                figures[kind] = {
                    "large": await timed(lambda: dashboard(large), repeats),
                    "small": await timed(lambda: dashboard(small), repeats),
                }
                if kind != "none":
                    figures[kind]["write"] = await timed(lambda: write(large), repeats * 10)
            rows = await owner.fetchval(
                "SELECT count(*) FROM usage_events WHERE organization_id = $1 "
                "AND occurred_at >= $2 AND occurred_at < $3",
                large,
                datetime.combine(start, datetime.min.time(), UTC),
                datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC),
            )
        finally:
            await engine.dispose()
            await app.close()
            await owner.close()

    print(f"\nthe large organization's month: {rows:,} events ")
    print(f"{'index':8} {'size':>8} {'query':22} {'p50 ms':>8} {'p99 ms':>8} {'vs none':>8}")
    for kind in ("none", "brin", "btree"):
        for query, label in (("large", "month, large org"), ("small", "month, small org")):
            values = figures[kind][query]
            baseline = statistics.median(figures["none"][query])
            ratio = baseline / statistics.median(values)
            print(
                f"{kind:8} {sizes[kind]:>8} {label:22} {percentile(values, 0.5):8.1f} "
                f"{percentile(values, 0.99):8.1f} {ratio:7.1f}x"
            )
    for kind in ("brin", "btree"):
        values = figures[kind]["write"]
        print(
            f"{kind:8} {'':>8} {'record one event':22} {percentile(values, 0.5):8.2f} "
            f"{percentile(values, 0.99):8.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.repeats))
