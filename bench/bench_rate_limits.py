"""What the rate limits cost per request, in one run on a fresh embedded database.

1. The limiter's statement alone (`app.limits.repository.take`, a user's and their
   organization's key in one statement) on asyncpg's pool, against a `SELECT 1` round trip
   on the same pool: sequential latency (p50, p99), then calls/s with CONCURRENCY callers,
   all users of one organization (they share its row, the contended case).
2. A limited route, `POST /agents/{id}/search`, served in-process (httpx's ASGI transport)
   by two apps on the same database, one with RATE_LIMITS_ENABLED and one without, in
   alternating rounds so drift in the machine hits both: p50 latency sequentially and
   requests/s with CONCURRENCY clients, each a user of the same organization.

    .venv/bin/python bench/bench_rate_limits.py [--calls 2000] [--requests 400]
        [--rounds 4] [--concurrency 16]

Limits are set far above the load, so no request is refused: the figures are the cost of
counting, which is what every accepted request pays.
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
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.core import migrations
from app.core.crypto import DEVELOPMENT_ISSUER, development_key_pair, sign_session_token
from app.core.db import create_driver_pool
from app.core.embedded import open_database
from app.core.settings import Settings
from app.limits import repository
from app.limits.repository import Allowance
from app.main import create_app

UNLIMITED = 10**9


def percentile(values: list[float], fraction: float) -> float:
    return statistics.quantiles(values, n=100)[int(fraction * 100) - 1] * 1000


async def timed(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    durations = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        durations.append(time.perf_counter() - started)
    return durations


async def throughput(calls: list[Callable[[], Awaitable[object]]], each: int) -> float:
    """Calls per second with one task per callable, each calling `each` times."""

    async def worker(call: Callable[[], Awaitable[object]]) -> None:
        for _ in range(each):
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker(call) for call in calls))
    return len(calls) * each / (time.perf_counter() - started)


def allowances(user: uuid.UUID, organization: uuid.UUID) -> list[Allowance]:
    period = timedelta(minutes=1)
    return [
        Allowance(f"searches:user:{user}", UNLIMITED, period),
        Allowance(f"searches:org:{organization}", UNLIMITED, period),
    ]


async def bench_statement(pool: asyncpg.Pool, calls: int, concurrency: int) -> None:
    organization = uuid.uuid4()

    async def select_one() -> object:
        async with pool.acquire() as connection:
            return await connection.fetchval("SELECT 1")

    def limiter(user: uuid.UUID) -> Callable[[], Awaitable[object]]:
        async def take() -> object:
            async with pool.acquire() as connection:
                return await repository.take(connection, allowances(user, organization))

        return take

    one_user = limiter(uuid.uuid4())
    await timed(select_one, 100)
    await timed(one_user, 100)
    baseline, limited = await timed(select_one, calls), await timed(one_user, calls)
    print(f"\nThe limiter's statement, {calls} sequential calls (ms):")
    print("| call | p50 | p99 |")
    print("|---|---|---|")
    for label, durations in (("`SELECT 1`", baseline), ("limiter (user + org keys)", limited)):
        print(f"| {label} | {percentile(durations, 0.5):.3f} | {percentile(durations, 0.99):.3f} |")

    each = max(1, calls // concurrency)
    baseline_rate = await throughput([select_one] * concurrency, each)
    limited_rate = await throughput([limiter(uuid.uuid4()) for _ in range(concurrency)], each)
    print(f"\n{concurrency} concurrent callers, users of one organization (calls/s):")
    print(f"| `SELECT 1` | {baseline_rate:.0f} |")
    print(f"| limiter | {limited_rate:.0f} |")


async def bench_route(
    settings: Settings, data_dir: Path, requests: int, rounds: int, concurrency: int
) -> None:
    private_pem = development_key_pair(data_dir).private_pem

    def headers(user: str) -> dict[str, str]:
        token = sign_session_token(
            private_pem,
            issuer=DEVELOPMENT_ISSUER,
            user_id=user,
            organization_id="org_bench",
            role="admin",
        )
        return {"Authorization": f"Bearer {token}"}

    limits = {
        f"rate_limit_{kind}_per_{scope}": UNLIMITED
        for kind in ("runs", "uploads", "ingestions", "searches")
        for scope in ("user", "organization")
    }
    on = create_app(settings.model_copy(update={"rate_limits_enabled": True, **limits}))
    off = create_app(settings.model_copy(update={"rate_limits_enabled": False}))
    users = [headers(f"user_bench_{index}") for index in range(concurrency)]
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[str, httpx.AsyncClient] = {}
        for label, app in (("on", on), ("off", off)):
            await stack.enter_async_context(LifespanManager(app))
            clients[label] = await stack.enter_async_context(client_for(app))
        created = await clients["off"].post(
            "/agents",
            json={"slug": "bench", "name": "Bench", "embedding_model": "feature-hashing-384"},
            headers=users[0],
        )
        assert created.status_code == 201, created.text
        path = f"/agents/{created.json()['id']}/search"

        def search(
            client: httpx.AsyncClient, user: dict[str, str]
        ) -> Callable[[], Awaitable[object]]:
            async def call() -> object:
                response = await client.post(path, json={"query": "leave policy"}, headers=user)
                assert response.status_code == 200, response.text
                return response

            return call

        for client in clients.values():  # every user provisioned, every pool warm
            await throughput([search(client, user) for user in users], 5)
        latencies: dict[str, list[float]] = {"on": [], "off": []}
        rates: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(rounds):
            for label, client in clients.items():
                latencies[label] += await timed(search(client, users[0]), requests)
                calls = [search(client, user) for user in users]
                rates[label].append(await throughput(calls, max(1, requests // concurrency)))
    p50 = {label: percentile(values, 0.5) for label, values in latencies.items()}
    rate = {label: statistics.median(values) for label, values in rates.items()}
    print(f"\n`POST /agents/{{id}}/search` in-process, {rounds} alternating rounds:")
    print(f"| limits | p50 ms (sequential) | req/s ({concurrency} users, one organization) |")
    print("|---|---|---|")
    for label in ("off", "on"):
        print(f"| {label} | {p50[label]:.2f} | {rate[label]:.0f} |")
    print(
        f"\nadded per request: {p50['on'] - p50['off']:+.2f} ms at p50, "
        f"{(rate['on'] / rate['off'] - 1) * 100:+.1f}% requests/s"
    )


def client_for(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60)


async def main(calls: int, requests: int, rounds: int, concurrency: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="ajc-bench-limits-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, data_dir, ignore_errors=True)
        settings = Settings.model_validate(
            {"data_dir": data_dir, "workspaces_dir": data_dir / "workspaces"}
        )
        urls = cleanup.enter_context(open_database(settings))
        await asyncio.to_thread(migrations.upgrade, urls.owner, settings.database_app_role)
        served = settings.model_copy(
            update={
                "database_url": urls.app,
                "database_owner_url": urls.owner,
                "run_worker_in_process": False,
                "log_level": "WARNING",
            }
        )
        pool = await create_driver_pool(urls.app, served)
        try:
            await bench_statement(pool, calls, concurrency)
        finally:
            await pool.close()
        await bench_route(served, data_dir, requests, rounds, concurrency)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.calls, arguments.requests, arguments.rounds, arguments.concurrency))
