"""From a verified identity (Clerk's ids) to our rows, provisioning what is missing.

A first request whose token names a user or organization that no webhook has brought yet
creates them from the claims; the webhooks fill in the rest, whichever comes first. The
resolution is cached per identity until the token expires, so the common request costs no
query here; a cache entry never outlives the token that proved it.
"""

import time
import uuid
from collections import OrderedDict

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.errors import InvalidToken
from app.auth.identity import Identity
from app.core.db import RequestUnitOfWork, after_commit
from app.organizations import service as organizations_service
from app.users import service as users_service
from app.webhooks import service as webhooks_service

CACHE_SIZE = 10_000

Resolved = tuple[uuid.UUID, uuid.UUID | None]


class IdentityCache:
    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[Identity, tuple[Resolved, float]] = OrderedDict()

    def get(self, identity: Identity) -> Resolved | None:
        entry = self._entries.get(identity)
        if entry is None or entry[1] <= time.time():
            return None
        self._entries.move_to_end(identity)
        return entry[0]

    def put(self, identity: Identity, resolved: Resolved, expires_at: float) -> None:
        self._entries[identity] = (resolved, expires_at)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)


async def resolve_identity(
    work: RequestUnitOfWork, identity: Identity, cache: IdentityCache, expires_at: float
) -> Resolved:
    """Our user (and organization) ids for the identity; the request's unit of work is left
    scoped to them (row-level security), whichever path found them. A cached identity opens
    no transaction: the tenant goes with the route's first statement."""
    cached = cache.get(identity)
    if cached is not None:
        await work.scope(cached[1], cached[0])
        return cached
    session = await work.session()
    user_id = await users_service.find_id(session, identity.clerk_user_id)
    if user_id is None:
        await _refuse_if_deleted(session, "user", identity.clerk_user_id)
        user_id = await users_service.provision(session, identity.clerk_user_id)
    organization_id = None
    if identity.clerk_organization_id is not None and identity.role is not None:
        organization_id = await organizations_service.find_id(
            session, identity.clerk_organization_id
        )
        if organization_id is None:
            await _refuse_if_deleted(session, "organization", identity.clerk_organization_id)
            organization_id = await organizations_service.provision(
                session, identity.clerk_organization_id, slug=identity.organization_slug
            )
    await work.scope(organization_id, user_id)
    if organization_id is not None and identity.role is not None:
        await organizations_service.ensure_membership_role(
            session, organization_id, user_id, identity.role
        )
    resolved = (user_id, organization_id)
    # Only once committed: a cached id must name a row that exists.
    after_commit(session, lambda: cache.put(identity, resolved, expires_at))
    return resolved


async def _refuse_if_deleted(session: AsyncSession, kind: str, clerk_id: str) -> None:
    if await webhooks_service.is_deleted_in_clerk(session, kind, clerk_id):
        raise InvalidToken(f"This {kind} was deleted.")
