"""Factories: rows built through the ORM on the test's session, as the application role.

Tenant rows are written under row-level security, so the session must act for the row's
organization first (`await set_tenant(session, org.id)`); `make_tenant` does that for a whole
organization's worth of rows.
"""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import (
    Agent,
    AgentKnowledgeSource,
    AgentQuickTask,
    AgentVisibility,
    KnowledgeSourceKind,
    OrganizationAgent,
)
from app.budgets.models import Budget, BudgetMetric, BudgetReservation, BudgetWindow
from app.conversations.models import Conversation, Message, MessageFile, MessageRole
from app.core.db import set_tenant
from app.files.models import File, FileCategory
from app.knowledge.models import Embedding
from app.notifications.models import Notification
from app.organizations.models import Membership, MembershipRole, Organization
from app.prompts.models import (
    PromptTemplate,
    PromptTemplateLabel,
    PromptTemplateVersion,
    TemplateEngine,
    TemplateKind,
)
from app.runs.models import AgentState
from app.usage.models import UsageEvent, UsagePurpose
from app.users.models import User


def _suffix() -> str:
    return uuid.uuid4().hex[:12]


async def make_org(session: AsyncSession, name: str = "Acme") -> Organization:
    org = Organization(clerk_id=f"org_{_suffix()}", name=name, slug=f"acme-{_suffix()}")
    session.add(org)
    await session.flush()
    return org


async def make_user(session: AsyncSession) -> User:
    user = User(clerk_id=f"user_{_suffix()}", email=f"{_suffix()}@example.com")
    session.add(user)
    await session.flush()
    return user


async def make_agent(
    session: AsyncSession,
    owner: Organization,
    visibility: AgentVisibility = AgentVisibility.private,
) -> Agent:
    agent = Agent(
        owner_organization_id=owner.id,
        slug=f"agent-{_suffix()}",
        name="Helper",
        instructions="Be helpful.",
        visibility=visibility,
    )
    session.add(agent)
    await session.flush()
    return agent


@dataclass
class Tenant:
    """One organization with a row in every tenant table."""

    org: Organization
    user: User
    agent: Agent
    conversation: Conversation
    message: Message
    file: File


async def make_tenant(session: AsyncSession) -> Tenant:
    org = await make_org(session)
    user = await make_user(session)
    await set_tenant(session, org.id, user.id)
    agent = await make_agent(session, org)
    source = AgentKnowledgeSource(
        organization_id=org.id,
        agent_id=agent.id,
        kind=KnowledgeSourceKind.text,
        name="Handbook",
        text_content="Holidays are 25 days a year.",
    )
    conversation = Conversation(
        organization_id=org.id, user_id=user.id, agent_id=agent.id, title="First"
    )
    session.add_all(
        [
            Membership(organization_id=org.id, user_id=user.id, role=MembershipRole.admin),
            OrganizationAgent(organization_id=org.id, agent_id=agent.id),
            AgentQuickTask(
                organization_id=org.id, agent_id=agent.id, name="Summary", prompt="Summarise."
            ),
            source,
            conversation,
        ]
    )
    await session.flush()
    content = b"hello"
    digest = hashlib.sha256(content).hexdigest()
    message = Message(
        organization_id=org.id,
        conversation_id=conversation.id,
        role=MessageRole.user,
        content="Hello",
        parts=[{"type": "text", "text": "Hello"}],
    )
    file = File(
        organization_id=org.id,
        user_id=user.id,
        conversation_id=conversation.id,
        category=FileCategory.uploads,
        original_name="hello.txt",
        storage_path=f"{org.id}/{user.id}/{conversation.id}/files/uploads/{uuid.uuid4()}",
        media_type="text/plain",
        size_bytes=len(content),
        sha256=digest,
    )
    session.add_all([message, file])
    await session.flush()
    session.add_all(
        [
            MessageFile(organization_id=org.id, message_id=message.id, file_id=file.id),
            AgentState(
                organization_id=org.id, user_id=user.id, agent_id=agent.id, state={"step": 1}
            ),
            UsageEvent(
                organization_id=org.id,
                occurred_at=datetime.now(UTC),
                request_id=f"chat:{message.id}",
                purpose=UsagePurpose.chat,
                user_id=user.id,
                agent_id=agent.id,
                conversation_id=conversation.id,
                model_name="fake-model",
                input_tokens=12,
                cached_input_tokens=0,
                output_tokens=6,
                tokens_estimated=False,
            ),
            Embedding(
                organization_id=org.id,
                agent_id=agent.id,
                knowledge_source_id=source.id,
                chunk_index=0,
                content="Holidays are 25 days a year.",
                embedding=[0.1] * 384,
                embedding_model="all-MiniLM-L6-v2",
                dimensions=384,
            ),
        ]
    )
    budget = Budget(organization_id=org.id, metric=BudgetMetric.tokens, limit_amount=1_000_000)
    session.add_all(
        [
            budget,
            Notification(
                organization_id=org.id,
                kind="budget.warning",
                message="The organization's monthly tokens budget is 80% used.",
                data={"threshold": 80},
            ),
        ]
    )
    await session.flush()
    now = datetime.now(UTC)
    window = BudgetWindow(
        organization_id=org.id,
        budget_id=budget.id,
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=30),
        reserved=100,
    )
    session.add(window)
    await session.flush()
    session.add(
        BudgetReservation(
            organization_id=org.id,
            window_id=window.id,
            request_id=f"chat:{uuid.uuid4()}",
            amount=100,
            expires_at=now + timedelta(minutes=5),
        )
    )
    await session.flush()
    template = PromptTemplate(
        organization_id=org.id,
        name="Greeting",
        kind=TemplateKind.system,
        engine=TemplateEngine.plain,
        latest_version=1,
    )
    session.add(template)
    await session.flush()
    version = PromptTemplateVersion(
        organization_id=org.id,
        template_id=template.id,
        version=1,
        text="You greet people.",
        variables={"type": "object", "properties": {}},
        content_hash=hashlib.sha256(b"You greet people.").hexdigest(),
    )
    session.add(version)
    await session.flush()
    session.add(
        PromptTemplateLabel(
            organization_id=org.id,
            template_id=template.id,
            name="production",
            version_id=version.id,
        )
    )
    await session.flush()
    return Tenant(org, user, agent, conversation, message, file)
