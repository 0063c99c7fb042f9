"""The application factory: middleware, error handlers, routers; nothing else."""

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.agents.router import router as agents_router
from app.auth.clerk import create_token_verifier
from app.auth.principal import get_principal
from app.auth.service import IdentityCache
from app.budgets.router import router as budgets_router
from app.conversations.router import router as conversations_router
from app.copilotkit.router import router as copilotkit_router
from app.copilotkit.router import streams as copilotkit_streams
from app.core import migrations, openapi
from app.core.db import (
    Database,
    TransactionalRoute,
    create_driver_pool,
    create_engine,
    create_sessionmaker,
)
from app.core.embedded import open_database
from app.core.errors import register_error_handlers
from app.core.logging import configure_logging
from app.core.middleware import BodyLimitsMiddleware, RequestIdMiddleware
from app.core.settings import Settings, get_settings
from app.files.backends import create_storage
from app.files.router import router as files_router
from app.health.router import router as health_router
from app.jobs.queue import create_job_queue
from app.jobs.worker import job_context, running_worker
from app.knowledge.embedders import Embedders
from app.knowledge.router import router as knowledge_router
from app.llm.clients import ModelClients
from app.llm.platform import sync_with_environment
from app.llm.router import router as models_router
from app.notifications.router import router as notifications_router
from app.observability import tracing
from app.observability.monitor import monitoring
from app.observability.router import router as metrics_router
from app.organizations.router import router as organizations_router
from app.prompts.router import router as prompts_router
from app.runs import cancellation
from app.runs.admission import RunAdmissionMiddleware
from app.runs.executor import RunRegistry
from app.runs.router import cancel_router as cancel_runs_router
from app.runs.router import router as runs_router
from app.runs.saving import AnswerSaver
from app.runs.tools import ToolRunner
from app.secrets.keyring import Keyring
from app.secrets.service import Vault
from app.usage.router import router as usage_router
from app.users.router import router as users_router
from app.webhooks.router import router as webhooks_router


def create_app(
    settings: Settings | None = None, http_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """`http_transport` carries the service's outbound HTTP (Clerk's JWKS); tests give one
    that answers as Clerk does."""
    settings = settings or get_settings()
    tracing_on = tracing.configure(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # First: a malformed ENCRYPTION_KEYS stops the start before anything is opened.
        vault = Vault(Keyring.from_settings(settings))
        async with AsyncExitStack() as stack:
            urls = stack.enter_context(open_database(settings))
            if settings.embedded_database:
                # The embedded default migrates itself; a real deployment runs `ajc migrate`
                # once per release (the one-shot service in docker-compose.yml).
                await asyncio.to_thread(migrations.upgrade, urls.owner, settings.database_app_role)
                await sync_with_environment(urls.owner, settings)
            engine = create_engine(urls.app, settings)
            stack.push_async_callback(engine.dispose)
            sessionmaker = create_sessionmaker(engine)
            driver_pool = await create_driver_pool(urls.app, settings)
            stack.push_async_callback(driver_pool.close)
            # What a request's unit of work opens, and what runs save their answers on.
            database = Database(sessionmaker, driver_pool, settings.database_pool_timeout_seconds)
            model_clients = ModelClients(settings, vault)
            stack.push_async_callback(model_clients.close)  # their aiohttp sessions
            embedders = Embedders(settings)
            storage = create_storage(settings)
            stack.push_async_callback(storage.close)
            job_queue = create_job_queue(urls.app, settings.worker_stalled_seconds)
            await stack.enter_async_context(job_queue.open_async())
            if settings.run_worker_in_process:
                await stack.enter_async_context(
                    running_worker(
                        job_queue,
                        settings.worker_concurrency,
                        settings.worker_shutdown_timeout_seconds,
                        job_context(
                            sessionmaker, database, settings, model_clients, embedders, storage
                        ),
                    )
                )
            http_client = httpx.AsyncClient(transport=http_transport)
            stack.push_async_callback(http_client.aclose)
            app.state.settings = settings
            app.state.vault = vault
            app.state.token_verifier = create_token_verifier(settings, http_client)
            app.state.identity_cache = IdentityCache()
            app.state.model_clients = model_clients
            app.state.embedders = embedders
            app.state.storage = storage
            app.state.tool_runner = ToolRunner(sessionmaker, embedders, storage)
            # Entered before the runs' stop: it writes until the last run has saved.
            saver = AnswerSaver(database)
            app.state.answer_saver = await stack.enter_async_context(saver.running())
            app.state.run_registry = RunRegistry(settings.run_max_concurrent)
            stack.push_async_callback(app.state.run_registry.stop_all)
            await stack.enter_async_context(cancellation.listening(engine, app.state.run_registry))
            app.state.engine = engine
            app.state.sessionmaker = sessionmaker
            await stack.enter_async_context(monitoring(engine, driver_pool))
            app.state.database = database
            app.state.job_queue = job_queue
            app.state.head_revision = migrations.head_revision()
            # anyio imports its asyncio backend when first asked for it: by the first streamed
            # answer (a run's SSE stream runs in a task group), 20 ms with the loop blocked.
            anyio.get_cancelled_exc_class()
            # What startup made (about 270,000 objects: the SDKs' types, the models, the
            # routes) lives as long as the process: out of the collector's reach, so that a
            # full collection under load scans what requests make, not all of it again
            # (168 ms with the loop blocked, each time: a p99 of its own).
            gc.collect()
            gc.freeze()
            yield

    app = FastAPI(
        title="ajc: the agent backend",
        summary="Multi-tenant, multi-agent assistant backend for a CopilotKit front end.",
        version="0.1.0",
        lifespan=lifespan,
        generate_unique_id_function=openapi.operation_id,
        telemetry=tracing.FASTAPI_TELEMETRY,
    )
    app.router.route_class = TransactionalRoute  # routes added to the app itself
    register_error_handlers(app)
    # Added last runs first: the request id exists before any body check can refuse.
    app.add_middleware(
        BodyLimitsMiddleware,
        max_body_bytes=settings.max_request_body_bytes,
        max_upload_bytes=settings.file_max_bytes,
    )
    app.add_middleware(RunAdmissionMiddleware)
    if settings.cors_origins:
        # Outside the door and the body limits: their refusals must reach the browser's
        # code too (a 503 or 413 without CORS headers reads as a network error).
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "ETag", "Content-Disposition"],
            max_age=600,
        )
    if tracing_on:
        app.add_middleware(tracing.SpanAttributesMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(users_router)
    app.include_router(files_router)
    app.include_router(knowledge_router)
    app.include_router(agents_router)
    app.include_router(runs_router)
    app.include_router(cancel_runs_router)
    app.include_router(conversations_router)
    app.include_router(copilotkit_router)
    app.include_router(copilotkit_streams)
    app.include_router(models_router)
    app.include_router(usage_router)
    app.include_router(budgets_router)
    app.include_router(notifications_router)
    app.include_router(prompts_router)
    app.include_router(organizations_router)
    app.include_router(webhooks_router)
    openapi.install(app, requires_caller=get_principal)
    return app


def create_app_from_environment() -> FastAPI:
    """What each process of `ajc serve --workers N` runs: settings from the environment
    (the parent has put the database's URL there), its own logging."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
