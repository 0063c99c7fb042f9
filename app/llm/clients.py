"""The chat model a run calls: its agent's registry model, with a client per model.

An agent names a model of the registry (`agents.chat_model_id`) or none, which is the
platform's default: the environment's model (`from_environment`, app/llm/platform.py). Either
is looked up on every run (one indexed query on the request's connection); its client is
made once per version of the model (its id, its last change and its key's secret), with the
key opened from the vault only then, and kept for the process:

- the platform's models go over aiohttp (`openai.DefaultAioHttpClient`: the lighter transport
  under many streams, app/llm/client.py) to the endpoints the operator configured;
- an organization's models go over the egress guard's httpx2 client
  (`EgressGuard.model_http_client`): their endpoint is a URL a tenant aims, so each
  connection is made to an address the guard checked.

A superseded client (the model was changed) may still carry streams; it is closed with the
others when the process stops. No model at all (none registered, none in the environment):
the labelled no-LLM mode.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import openai
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import driver_connection
from app.core.egress import EgressGuard
from app.core.settings import Settings
from app.llm.client import ChatModel, NoModel, OpenAIChatModel
from app.llm.errors import ModelUnavailable
from app.llm.models import ModelCapability, ProviderKind
from app.llm.service import api_key_purpose
from app.secrets.service import Vault

# The agent's model if it names one the organization may use, else the environment's.
_CHAT_MODEL = """
SELECT id, owner_organization_id, name, provider, provider_model, endpoint, azure_deployment,
    azure_api_version, api_key_secret_id, context_window, max_output_tokens, capabilities,
    active, updated_at
FROM models
WHERE CASE WHEN $2::uuid IS NULL THEN from_environment
    ELSE id = $2 AND (owner_organization_id = $1 OR owner_organization_id IS NULL) END
"""


@dataclass(frozen=True)
class RegisteredChatModel:
    """What a run needs of its registry model."""

    id: uuid.UUID
    owner_organization_id: uuid.UUID | None
    name: str
    provider: ProviderKind
    provider_model: str
    endpoint: str | None
    azure_deployment: str | None
    azure_api_version: str | None
    api_key_secret_id: uuid.UUID | None
    context_window: int | None
    max_output_tokens: int | None
    capabilities: list[str]
    active: bool
    updated_at: datetime

    @property
    def version(self) -> tuple[uuid.UUID, datetime, uuid.UUID | None]:
        return self.id, self.updated_at, self.api_key_secret_id


class ModelClients:
    def __init__(self, settings: Settings, vault: Vault) -> None:
        self._settings = settings
        self._vault = vault
        self._guard = EgressGuard.from_settings(settings)
        self._clients: dict[uuid.UUID, tuple[tuple[Any, ...], openai.AsyncOpenAI]] = {}
        self._superseded: list[openai.AsyncOpenAI] = []

    async def chat_model(
        self,
        session: AsyncSession,
        organization_id: uuid.UUID,
        model_id: uuid.UUID | None,
        model_name: str | None = None,
    ) -> tuple[ChatModel, RegisteredChatModel | None]:
        """The model a run of the organization calls, and its registry entry (None: the
        no-LLM mode). `model_name` (an agent's `model_settings.model`) asks the environment's
        endpoint for another of its models, as before the registry."""
        connection = await driver_connection(session)
        row = await connection.fetchrow(_CHAT_MODEL, organization_id, model_id)
        if row is None:
            if model_id is not None:
                raise ModelUnavailable("The agent's model is gone: an admin can choose another.")
            return NoModel(), None
        model = RegisteredChatModel(**row)  # JSONB decoded by the session's connection
        if not model.active:
            if model_id is None:
                return NoModel(), None  # the environment no longer configures a model
            raise ModelUnavailable(
                f"The agent's model {model.name!r} is inactive: an admin can choose another."
            )
        if ModelCapability.chat not in model.capabilities:
            raise ModelUnavailable(f"{model.name!r} is not a chat model.")
        client = await self._client(session, model)
        name = model_name if model_id is None and model_name else model.provider_model
        return OpenAIChatModel(client, name, model.id), model

    async def _client(
        self, session: AsyncSession, model: RegisteredChatModel
    ) -> openai.AsyncOpenAI:
        cached = self._clients.get(model.id)
        if cached is not None and cached[0] == model.version:
            return cached[1]
        api_key = None
        if model.api_key_secret_id is not None:
            api_key = await self._vault.reveal(
                session,
                model.owner_organization_id,
                model.api_key_secret_id,
                api_key_purpose(model.id),
            )
        current = self._clients.get(model.id)  # another run may have made it meanwhile
        if current is not None and current[0] == model.version:
            return current[1]
        client = self._new_client(model, api_key)
        if current is not None:
            self._superseded.append(current[1])
        self._clients[model.id] = (model.version, client)
        return client

    def _new_client(self, model: RegisteredChatModel, api_key: str | None) -> openai.AsyncOpenAI:
        timeout = self._settings.llm_timeout_seconds
        http_client = (
            openai.DefaultAioHttpClient(timeout=timeout)
            if model.owner_organization_id is None
            else self._guard.model_http_client(timeout, openai.DEFAULT_CONNECTION_LIMITS)
        )
        common: dict[str, Any] = {
            "api_key": api_key or "not-needed",
            "timeout": timeout,
            "max_retries": self._settings.llm_max_retries,
            "http_client": http_client,
        }
        if model.provider == ProviderKind.azure_openai:
            return openai.AsyncAzureOpenAI(
                azure_endpoint=model.endpoint or "",  # required for Azure on save
                azure_deployment=model.azure_deployment,
                api_version=model.azure_api_version,
                **common,
            )
        return openai.AsyncOpenAI(base_url=model.endpoint, **common)

    async def close(self) -> None:
        clients = [client for _, client in self._clients.values()] + self._superseded
        self._clients, self._superseded = {}, []
        for client in clients:
            await client.close()
