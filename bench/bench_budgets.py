"""What budgets cost a run: its reservation before the model call and its settlement with the
usage event after, against the same run's database work without a budget, in one run on a
fresh embedded database.

Each "run" here is the budget-related database work of one round of a real run, as the
service does it (app/budgets/service.py), on the application role's pool, under row-level
security:

1. the reservation, in a transaction of its own (a run's request commits right after it):
   `budgets.service.reserve`;
2. the settlement, in another: the usage event recorded, its cost charged to the windows,
   the reservation given back (`budgets.service.account`, what `AnswerSaver.finish` calls).

Scenarios, each timed for RUNS runs one after another, then for RUNS runs CONCURRENCY at a
time (all in one organization: they queue on its windows' row locks):

- `none`: no budget applies (the reservation finds none; the settlement records the event);
- `cost`: the organization's cost budget;
- `cost+tokens+member`: the organization's cost and tokens budgets and the member's own.

Prints p50 and p99 of a run's reservation + settlement, and the ratio against `none`.

    .venv/bin/python bench/bench_budgets.py [--runs 400] [--concurrency 16]
"""

import argparse
import asyncio
import contextlib
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from app.budgets import service as budgets_service
from app.core import migrations
from app.core.db import Database, create_driver_pool, create_engine, create_sessionmaker
from app.core.embedded import open_database
from app.core.settings import Settings
from app.usage.models import UsagePurpose
from app.usage.service import Attribution, ModelCall

SCENARIOS = ("none", "cost", "cost+tokens+member")


def percentile(values: list[float], fraction: float) -> float:
    return statistics.quantiles(values, n=100)[int(fraction * 100) - 1] * 1000


async def setup(owner: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A priced platform model, and one organization with a member per scenario; (model,
    organization, the first user)."""
    model_id = await owner.fetchval(
        "INSERT INTO models (name, provider, provider_model, capabilities) "
        "VALUES ('bench', 'openai', 'gpt-bench', '[\"chat\"]'::jsonb) RETURNING id"
    )
    await owner.execute(
        "INSERT INTO model_prices (model_id, effective_from, input_micro_usd, "
        "cached_input_micro_usd, output_micro_usd) VALUES ($1, $2, 2500000, 1250000, 10000000)",
        model_id,
        datetime.now(UTC) - timedelta(days=1),
    )
    organization = await owner.fetchval(
        "INSERT INTO organizations (clerk_id, name) VALUES ('org_bench', 'Bench') RETURNING id"
    )
    user = await owner.fetchval("INSERT INTO users (clerk_id) VALUES ('user_bench') RETURNING id")
    await owner.execute(
        "INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, 'member')",
        organization,
        user,
    )
    return model_id, organization, user


async def use_budgets(
    owner: asyncpg.Connection, organization: uuid.UUID, user: uuid.UUID, scenario: str
) -> None:
    await owner.execute("DELETE FROM budgets WHERE organization_id = $1", organization)
    budgets: list[tuple[uuid.UUID | None, str, int]] = []
    if scenario != "none":
        budgets.append((None, "cost", 10**15))
    if scenario == "cost+tokens+member":
        budgets += [(None, "tokens", 10**15), (user, "cost", 10**15)]
    for user_id, metric, limit in budgets:
        await owner.execute(
            "INSERT INTO budgets (organization_id, user_id, metric, limit_amount, thresholds) "
            "VALUES ($1, $2, $3, $4, '{80}')",
            organization,
            user_id,
            metric,
            limit,
        )


async def one_run(
    database: Database, model_id: uuid.UUID, organization: uuid.UUID, user: uuid.UUID
) -> float:
    """One round's reservation and settlement; its seconds."""
    attribution = Attribution(organization, user, None, None, "bench")
    request_id = f"chat:{uuid.uuid4()}"
    started = time.perf_counter()
    async with database.transaction((organization, user)) as connection:
        reservation = await budgets_service.reserve(
            connection, attribution, request_id, model_id, 4_000, 1_000, 600.0
        )
    call = ModelCall(
        request_id=request_id,
        purpose=UsagePurpose.chat,
        occurred_at=datetime.now(UTC),
        model_id=model_id,
        model_name="gpt-bench",
        input_tokens=1_200,
        cached_input_tokens=0,
        output_tokens=300,
        estimated=False,
        latency_ms=900,
    )
    reserved = [] if reservation.max_output_tokens is None else [request_id]
    async with database.transaction((organization, user)) as connection:
        await budgets_service.account(connection, attribution, [call], reserved)
    return time.perf_counter() - started


async def main(runs: int, concurrency: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="ajc-bench-budgets-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, data_dir, ignore_errors=True)
        settings = Settings.model_validate(
            {"data_dir": data_dir, "workspaces_dir": data_dir / "workspaces"}
        )
        urls = cleanup.enter_context(open_database(settings))
        await asyncio.to_thread(migrations.upgrade, urls.owner, settings.database_app_role)
        owner = await asyncpg.connect(urls.owner.replace("postgresql+asyncpg://", "postgresql://"))
        engine = create_engine(urls.app, settings)
        pool = await create_driver_pool(urls.app, settings)
        database = Database(
            create_sessionmaker(engine), pool, settings.database_pool_timeout_seconds
        )
        figures: dict[tuple[str, int], list[float]] = {}
        try:
            model_id, organization, user = await setup(owner)

            async def batch(count: int, at_once: int) -> list[float]:
                gate = asyncio.Semaphore(at_once)

                async def limited() -> float:
                    async with gate:
                        return await one_run(database, model_id, organization, user)

                return list(await asyncio.gather(*(limited() for _ in range(count))))

            for scenario in SCENARIOS:
                await use_budgets(owner, organization, user, scenario)
                await batch(20, 1)  # warm: the pool's connections, the plans
                for at_once in (1, concurrency):
                    figures[(scenario, at_once)] = await batch(runs, at_once)
            windows = await owner.fetchval(
                "SELECT count(*) FROM budget_windows WHERE organization_id = $1", organization
            )
            left = await owner.fetchval("SELECT count(*) FROM budget_reservations")
        finally:
            await pool.close()
            await engine.dispose()
            await owner.close()

    print(f"{runs} runs per row; reservations left at the end: {left}; windows made: {windows}")
    print(f"{'budgets':20} {'at once':>8} {'p50 ms':>8} {'p99 ms':>8} {'p50 vs none':>12}")
    for scenario in SCENARIOS:
        for at_once in (1, concurrency):
            values = figures[(scenario, at_once)]
            baseline = statistics.median(figures[("none", at_once)])
            ratio = statistics.median(values) / baseline
            print(
                f"{scenario:20} {at_once:8} {percentile(values, 0.5):8.2f} "
                f"{percentile(values, 0.99):8.2f} {ratio:11.2f}x"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, arguments.concurrency))
