"""One unit of work per request: what a route wrote is committed before its response is sent,
and nothing of it is kept when the route fails; whether the route works on the ORM session or
reads on the driver connection, it acts for the caller's organization and user."""

import inspect
import uuid
from collections.abc import Sequence

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import CallerConnectionDep, PrincipalDep
from app.core.db import SessionDep, TransactionalRoute, after_commit
from app.core.errors import Conflict
from app.users import service as users_service
from app.users.models import User
from tests import clerk
from tests.conftest import DatabaseUnderTest
from tests.runs.conftest import start_service


def api_routes(routes: Sequence[object]) -> list[APIRoute]:
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (included := getattr(route, "original_router", None)) is not None:
            found += api_routes(included.routes)
    return found


def test_every_route_has_the_unit_of_work(app: FastAPI) -> None:
    routes = api_routes(app.routes)
    assert len(routes) > 20
    assert [route.path for route in routes if not isinstance(route, TransactionalRoute)] == []


def test_every_dependency_runs_on_the_event_loop(app: FastAPI) -> None:
    """FastAPI runs a plain `def` dependency in its thread pool: a thread hand-off on every
    request that uses it."""
    blocking: set[str] = set()
    pending = [route.dependant for route in api_routes(app.routes)]
    while pending:
        dependant = pending.pop()
        for dependency in dependant.dependencies:
            if not inspect.iscoroutinefunction(dependency.call):
                blocking.add(getattr(dependency.call, "__qualname__", repr(dependency.call)))
            pending.append(dependency)
    assert blocking == set()


@pytest.fixture
def effects() -> list[str]:
    return []


@pytest.fixture
def routes(app: FastAPI, effects: list[str]) -> None:
    router = APIRouter(prefix="/_test", route_class=TransactionalRoute)

    @router.post("/users/{clerk_id}")
    async def create(session: SessionDep, clerk_id: str, fail: bool = False) -> dict[str, str]:
        user_id = await users_service.provision(session, clerk_id)
        after_commit(session, lambda: effects.append(clerk_id))
        if fail:
            raise Conflict("Refused after writing.")
        return {"id": str(user_id)}

    @router.get("/tenant")
    async def tenant(principal: PrincipalDep, connection: CallerConnectionDep) -> dict[str, str]:
        row = await connection.fetchrow(
            "SELECT current_setting('app.org_id') AS org, current_setting('app.user_id') AS usr"
        )
        return {"organization_id": row["org"], "user_id": row["usr"]}

    @router.post("/me/rename")
    async def rename(principal: PrincipalDep, connection: CallerConnectionDep) -> None:
        await connection.execute(
            "UPDATE users SET first_name = 'Renamed' WHERE id = $1", principal.user_id
        )
        raise Conflict("Refused after writing.")

    @router.get("/driver-then-session")
    async def driver_then_session(
        principal: PrincipalDep, connection: CallerConnectionDep, session: SessionDep
    ) -> None:
        pass

    app.include_router(router)


async def count_users(session: AsyncSession, clerk_id: str) -> int:
    return await session.scalar(select(func.count()).where(User.clerk_id == clerk_id)) or 0


@pytest.mark.usefixtures("routes")
async def test_a_successful_route_commits_and_runs_its_after_commit_actions(
    client: httpx.AsyncClient, session: AsyncSession, effects: list[str]
) -> None:
    clerk_id = f"user_{uuid.uuid4().hex}"

    response = await client.post(f"/_test/users/{clerk_id}")

    assert response.status_code == 200
    assert await count_users(session, clerk_id) == 1
    assert effects == [clerk_id]


@pytest.mark.usefixtures("routes")
async def test_a_failing_route_keeps_nothing_it_wrote(
    client: httpx.AsyncClient, session: AsyncSession, effects: list[str]
) -> None:
    clerk_id = f"user_{uuid.uuid4().hex}"

    response = await client.post(f"/_test/users/{clerk_id}", params={"fail": "true"})

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert await count_users(session, clerk_id) == 0
    assert effects == []


@pytest.mark.usefixtures("routes")
async def test_a_driver_read_acts_for_the_callers_organization_and_user(
    client: httpx.AsyncClient, fake_clerk: clerk.FakeClerk
) -> None:
    headers = fake_clerk.headers("user_driver", "org_driver", "member")
    me = (await client.get("/me", headers=headers)).json()

    # The first request resolved the identity on the session; this one finds it cached and
    # begins its transaction on the driver connection, with the tenant.
    response = await client.get("/_test/tenant", headers=headers)

    assert response.status_code == 200
    assert response.json() == {
        "organization_id": me["organization"]["id"],
        "user_id": me["user"]["id"],
    }


@pytest.mark.usefixtures("routes")
async def test_a_failing_driver_route_keeps_nothing_it_wrote(
    client: httpx.AsyncClient, fake_clerk: clerk.FakeClerk
) -> None:
    headers = fake_clerk.headers("user_rename", "org_rename", "member")
    assert (await client.get("/me", headers=headers)).json()["user"]["first_name"] is None

    response = await client.post("/_test/me/rename", headers=headers)

    assert response.status_code == 409
    assert (await client.get("/me", headers=headers)).json()["user"]["first_name"] is None


@pytest.mark.usefixtures("routes")
async def test_a_route_cannot_open_a_second_transaction_after_a_driver_read(
    client: httpx.AsyncClient, fake_clerk: clerk.FakeClerk
) -> None:
    headers = fake_clerk.headers("user_mixed", "org_mixed", "member")
    assert (await client.get("/me", headers=headers)).status_code == 200

    response = await client.get("/_test/driver-then-session", headers=headers)

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"


async def test_driver_reads_on_the_pool_give_their_connection_back_clean(
    test_database: DatabaseUnderTest,
) -> None:
    """The service as deployed (its own database, asyncpg's pool), with one connection: a read
    that fails after its query leaves nothing behind for the next caller."""
    async for service in start_service(
        test_database, "driver_pool", database_pool_size=1, database_max_overflow=0
    ):
        alice = service.clerk.headers("user_alice", "org_pool_a", "admin")
        bob = service.clerk.headers("user_bob", "org_pool_b", "member")
        async with httpx.AsyncClient(base_url=service.base_url) as client:
            for headers in (alice, bob, alice, bob):  # the identities, then cached
                assert (await client.get("/me", headers=headers)).status_code == 200
            service.rows("DELETE FROM users WHERE clerk_id = 'user_alice' RETURNING id")

            refused = await client.get("/me", headers=alice)
            served = await client.get("/me", headers=bob)

        assert refused.status_code == 401
        assert served.status_code == 200
        assert served.json()["user"]["clerk_id"] == "user_bob"
        assert [org["clerk_id"] for org in served.json()["organizations"]] == ["org_pool_b"]
        assert service.rows(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction'"
        ) == [(0,)]
