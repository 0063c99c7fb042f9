"""`ajc`: serve, worker, migrate, seed, token, ingest, cleanup, db-url; the secrets' commands
(encryption-key, rotate-keys) are in app/secrets/commands.py, `ajc models` in
app/llm/commands.py."""

import argparse
import sys
from pathlib import Path
from typing import Any

from app.core.settings import Settings, get_settings
from app.llm import commands as models_commands
from app.secrets import commands as secrets_commands


def serve(settings: Settings, args: argparse.Namespace) -> None:
    import asyncio
    import contextlib
    import os

    import uvicorn

    from app.core import migrations
    from app.core.crypto import development_key_pair
    from app.core.embedded import open_database
    from app.core.listeners import WorkerListeners
    from app.core.logging import configure_logging
    from app.llm.platform import sync_with_environment
    from app.main import create_app
    from app.observability.multiprocess import Supervisor, metrics_folder

    configure_logging(settings.log_level)
    workers = args.workers or settings.api_workers
    options: dict[str, Any] = {
        "host": args.host or settings.host,
        "port": args.port or settings.port,
        "log_config": None,
        "access_log": False,
        "proxy_headers": True,
    }
    if workers == 1:
        # Ctrl-C: uvicorn stops taking requests, the lifespan closes the pool and stops the
        # embedded PostgreSQL it started.
        uvicorn.run(create_app(settings), **options)
        return
    # Several processes: this one prepares what they share (the embedded database, started
    # and migrated once; the development keys), hands them the database's URL, and stops the
    # database after the last of them has stopped.
    config = uvicorn.Config(
        "app.main:create_app_from_environment", factory=True, workers=workers, **options
    )
    # Each worker gets a listener of its own so the kernel spreads connections over them
    # (app/core/listeners.py); uvicorn's supervisor still starts, watches and stops them.
    listeners = WorkerListeners(config.host, config.port)
    with open_database(settings) as urls:
        if settings.embedded_database:
            migrations.upgrade(urls.owner, settings.database_app_role)
            asyncio.run(sync_with_environment(urls.owner, settings))
            os.environ["DATABASE_URL"] = urls.app
        if settings.development_identity:
            development_key_pair(settings.data_dir)
        # The workers' metrics, summed by whichever of them /metrics reaches.
        with metrics_folder() as folder, contextlib.suppress(KeyboardInterrupt):
            Supervisor(config, listeners, folder).run()


def migrate(settings: Settings, args: argparse.Namespace) -> None:
    import asyncio

    from app.core import migrations
    from app.core.embedded import open_database
    from app.core.logging import configure_logging
    from app.llm.platform import sync_with_environment

    configure_logging(settings.log_level)
    with open_database(settings) as urls:
        migrations.upgrade(urls.owner, settings.database_app_role, args.revision)
        if args.revision == "head":
            asyncio.run(sync_with_environment(urls.owner, settings))


def worker(settings: Settings, args: argparse.Namespace) -> None:
    import asyncio

    from app.core.db import Database, create_driver_pool, create_engine, create_sessionmaker
    from app.core.embedded import open_database
    from app.core.logging import configure_logging
    from app.files.backends import create_storage
    from app.jobs.queue import create_job_queue
    from app.jobs.worker import job_context
    from app.knowledge.embedders import Embedders
    from app.llm.clients import ModelClients
    from app.observability import tracing
    from app.secrets.keyring import Keyring
    from app.secrets.service import Vault

    configure_logging(settings.log_level)
    tracing.configure(settings)

    async def run(url: str) -> None:
        queue = create_job_queue(url, settings.worker_stalled_seconds)
        engine = create_engine(url, settings)
        sessionmaker = create_sessionmaker(engine)
        # Opens connections when a job first asks (a quick task's run saves on it).
        driver_pool = await create_driver_pool(url, settings)
        model_clients = ModelClients(settings, Vault(Keyring.from_settings(settings)))
        context = job_context(
            sessionmaker,
            Database(sessionmaker, driver_pool, settings.database_pool_timeout_seconds),
            settings,
            model_clients,
            Embedders(settings),
            create_storage(settings),
        )
        try:
            async with queue.open_async():
                # procrastinate's own signal handlers: SIGINT/SIGTERM stop taking jobs and let
                # the running ones finish.
                await queue.run_worker_async(
                    concurrency=args.concurrency or settings.worker_concurrency,
                    delete_jobs="successful",
                    additional_context=context,
                )
        finally:
            await model_clients.close()  # their aiohttp sessions
            await driver_pool.close()
            await engine.dispose()

    with open_database(settings) as urls:
        asyncio.run(run(urls.app))


def token(settings: Settings, args: argparse.Namespace) -> None:
    from app.core.crypto import DEVELOPMENT_ISSUER, development_key_pair, sign_session_token

    if not settings.development_identity or settings.app_env == "production":
        raise SystemExit("`ajc token` mints development tokens: Clerk is configured here.")
    print(
        sign_session_token(
            development_key_pair(settings.data_dir).private_pem,
            issuer=DEVELOPMENT_ISSUER,
            user_id=args.user,
            organization_id=args.org,
            role=args.role,
            lifetime_seconds=args.minutes * 60,
        )
    )


def seed(settings: Settings, args: argparse.Namespace) -> None:
    import asyncio
    import json

    from pydantic import TypeAdapter
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.agents import service as agents_service
    from app.agents.schemas import AgentCreate
    from app.core.db import create_engine
    from app.core.embedded import open_database
    from app.core.logging import configure_logging

    configure_logging(settings.log_level)
    definitions = TypeAdapter(list[AgentCreate]).validate_python(json.loads(args.file.read_text()))

    async def run(owner_url: str) -> int:
        # The owner role: platform agents belong to no organization, which row-level
        # security lets only a BYPASSRLS role write.
        engine = create_engine(owner_url, settings)
        try:
            async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
                return await agents_service.seed_platform_agents(session, definitions)
        finally:
            await engine.dispose()

    with open_database(settings) as urls:
        count = asyncio.run(run(urls.owner))
    print(f"{count} platform agents seeded from {args.file}")


def cleanup(settings: Settings, args: argparse.Namespace) -> None:
    import asyncio
    from datetime import UTC, datetime

    from app.conversations import retention
    from app.core.db import create_engine, create_sessionmaker
    from app.core.embedded import open_database
    from app.core.logging import configure_logging
    from app.files.backends import create_storage

    configure_logging(settings.log_level)
    days = args.days or settings.retention_days

    async def run(url: str) -> retention.Report:
        engine = create_engine(url, settings)
        try:
            return await retention.purge_inactive(
                create_sessionmaker(engine),
                create_storage(settings),
                datetime.now(UTC),
                days,
                dry_run=args.dry_run,
            )
        finally:
            await engine.dispose()

    with open_database(settings) as urls:
        report = asyncio.run(run(urls.app))
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"{verb}, for {days} days without activity: {report.conversations} conversations, "
        f"{report.messages} messages, {report.files} files, {report.embeddings} chunks, "
        f"{report.agent_states} agent states, in {len(report.organizations)} organizations"
    )
    if not args.dry_run:
        print(
            f"removed {report.orphan_folders} orphan folders and "
            f"{report.stale_uploads} unfinished uploads"
        )


def ingest(settings: Settings, args: argparse.Namespace) -> None:
    import asyncio
    import uuid

    from tqdm import tqdm

    from app.agents import service as agents_service
    from app.core.console import bar_progress
    from app.core.db import create_engine, create_sessionmaker, set_tenant, unit_of_work
    from app.core.embedded import open_database
    from app.core.logging import configure_logging
    from app.files.backends import create_storage
    from app.knowledge import service as knowledge_service
    from app.knowledge.embedders import Embedders
    from app.organizations import service as organizations_service

    configure_logging(settings.log_level)
    if not args.path.is_file():
        raise SystemExit(f"{args.path}: no such file")

    agent_id = uuid.UUID(args.agent)

    async def organization(owner_url: str) -> uuid.UUID:
        """As the owner role (no tenant yet): the organization the source is for."""
        engine = create_engine(owner_url, settings)
        try:
            async with create_sessionmaker(engine)() as session:
                if args.org and args.org.startswith("org_"):
                    found = await organizations_service.find_id(session, args.org)
                elif args.org:
                    found = uuid.UUID(args.org)
                else:
                    found = await agents_service.owner_of(session, agent_id)
        finally:
            await engine.dispose()
        if found is None:
            raise SystemExit("No such organization (a platform agent needs --org).")
        return found

    async def run(url: str, owner_url: str) -> int | None:
        organization_id = await organization(owner_url)
        engine = create_engine(url, settings)
        sessionmaker = create_sessionmaker(engine)
        storage = create_storage(settings)
        try:
            async with sessionmaker() as session, unit_of_work(session):
                await set_tenant(session, organization_id)
                with args.path.open("rb") as upload:
                    source = await knowledge_service.store_file_source(
                        session,
                        organization_id,
                        agent_id,
                        upload,
                        args.name or args.path.name,
                        storage,
                        settings.file_max_bytes,
                    )
            with tqdm(total=0, unit="chunk", desc=f"embedding {args.path.name}") as bar:
                return await knowledge_service.ingest_source(
                    sessionmaker,
                    Embedders(settings),
                    settings,
                    storage,
                    organization_id,
                    source.id,
                    progress=bar_progress(bar),
                )
        finally:
            await engine.dispose()

    with open_database(settings) as urls:
        chunks = asyncio.run(run(urls.app, urls.owner))
    if chunks is None:
        raise SystemExit(f"{args.path} could not be ingested: see the source's error")
    print(f"{args.path}: {chunks} chunks stored for agent {args.agent}")


def db_url(settings: Settings, args: argparse.Namespace) -> None:
    from app.core.embedded import running_embedded_url

    if settings.database_url is not None:
        url = settings.database_owner_url if args.owner else settings.database_url
        print(url or settings.database_url)
        return
    role = settings.embedded_owner_role if args.owner else settings.database_app_role
    url = running_embedded_url(settings, role)
    if url is None:
        print(
            f"The embedded PostgreSQL under {settings.postgres_data_dir} is not running: "
            "start it with `ajc serve`.",
            file=sys.stderr,
        )
        raise SystemExit(1)
    print(url)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ajc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="run the API (and the embedded database)")
    serve_parser.add_argument("--host")
    serve_parser.add_argument("--port", type=int)
    serve_parser.add_argument(
        "--workers", type=int, help="API processes (default API_WORKERS); one core each"
    )
    serve_parser.set_defaults(handler=serve)

    migrate_parser = commands.add_parser("migrate", help="apply migrations as the owner role")
    migrate_parser.add_argument("revision", nargs="?", default="head")
    migrate_parser.set_defaults(handler=migrate)

    worker_parser = commands.add_parser("worker", help="run a background job worker")
    worker_parser.add_argument("--concurrency", type=int)
    worker_parser.set_defaults(handler=worker)

    seed_parser = commands.add_parser("seed", help="create or update the platform's agents")
    seed_parser.add_argument(
        "--file", type=Path, default=Path(__file__).parent / "agents" / "seed.json"
    )
    seed_parser.set_defaults(handler=seed)

    token_parser = commands.add_parser(
        "token", help="print a development session token the running service accepts"
    )
    token_parser.add_argument("--user", required=True, help="Clerk-style user id, user_...")
    token_parser.add_argument("--org", help="Clerk-style organization id, org_...")
    token_parser.add_argument("--role", choices=["admin", "member"], default="member")
    token_parser.add_argument("--minutes", type=int, default=60, help="lifetime")
    token_parser.set_defaults(handler=token)

    cleanup_parser = commands.add_parser(
        "cleanup", help="delete conversations inactive for RETENTION_DAYS, with their files"
    )
    cleanup_parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    cleanup_parser.add_argument("--days", type=int, help="default: RETENTION_DAYS")
    cleanup_parser.set_defaults(handler=cleanup)

    ingest_parser = commands.add_parser(
        "ingest", help="add a file to an agent's knowledge and ingest it now, with progress"
    )
    ingest_parser.add_argument("path", type=Path)
    ingest_parser.add_argument("--agent", required=True, help="the agent's id")
    ingest_parser.add_argument(
        "--org", help="organization (Clerk id or our id); default: the agent's owner"
    )
    ingest_parser.add_argument("--name", help="the source's name (default: the file's)")
    ingest_parser.set_defaults(handler=ingest)

    url_parser = commands.add_parser("db-url", help="print the URL of the database in use")
    url_parser.add_argument("--owner", action="store_true", help="the owner role's URL")
    url_parser.set_defaults(handler=db_url)

    secrets_commands.add_commands(commands)
    models_commands.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    # Every domain's models, whichever the command touches: a foreign key or relationship
    # into a domain nobody imported (`users`, from a knowledge source) would not resolve.
    import app.core.all_models  # noqa: F401

    args = build_parser().parse_args(argv)
    args.handler(get_settings(), args)
