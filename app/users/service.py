"""Users mirrored from Clerk.

Deletion rule (Clerk `user.deleted`): the user's row goes, and with it, by the foreign keys'
cascades and in the same transaction, everything the user owns in every organization: their
memberships, conversations (with messages, message files, files' rows, the conversations'
embeddings and agent states), their own agent states and the quick tasks they scheduled. What
they made for an organization stays with it, with its author forgotten (`created_by_user_id`
set NULL): agents, knowledge sources, unscheduled quick tasks. Their files on disk are removed
once the deletion commits. A late `user.updated` does not bring them back (webhook tombstone).
"""

import uuid
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.errors import InvalidToken
from app.auth.identity import Principal
from app.files import storage as file_storage
from app.files.storage import Storage
from app.users import repository
from app.users.schemas import Me


async def describe(connection: asyncpg.Connection, principal: Principal) -> Me:
    """On every page load: one query on the driver connection (`RequestUnitOfWork`)."""
    found = await repository.get_with_memberships(connection, principal.user_id)
    if found is None:
        # Deleted by a webhook after this token's identity was cached (for at most the
        # token's remaining lifetime).
        raise InvalidToken("This user was deleted.")
    user, memberships = found
    current = next((view for view in memberships if view.id == principal.organization_id), None)
    return Me(user=user, organization=current, organizations=memberships)


async def find_id(session: AsyncSession, clerk_id: str) -> uuid.UUID | None:
    return await repository.get_id_by_clerk_id(session, clerk_id)


async def provision(session: AsyncSession, clerk_id: str, **fields: Any) -> uuid.UUID:
    """The user's row, created with what we know if Clerk's webhook has not arrived yet."""
    return await repository.insert_stub(session, clerk_id, **fields)


async def sync_from_clerk(
    session: AsyncSession, clerk_id: str, fields: dict[str, Any], clerk_updated_at: datetime
) -> bool:
    """Apply Clerk's version of the user unless ours is newer; True if applied."""
    return (
        await repository.upsert_from_clerk(session, clerk_id, fields, clerk_updated_at) is not None
    )


async def delete(session: AsyncSession, clerk_id: str, storage: Storage) -> bool:
    user_id = await repository.delete_by_clerk_id(session, clerk_id)
    if user_id is None:
        return False
    file_storage.remove_user_files_after_commit(session, storage, user_id)
    return True
