"""One unit of work per request: what a route wrote is committed before its response is sent,
and nothing of it is kept when the route fails."""

import uuid
from collections.abc import Sequence

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import SessionDep, TransactionalRoute, after_commit
from app.core.errors import Conflict
from app.users import service as users_service
from app.users.models import User


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
