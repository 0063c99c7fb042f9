"""Clerk's webhooks, delivered by Svix: at least once, in any order.

- Idempotent: each delivery is recorded by its `svix-id` first; a redelivery of an event that
  was processed or ignored changes nothing. A failed one is processed again.
- Convergent: `created` and `updated` apply only if not older than what is stored (Clerk's
  `updated_at`); a membership that arrives before its organization or user creates them from
  what it carries; a `deleted` is remembered here (a processed `*.deleted` event is the
  tombstone), so a late `updated` cannot bring the object back.
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from svix.webhooks import Webhook, WebhookVerificationError

from app.core.errors import BadRequest
from app.files.storage import Storage
from app.organizations import service as organizations_service
from app.organizations.models import MembershipRole
from app.users import service as users_service
from app.webhooks import repository
from app.webhooks.errors import InvalidWebhookSignature, MissingWebhookHeaders
from app.webhooks.models import WebhookOutcome
from app.webhooks.schemas import (
    ClerkDeletedObject,
    ClerkEvent,
    ClerkMembership,
    ClerkOrganization,
    ClerkUser,
    WebhookReceipt,
    from_epoch_ms,
)

logger = logging.getLogger(__name__)

SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")


class EventSkipped(Exception):
    """The event is stale or about a deleted object: recorded as ignored."""


def verify(secret: str, body: bytes, headers: dict[str, str]) -> ClerkEvent:
    missing = [name for name in SVIX_HEADERS if not headers.get(name)]
    if missing:
        raise MissingWebhookHeaders(f"Missing {', '.join(missing)}.")
    try:
        Webhook(secret).verify(body, headers)
    except (WebhookVerificationError, ValueError) as exc:
        # svix raises ValueError (and its subclasses binascii.Error, UnicodeDecodeError) for a
        # signature header without its `v1,` prefix, bad base64, or a body that is not UTF-8:
        # all of them are a delivery we cannot verify, not a fault of ours.
        raise InvalidWebhookSignature(
            "The signature is malformed or does not match, or its timestamp is outside the "
            "tolerance."
        ) from exc
    try:
        return ClerkEvent.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise BadRequest("The webhook body is not a Clerk event.") from exc


async def is_deleted_in_clerk(session: AsyncSession, kind: str, clerk_id: str) -> bool:
    """`kind` is Clerk's object name: user, organization, organizationMembership."""
    return await repository.was_deleted(session, clerk_id, f"{kind}.deleted")


async def receive(
    session: AsyncSession, svix_id: str, event: ClerkEvent, storage: Storage
) -> WebhookReceipt:
    object_id = event.data.get("id")
    event_id = await repository.record(
        session,
        svix_id,
        event.type,
        object_id if isinstance(object_id, str) else None,
        event.model_dump(mode="json"),
    )
    if event_id is None:
        return WebhookReceipt(svix_id=svix_id, outcome="duplicate", duplicate=True)
    handler = HANDLERS.get(event.type)
    outcome = WebhookOutcome.ignored
    if handler is not None:
        try:
            async with session.begin_nested():
                await handler(session, event.data, storage)
            outcome = WebhookOutcome.processed
        except EventSkipped as skipped:
            logger.info("webhook skipped", extra={"svix_id": svix_id, "reason": str(skipped)})
        except ValidationError as exc:
            raise BadRequest(f"The {event.type} payload is not what Clerk sends.") from exc
    await repository.mark(session, event_id, outcome, datetime.now(UTC))
    return WebhookReceipt(svix_id=svix_id, outcome=outcome)


async def _user_upserted(session: AsyncSession, data: dict[str, Any], _: Storage) -> None:
    user = ClerkUser.model_validate(data)
    if await is_deleted_in_clerk(session, "user", user.id):
        raise EventSkipped("user deleted")
    fields = {
        "email": user.primary_email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "image_url": user.image_url,
    }
    if not await users_service.sync_from_clerk(
        session, user.id, fields, from_epoch_ms(user.updated_at)
    ):
        raise EventSkipped("stale user")


async def _user_deleted(session: AsyncSession, data: dict[str, Any], storage: Storage) -> None:
    await users_service.delete(session, ClerkDeletedObject.model_validate(data).id, storage)


async def _organization_upserted(session: AsyncSession, data: dict[str, Any], _: Storage) -> None:
    organization = ClerkOrganization.model_validate(data)
    if await is_deleted_in_clerk(session, "organization", organization.id):
        raise EventSkipped("organization deleted")
    if not await _sync_organization(session, organization):
        raise EventSkipped("stale organization")


async def _sync_organization(session: AsyncSession, organization: ClerkOrganization) -> bool:
    fields = {
        "name": organization.name,
        "slug": organization.slug,
        "image_url": organization.image_url,
    }
    return await organizations_service.sync_from_clerk(
        session, organization.id, fields, from_epoch_ms(organization.updated_at)
    )


async def _organization_deleted(
    session: AsyncSession, data: dict[str, Any], storage: Storage
) -> None:
    clerk_id = ClerkDeletedObject.model_validate(data).id
    await organizations_service.delete(session, clerk_id, storage)


async def _membership_upserted(session: AsyncSession, data: dict[str, Any], _: Storage) -> None:
    membership = ClerkMembership.model_validate(data)
    user = membership.public_user_data
    for kind, clerk_id in (
        ("organizationMembership", membership.id),
        ("organization", membership.organization.id),
        ("user", user.user_id),
    ):
        if await is_deleted_in_clerk(session, kind, clerk_id):
            raise EventSkipped(f"{kind} deleted")
    # The membership carries its organization (with its own updated_at) and the user's
    # public data: enough to create either if its own event has not arrived yet.
    await _sync_organization(session, membership.organization)
    organization_id = await organizations_service.find_id(session, membership.organization.id)
    assert organization_id is not None
    user_id = await users_service.provision(
        session,
        user.user_id,
        first_name=user.first_name,
        last_name=user.last_name,
        image_url=user.image_url,
    )
    role = (
        MembershipRole.admin
        if membership.role.removeprefix("org:") == "admin"
        else MembershipRole.member
    )
    await organizations_service.sync_membership_from_clerk(
        session, organization_id, user_id, membership.id, role, from_epoch_ms(membership.updated_at)
    )


async def _membership_deleted(session: AsyncSession, data: dict[str, Any], _: Storage) -> None:
    membership = ClerkMembership.model_validate(data)
    organization_id = await organizations_service.find_id(session, membership.organization.id)
    user_id = await users_service.find_id(session, membership.public_user_data.user_id)
    if organization_id is not None and user_id is not None:
        await organizations_service.delete_membership(session, organization_id, user_id)


HANDLERS = {
    "user.created": _user_upserted,
    "user.updated": _user_upserted,
    "user.deleted": _user_deleted,
    "organization.created": _organization_upserted,
    "organization.updated": _organization_upserted,
    "organization.deleted": _organization_deleted,
    "organizationMembership.created": _membership_upserted,
    "organizationMembership.updated": _membership_upserted,
    "organizationMembership.deleted": _membership_deleted,
}
