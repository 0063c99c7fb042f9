"""The application factory: middleware, error handlers, routers; nothing else."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from app.core import migrations
from app.core.db import create_engine, create_sessionmaker
from app.core.embedded import open_database
from app.core.errors import register_error_handlers
from app.core.middleware import BodyLimitsMiddleware, RequestIdMiddleware
from app.core.settings import Settings, get_settings
from app.health.router import router as health_router
from app.jobs.queue import create_job_queue
from app.jobs.worker import running_worker


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            urls = stack.enter_context(open_database(settings))
            if settings.embedded_database:
                # The embedded default migrates itself; a real deployment runs `ajc migrate`
                # once per release (the one-shot service in docker-compose.yml).
                await asyncio.to_thread(migrations.upgrade, urls.owner, settings.database_app_role)
            engine = create_engine(urls.app, settings)
            stack.push_async_callback(engine.dispose)
            job_queue = create_job_queue(urls.app)
            await stack.enter_async_context(job_queue.open_async())
            if settings.run_worker_in_process:
                await stack.enter_async_context(
                    running_worker(
                        job_queue,
                        settings.worker_concurrency,
                        settings.worker_shutdown_timeout_seconds,
                    )
                )
            app.state.settings = settings
            app.state.engine = engine
            app.state.sessionmaker = create_sessionmaker(engine)
            app.state.job_queue = job_queue
            app.state.head_revision = migrations.head_revision()
            yield

    app = FastAPI(
        title="ajc: the agent backend",
        summary="Multi-tenant, multi-agent assistant backend for a CopilotKit front end.",
        version="0.1.0",
        lifespan=lifespan,
    )
    register_error_handlers(app)
    # Added last runs first: the request id exists before any body check can refuse.
    app.add_middleware(BodyLimitsMiddleware, max_body_bytes=settings.max_request_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_router)
    return app
