"""Prompt templates: named per organization, with immutable versions and movable labels.

- `PromptTemplate`: its name (unique in the organization), kind and engine, and
  `latest_version`, the counter its versions' numbers come from: a new version takes the
  template's row lock and the next number in the insert's own transaction, so concurrent
  saves queue instead of colliding.
- `PromptTemplateVersion`: one text with its declared variables (a JSON Schema object) and
  the hash of both; never changed. The same text and variables saved again are the version
  that has them (unique hash per template), not a new one.
- `PromptTemplateLabel`: a name (`production`, `staging`, any other) pointing at one of the
  template's versions, moved by an admin; `latest` is implicit and not stored.
"""

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKeyConstraint, Integer, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, TenantMixin, one_of, tenant_reference


class TemplateKind(StrEnum):
    system = "system"  # an agent's instructions
    user = "user"  # a user message
    quick_task = "quick_task"  # a quick task's prompt


class TemplateEngine(StrEnum):
    plain = "plain"  # `{{variable}}` and nothing else
    jinja = "jinja"  # Jinja2 in its immutable sandbox (app/prompts/engines.py)


class PromptTemplate(TenantMixin, Base):
    __tablename__ = "prompt_templates"
    __table_args__ = (
        UniqueConstraint("organization_id", "name"),
        one_of("kind", TemplateKind),
        one_of("engine", TemplateEngine),
    )

    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[TemplateKind] = mapped_column(Text)
    engine: Mapped[TemplateEngine] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    latest_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class PromptTemplateVersion(TenantMixin, Base):
    __tablename__ = "prompt_template_versions"
    __table_args__ = (
        tenant_reference("template_id", "prompt_templates"),
        UniqueConstraint("organization_id", "template_id", "version"),
        UniqueConstraint("organization_id", "template_id", "content_hash"),
        # What a label's foreign key names: a version of the label's own template.
        UniqueConstraint("organization_id", "template_id", "id"),
    )

    template_id: Mapped[uuid.UUID]
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    variables: Mapped[dict[str, Any]] = mapped_column(JSONB)
    content_hash: Mapped[str] = mapped_column(Text)  # sha256 of the text and the variables
    created_by_user_id: Mapped[uuid.UUID | None]


class PromptTemplateLabel(TenantMixin, Base):
    __tablename__ = "prompt_template_labels"
    __table_args__ = (
        tenant_reference("template_id", "prompt_templates"),
        ForeignKeyConstraint(
            ["organization_id", "template_id", "version_id"],
            [
                "prompt_template_versions.organization_id",
                "prompt_template_versions.template_id",
                "prompt_template_versions.id",
            ],
            ondelete="CASCADE",
        ),
        UniqueConstraint("organization_id", "template_id", "name"),
    )

    template_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(Text)
    version_id: Mapped[uuid.UUID]
