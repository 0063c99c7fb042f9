"""The one place secrets live: provider keys now; database connection strings and tool-server
credentials as they land (docs/architecture.md, "Secrets").

Envelope encryption. Each owner (an organization, or the platform for what the operator
configures) has a data key: 32 random bytes, stored only wrapped (AES-256-GCM) by a master key
from ENCRYPTION_KEYS, with that master key's id beside it so the master key can rotate. Each
secret is sealed with its owner's data key. The associated data of both names what the
ciphertext belongs to (app/secrets/service.py), so a ciphertext copied to another row, another
purpose or another organization does not open.

Like `agents`, these tables have `owner_organization_id` (NULL: the platform's) rather than
`organization_id`: a run of any organization reads a platform model's key. Row-level security
shows an organization its own rows and the platform's, and lets it write only its own; the
platform's are written by the owner role (`ajc models add`, `ajc migrate`).
"""

import uuid

from sqlalchemy import Boolean, ForeignKey, Index, LargeBinary, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, RecordMixin


class DataKey(RecordMixin, Base):
    __tablename__ = "data_keys"
    __table_args__ = (
        # One current data key per owner; re-encryption (`ajc rotate-keys --reencrypt`) makes
        # a new one current and drops the old once nothing is sealed with it.
        Index(
            None,
            "owner_organization_id",
            unique=True,
            postgresql_where=text("current"),
            postgresql_nulls_not_distinct=True,
        ),
    )

    owner_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    master_key_id: Mapped[str] = mapped_column(Text)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)  # nonce (12 bytes) + ciphertext
    current: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")


class Secret(RecordMixin, Base):
    __tablename__ = "secrets"
    __table_args__ = (Index(None, "owner_organization_id"), Index(None, "data_key_id"))

    owner_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    data_key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("data_keys.id"))
    # What the secret is for, and for which row ("model:<id>:api_key"): part of the
    # associated data, so a secret referenced from another row does not open there.
    purpose: Mapped[str] = mapped_column(Text)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)  # nonce (12 bytes) + ciphertext
    # The last four characters, which is all the API ever shows of a secret.
    hint: Mapped[str] = mapped_column(Text, default="", server_default="")
