"""`ajc models add` and `ajc models list`: the operator's platform models (registered by
app/cli.py). As the owner role: platform rows belong to no organization."""

import argparse
import os

from app.core.settings import Settings


def add_model(settings: Settings, args: argparse.Namespace) -> None:
    import asyncio

    from pydantic import ValidationError
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.core.db import create_engine
    from app.core.embedded import open_database
    from app.core.logging import configure_logging
    from app.llm import platform
    from app.llm.models import ModelCapability, ProviderKind, ProviderModel
    from app.llm.schemas import ModelCreate, model_problem
    from app.secrets.keyring import Keyring
    from app.secrets.service import Vault

    configure_logging(settings.log_level)
    api_key = None
    if args.api_key_env:
        # Not a setting: the variable the operator names holds this one model's key, so the
        # key stays out of the command line and the shell's history.
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise SystemExit(f"{args.api_key_env} is not set: the key is read from it")
    capabilities = [ModelCapability(value) for value in args.capability or ["chat"]]
    provider = ProviderKind(args.provider)
    problem = model_problem(
        provider,
        args.endpoint,
        args.azure_deployment,
        args.azure_api_version,
        capabilities,
        args.dimensions,
    )
    if problem:
        raise SystemExit(problem)
    if provider != ProviderKind.local:
        try:  # the same checks as the API's, the local provider aside
            ModelCreate(
                name=args.name,
                provider=provider,
                provider_model=args.model,
                endpoint=args.endpoint,
                azure_deployment=args.azure_deployment,
                azure_api_version=args.azure_api_version,
                context_window=args.context_window,
                capabilities=capabilities,
                embedding_dimensions=args.dimensions,
            )
        except ValidationError as exc:
            raise SystemExit(str(exc)) from exc

    async def run(owner_url: str) -> ProviderModel:
        engine = create_engine(owner_url, settings)
        vault = Vault(Keyring.from_settings(settings))
        try:
            async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
                return await platform.upsert_platform_model(
                    session,
                    vault,
                    platform.PlatformModel(
                        name=args.name,
                        provider=provider,
                        provider_model=args.model,
                        endpoint=args.endpoint.rstrip("/") if args.endpoint else None,
                        azure_deployment=args.azure_deployment,
                        azure_api_version=args.azure_api_version,
                        context_window=args.context_window,
                        capabilities=capabilities,
                        embedding_dimensions=args.dimensions,
                    ),
                    api_key,
                    args.input_usd,
                    args.cached_input_usd,
                    args.output_usd,
                )
        finally:
            await engine.dispose()

    with open_database(settings) as urls:
        model = asyncio.run(run(urls.owner))
    print(f"platform model {model.name!r}: {model.id}")


def list_models(settings: Settings, args: argparse.Namespace) -> None:
    import asyncio

    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.core.db import create_engine
    from app.core.embedded import open_database
    from app.llm.models import ProviderModel

    async def run(owner_url: str) -> list[ProviderModel]:
        engine = create_engine(owner_url, settings)
        try:
            async with AsyncSession(engine) as session:
                query = (
                    select(ProviderModel)
                    .where(ProviderModel.owner_organization_id.is_(None))
                    .order_by(ProviderModel.name)
                )
                return list((await session.execute(query)).scalars())
        finally:
            await engine.dispose()

    with open_database(settings) as urls:
        models = asyncio.run(run(urls.owner))
    for model in models:
        flags = [model.provider, ",".join(model.capabilities)]
        flags += ["environment"] if model.from_environment else []
        flags += [] if model.active else ["inactive"]
        print(f"{model.id}  {model.name}  ({'; '.join(flags)})")


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    models_parser = commands.add_parser("models", help="the platform's models (owner role)")
    models_commands = models_parser.add_subparsers(dest="models_command", required=True)

    add_parser = models_commands.add_parser(
        "add", help="register or update a platform model (by name)"
    )
    add_parser.add_argument("--name", required=True)
    add_parser.add_argument(
        "--provider",
        required=True,
        choices=["openai", "azure-openai", "openai-compatible", "local"],
    )
    add_parser.add_argument("--model", required=True, help="the provider's id of the model")
    add_parser.add_argument("--endpoint", help="base URL (default: the provider's)")
    add_parser.add_argument("--azure-deployment")
    add_parser.add_argument("--azure-api-version")
    add_parser.add_argument(
        "--api-key-env", help="the name of an environment variable that holds the key"
    )
    add_parser.add_argument(
        "--capability",
        action="append",
        choices=["chat", "tools", "vision", "json_mode", "embeddings"],
        help="repeat for each (default: chat)",
    )
    add_parser.add_argument("--dimensions", type=int, help="of an embedding model")
    add_parser.add_argument("--context-window", type=int)
    add_parser.add_argument("--input-usd", type=float, help="USD per million input tokens")
    add_parser.add_argument("--cached-input-usd", type=float, help="default: --input-usd")
    add_parser.add_argument("--output-usd", type=float, help="USD per million output tokens")
    add_parser.set_defaults(handler=add_model)

    list_parser = models_commands.add_parser("list", help="print the platform's models")
    list_parser.set_defaults(handler=list_models)
