"""Imports every domain's models so `Base.metadata` knows the whole schema (Alembic, tests)."""

from app.agents.models import Agent, AgentKnowledgeSource, AgentQuickTask, OrganizationAgent
from app.budgets.models import Budget, BudgetReservation, BudgetWindow
from app.conversations.models import Conversation, Message, MessageFile
from app.core.models import Base
from app.files.models import File
from app.knowledge.models import Embedding
from app.limits.models import RateLimit
from app.llm.models import ModelPrice, ProviderModel
from app.notifications.models import Notification
from app.organizations.models import Membership, Organization
from app.prompts.models import PromptTemplate, PromptTemplateLabel, PromptTemplateVersion
from app.runs.models import AgentState
from app.secrets.models import DataKey, Secret
from app.usage.models import UsageEvent
from app.users.models import User
from app.webhooks.models import WebhookEvent

__all__ = [
    "Agent",
    "AgentKnowledgeSource",
    "AgentQuickTask",
    "AgentState",
    "Base",
    "Budget",
    "BudgetReservation",
    "BudgetWindow",
    "Conversation",
    "DataKey",
    "Embedding",
    "File",
    "Membership",
    "Message",
    "MessageFile",
    "ModelPrice",
    "Notification",
    "Organization",
    "OrganizationAgent",
    "PromptTemplate",
    "PromptTemplateLabel",
    "PromptTemplateVersion",
    "ProviderModel",
    "RateLimit",
    "Secret",
    "UsageEvent",
    "User",
    "WebhookEvent",
]
