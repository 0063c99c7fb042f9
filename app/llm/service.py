"""The model registry's rules.

Members list and read the models their organization may use (its own and the platform's);
admins register, change and remove their organization's own, and test them. A platform model
is read-only through the API (the operator's: `ajc models add`), another organization's is
`ModelNotFound`. A key is written, never read back: sealed as a secret for this model's row
(`model:<id>:api_key`), shown by its last four characters.
"""

import uuid
from datetime import UTC, datetime

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.identity import OrganizationPrincipal
from app.budgets import service as budgets_service
from app.core.db import driver_connection
from app.core.egress import EgressGuard
from app.llm import probe, repository
from app.llm.errors import (
    InvalidModel,
    ModelInUse,
    ModelNameTaken,
    ModelNotFound,
    PlatformModelReadOnly,
    PriceNotInTheFuture,
)
from app.llm.models import ModelCapability, ModelPrice, ProviderModel
from app.llm.schemas import (
    ModelCreate,
    ModelRead,
    ModelTestResult,
    ModelUpdate,
    PriceCreate,
    PriceRead,
    model_problem,
)
from app.secrets.service import Vault
from app.usage.models import UsagePurpose
from app.usage.service import Attribution, ModelCall


def api_key_purpose(model_id: uuid.UUID) -> str:
    return f"model:{model_id}:api_key"


async def list_models(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    capability: ModelCapability | None,
    include_inactive: bool,
) -> list[ModelRead]:
    rows = await repository.list_usable(
        session, principal.organization_id, capability, not include_inactive
    )
    prices = await repository.prices_of(session, [model for model, _ in rows])
    return [_read(model, hint, prices.get(model.id, [])) for model, hint in rows]


async def read_model(
    session: AsyncSession, principal: OrganizationPrincipal, model_id: uuid.UUID
) -> ModelRead:
    model, hint = await _get_usable(session, principal, model_id)
    return await _read_with_prices(session, model, hint)


async def create_model(
    session: AsyncSession, principal: OrganizationPrincipal, vault: Vault, data: ModelCreate
) -> ModelRead:
    owner = principal.organization_id
    model = ProviderModel(
        id=uuid.uuid4(),
        owner_organization_id=owner,
        **data.model_dump(mode="json", exclude={"api_key", "price"}),
    )
    hint = None
    if data.api_key is not None:
        secret = await vault.seal(
            session, owner, api_key_purpose(model.id), data.api_key.get_secret_value()
        )
        model.api_key_secret_id, hint = secret.id, secret.hint
    if not await repository.insert_model(session, model):
        raise ModelNameTaken(f"Your organization already has a model named {data.name!r}.")
    if data.price is not None:
        await _add_price(session, model, data.price)
    return await _read_with_prices(session, model, hint)


async def update_model(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    vault: Vault,
    model_id: uuid.UUID,
    data: ModelUpdate,
) -> ModelRead:
    model, hint = await _get_owned(session, principal, model_id)
    changes = data.model_dump(mode="json", exclude_unset=True, exclude={"api_key"})
    merged = {field: changes.get(field, getattr(model, field)) for field in _CHECKED_FIELDS}
    problem = model_problem(model.provider, **merged)
    if problem:
        raise InvalidModel(problem[0].upper() + problem[1:] + ".")
    if "api_key" in data.model_fields_set:
        new_key = data.api_key if isinstance(data.api_key, SecretStr) else None  # null: removed
        hint = await _replace_key(session, vault, model, new_key)

    def change() -> None:
        for field, value in changes.items():
            setattr(model, field, value)

    if not await repository.change_unless_duplicate(session, change):
        raise ModelNameTaken(f"Your organization already has a model named {changes['name']!r}.")
    await session.refresh(model)
    return await _read_with_prices(session, model, hint)


_CHECKED_FIELDS = (
    "endpoint",
    "azure_deployment",
    "azure_api_version",
    "capabilities",
    "embedding_dimensions",
)


async def delete_model(
    session: AsyncSession, principal: OrganizationPrincipal, vault: Vault, model_id: uuid.UUID
) -> None:
    model, _ = await _get_owned(session, principal, model_id)
    secret_id = model.api_key_secret_id
    if not await repository.delete_unless_used(session, model):
        raise ModelInUse("Agents of your organization use this model: choose another for them.")
    if secret_id is not None:
        await vault.delete(session, model.owner_organization_id, secret_id)


async def add_price(
    session: AsyncSession, principal: OrganizationPrincipal, model_id: uuid.UUID, data: PriceCreate
) -> ModelRead:
    model, hint = await _get_owned(session, principal, model_id)
    await _add_price(session, model, data)
    return await _read_with_prices(session, model, hint)


async def test_model(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    vault: Vault,
    guard: EgressGuard,
    model_id: uuid.UUID,
) -> ModelTestResult:
    model, _ = await _get_owned(session, principal, model_id)
    api_key = None
    if model.api_key_secret_id is not None:
        api_key = await vault.reveal(
            session, model.owner_organization_id, model.api_key_secret_id, api_key_purpose(model.id)
        )
    occurred_at = datetime.now(UTC)
    result, usage = await probe.probe(guard, model, api_key)
    if result.ok:  # answered: a model call the ledger records
        counted = usage or probe.estimated_usage(model)
        call = ModelCall(
            request_id=f"model-test:{uuid.uuid4()}",
            purpose=UsagePurpose.model_test,
            occurred_at=occurred_at,
            model_id=model.id,
            model_name=model.provider_model,
            input_tokens=counted.input_tokens,
            cached_input_tokens=counted.cached_input_tokens,
            output_tokens=counted.output_tokens,
            estimated=usage is None,
            latency_ms=round(result.latency_ms),
        )
        attribution = Attribution(principal.organization_id, principal.user_id)
        await budgets_service.account(await driver_connection(session), attribution, [call])
    return result


async def check_chat_model(
    session: AsyncSession,
    organization_id: uuid.UUID,
    model_id: uuid.UUID | None,
    visibility: str,
) -> None:
    """What an agent's chat model must be: one the organization may use (else 404, as any
    object of another organization), active and able to chat (else 422), and the platform's
    if the agent is public, since other organizations run public agents and cannot use an
    organization's own models or keys."""
    if model_id is None:
        return
    found = await repository.get_usable(session, organization_id, model_id)
    if found is None:
        raise ModelNotFound("No such model in the registry (`GET /models`).")
    model = found[0]
    if not model.active:
        raise InvalidModel(f"The model {model.name!r} is inactive.")
    if ModelCapability.chat not in model.capabilities:
        raise InvalidModel(f"The model {model.name!r} is not a chat model.")
    if visibility == "public" and model.owner_organization_id is not None:
        raise InvalidModel(
            "A public agent uses one of the platform's models: other organizations cannot "
            "use your organization's own."
        )


async def _replace_key(
    session: AsyncSession, vault: Vault, model: ProviderModel, api_key: SecretStr | None
) -> str | None:
    """The model's new key (or none), and its hint."""
    owner = model.owner_organization_id
    old = model.api_key_secret_id
    if api_key is None:
        model.api_key_secret_id = None
        await session.flush()
        if old is not None:
            await vault.delete(session, owner, old)
        return None
    value = api_key.get_secret_value()
    secret = await vault.seal(session, owner, api_key_purpose(model.id), value)
    model.api_key_secret_id = secret.id
    await session.flush()
    if old is not None:
        await vault.delete(session, owner, old)
    return secret.hint


async def _add_price(session: AsyncSession, model: ProviderModel, data: PriceCreate) -> None:
    now = datetime.now(UTC)
    effective_from = data.effective_from or now
    if effective_from < now:
        raise PriceNotInTheFuture(
            "A price starts now or later: usage already charged keeps the price it had."
        )
    price = ModelPrice(
        model_id=model.id,
        owner_organization_id=model.owner_organization_id,
        effective_from=effective_from,
        input_micro_usd=data.input_micro_usd,
        cached_input_micro_usd=(
            data.input_micro_usd
            if data.cached_input_micro_usd is None
            else data.cached_input_micro_usd
        ),
        output_micro_usd=data.output_micro_usd,
    )
    if not await repository.insert_price(session, price):
        raise PriceNotInTheFuture("This model already has a price from that instant.")


async def _get_usable(
    session: AsyncSession, principal: OrganizationPrincipal, model_id: uuid.UUID
) -> tuple[ProviderModel, str | None]:
    found = await repository.get_usable(session, principal.organization_id, model_id)
    if found is None:
        raise ModelNotFound()
    return found


async def _get_owned(
    session: AsyncSession, principal: OrganizationPrincipal, model_id: uuid.UUID
) -> tuple[ProviderModel, str | None]:
    model, hint = await _get_usable(session, principal, model_id)
    if model.owner_organization_id is None:
        raise PlatformModelReadOnly("The platform's models are configured by the operator.")
    return model, hint


async def _read_with_prices(
    session: AsyncSession, model: ProviderModel, hint: str | None
) -> ModelRead:
    prices = await repository.prices_of(session, [model])
    return _read(model, hint, prices.get(model.id, []))


def _read(model: ProviderModel, hint: str | None, prices: list[ModelPrice]) -> ModelRead:
    return ModelRead(
        id=model.id,
        owner_organization_id=model.owner_organization_id,
        name=model.name,
        provider=model.provider,
        provider_model=model.provider_model,
        endpoint=model.endpoint,
        azure_deployment=model.azure_deployment,
        azure_api_version=model.azure_api_version,
        has_api_key=model.api_key_secret_id is not None,
        api_key_hint=hint or None,
        context_window=model.context_window,
        max_output_tokens=model.max_output_tokens,
        capabilities=[ModelCapability(value) for value in model.capabilities],
        embedding_dimensions=model.embedding_dimensions,
        active=model.active,
        prices=[PriceRead.model_validate(price) for price in prices],
        created_at=model.created_at,
        updated_at=model.updated_at,
    )
