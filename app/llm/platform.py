"""The platform's models: what the operator registers (`ajc models add`) and the one the
environment configures (OPENAI_API_KEY / OPENAI_BASE_URL / LLM_MODEL / LLM_PRICES), so that a
deployment configured before the registry keeps working.

The environment's model is one row (`from_environment`), brought in step with the
environment whenever the schema is: by `ajc migrate` (each release) and by the embedded
default's start, which migrates too. As the owner role: platform rows belong to no
organization, which row-level security lets only a BYPASSRLS role write. In step means: its
name, endpoint and window from the environment, its key sealed again if it changed, a new
price version if LLM_PRICES changed (the old one stays for the usage charged at it), and
inactive once the environment configures no model (agents that named it then fail clearly
instead of silently using another).
"""

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import create_engine
from app.core.settings import Settings
from app.llm import repository
from app.llm.models import ModelCapability, ModelPrice, ProviderKind, ProviderModel
from app.llm.service import api_key_purpose
from app.secrets.keyring import Keyring
from app.secrets.service import Vault

logger = logging.getLogger(__name__)

MICRO_USD = 1_000_000


def usd_to_micro(usd: float) -> int:
    return round(usd * MICRO_USD)


@dataclass(frozen=True)
class PlatformModel:
    """What the operator says of a platform model."""

    name: str
    provider: ProviderKind
    provider_model: str
    endpoint: str | None = None
    azure_deployment: str | None = None
    azure_api_version: str | None = None
    context_window: int | None = None
    capabilities: list[ModelCapability] = field(default_factory=lambda: [ModelCapability.chat])
    embedding_dimensions: int | None = None


async def upsert_platform_model(
    session: AsyncSession,
    vault: Vault,
    fields: PlatformModel,
    api_key: str | None,
    input_usd: float | None,
    cached_input_usd: float | None,
    output_usd: float | None,
) -> ProviderModel:
    """`ajc models add`: the platform model of this name, created or changed; its key
    replaced when one is given, kept otherwise; a new price version when one is given."""
    model = (
        await session.execute(
            select(ProviderModel).where(
                ProviderModel.owner_organization_id.is_(None),
                ProviderModel.name == fields.name,
            )
        )
    ).scalar_one_or_none()
    if model is None:
        model = ProviderModel(owner_organization_id=None)
        session.add(model)
    await _apply(session, model, fields)
    if api_key is not None:
        await set_platform_key(session, vault, model, api_key)
    if input_usd is not None or output_usd is not None:
        input_micro = usd_to_micro(input_usd or 0)
        cached = input_micro if cached_input_usd is None else usd_to_micro(cached_input_usd)
        await set_platform_price(session, model, input_micro, cached, usd_to_micro(output_usd or 0))
    return model


async def sync_environment_model(
    session: AsyncSession, vault: Vault, settings: Settings
) -> ProviderModel | None:
    """The environment's platform model, created or brought in step; None if there is none."""
    model = (
        await session.execute(select(ProviderModel).where(ProviderModel.from_environment))
    ).scalar_one_or_none()
    if not settings.llm_configured or not settings.llm_model:
        if model is not None and model.active:
            model.active = False
            logger.info("the environment configures no model: %s made inactive", model.name)
        return None
    if model is None:
        model = ProviderModel(owner_organization_id=None, from_environment=True)
        session.add(model)
    base_url = settings.openai_base_url
    await _apply(
        session,
        model,
        PlatformModel(
            name=settings.llm_model,
            provider=ProviderKind.openai_compatible if base_url else ProviderKind.openai,
            provider_model=settings.llm_model,
            endpoint=base_url.rstrip("/") if base_url else None,
            context_window=settings.llm_context_tokens,
            capabilities=[ModelCapability.chat, ModelCapability.tools],
        ),
    )
    await set_platform_key(session, vault, model, settings.openai_api_key)
    price = settings.llm_prices.get(settings.llm_model)
    if price is not None:
        await set_platform_price(
            session,
            model,
            usd_to_micro(price.get("input", 0)),
            usd_to_micro(price.get("cached_input", price.get("input", 0))),
            usd_to_micro(price.get("output", 0)),
        )
    return model


async def _apply(session: AsyncSession, model: ProviderModel, fields: PlatformModel) -> None:
    for name, value in asdict(fields).items():
        setattr(model, name, value)
    model.capabilities = [str(capability) for capability in fields.capabilities]
    model.active = True
    await session.flush()


async def set_platform_key(
    session: AsyncSession, vault: Vault, model: ProviderModel, api_key: str | None
) -> None:
    """Seal the key if it is not the one already sealed; remove it if there is none."""
    purpose = api_key_purpose(model.id)
    old = model.api_key_secret_id
    unchanged = (
        old is not None
        and api_key is not None
        and await vault.reveal(session, None, old, purpose) == api_key
    )
    if unchanged:
        return
    model.api_key_secret_id = None
    if api_key is not None:
        model.api_key_secret_id = (await vault.seal(session, None, purpose, api_key)).id
    await session.flush()
    if old is not None:
        await vault.delete(session, None, old)


async def set_platform_price(
    session: AsyncSession, model: ProviderModel, input_micro: int, cached_micro: int, output: int
) -> None:
    """A new price version from now, unless the latest one is already this price."""
    latest = (await repository.prices_of(session, [model])).get(model.id, [])
    if latest and (
        latest[0].input_micro_usd,
        latest[0].cached_input_micro_usd,
        latest[0].output_micro_usd,
    ) == (input_micro, cached_micro, output):
        return
    session.add(
        ModelPrice(
            model_id=model.id,
            owner_organization_id=None,
            effective_from=datetime.now(UTC),
            input_micro_usd=input_micro,
            cached_input_micro_usd=cached_micro,
            output_micro_usd=output,
        )
    )
    await session.flush()


async def sync_with_environment(owner_url: str, settings: Settings) -> None:
    """`sync_environment_model` in a transaction of its own, as the owner role."""
    engine = create_engine(owner_url, settings)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            await sync_environment_model(session, Vault(Keyring.from_settings(settings)), settings)
    finally:
        await engine.dispose()
