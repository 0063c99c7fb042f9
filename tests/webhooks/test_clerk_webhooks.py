"""Clerk's webhooks as Svix delivers them: signed, at least once, in any order."""

import copy
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations.models import Conversation
from app.core.db import set_tenant
from app.organizations.models import Membership, Organization
from app.users.models import User
from app.webhooks.models import WebhookEvent
from tests.clerk import fixture, signed_webhook
from tests.factories import make_tenant

USER = "user_2x9bXkTestUserA"
ORG = "org_2x9bXkTestOrgA"


async def deliver(
    client: httpx.AsyncClient, payload: dict[str, Any], svix_id: str | None = None, **kwargs: Any
) -> httpx.Response:
    body, headers = signed_webhook(payload, svix_id, **kwargs)
    return await client.post("/webhooks/clerk", content=body, headers=headers)


async def user_row(session: AsyncSession, clerk_id: str = USER) -> User | None:
    return await session.scalar(
        select(User).where(User.clerk_id == clerk_id).execution_options(populate_existing=True)
    )


async def org_row(session: AsyncSession, clerk_id: str = ORG) -> Organization | None:
    return await session.scalar(
        select(Organization)
        .where(Organization.clerk_id == clerk_id)
        .execution_options(populate_existing=True)
    )


async def membership_role(session: AsyncSession) -> str | None:
    org, user = await org_row(session), await user_row(session)
    if org is None or user is None:
        return None
    await set_tenant(session, org.id, user.id)
    role: str | None = await session.scalar(
        select(Membership.role).where(
            Membership.organization_id == org.id, Membership.user_id == user.id
        )
    )
    return role


async def test_user_created_then_updated_mirrors_the_primary_email(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    assert (await deliver(client, fixture("user.created"))).status_code == 200
    updated = fixture("user.updated")
    assert (await deliver(client, updated)).status_code == 200
    user = await user_row(session)
    assert user is not None
    primary = next(
        address["email_address"]
        for address in updated["data"]["email_addresses"]
        if address["id"] == updated["data"]["primary_email_address_id"]
    )
    assert user.email == primary
    assert user.first_name == updated["data"]["first_name"]


async def test_the_same_svix_id_twice_changes_nothing_the_second_time(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    first = await deliver(client, fixture("organization.created"), svix_id="msg_same")
    renamed = fixture("organization.created")
    renamed["data"]["name"] = "Changed by a replay"
    renamed["data"]["updated_at"] += 1
    second = await deliver(client, renamed, svix_id="msg_same")
    assert first.json()["outcome"] == "processed"
    assert second.json()["duplicate"] is True
    org = await org_row(session)
    assert org is not None and org.name == fixture("organization.created")["data"]["name"]
    count = await session.scalar(
        select(func.count()).select_from(WebhookEvent).where(WebhookEvent.svix_id == "msg_same")
    )
    assert count == 1


async def test_an_older_update_does_not_overwrite_a_newer_one(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await deliver(client, fixture("organization.updated"))
    stale = await deliver(client, fixture("organization.created"))
    assert stale.json()["outcome"] == "ignored"
    org = await org_row(session)
    assert org is not None and org.name == fixture("organization.updated")["data"]["name"]


async def test_membership_before_its_organization_and_user_converges(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    for event in ("organizationMembership.updated", "user.created", "organization.updated"):
        assert (await deliver(client, fixture(event))).status_code == 200
    org, user = await org_row(session), await user_row(session)
    assert org is not None and org.name == fixture("organization.updated")["data"]["name"]
    assert user is not None and user.email is not None
    assert await membership_role(session) == "admin"

    stale = await deliver(client, fixture("organizationMembership.created"))
    assert stale.status_code == 200
    assert await membership_role(session) == "admin"  # the older `member` did not win


async def test_membership_deleted_removes_it_and_a_late_update_does_not_resurrect_it(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await deliver(client, fixture("organizationMembership.created"))
    assert await membership_role(session) == "member"
    await deliver(client, fixture("organizationMembership.deleted"))
    assert await membership_role(session) is None
    late = await deliver(client, fixture("organizationMembership.updated"))
    assert late.json()["outcome"] == "ignored"
    assert await membership_role(session) is None


async def test_deleted_then_late_updated_user_stays_deleted(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await deliver(client, fixture("user.created"))
    await deliver(client, fixture("user.deleted"))
    assert await user_row(session) is None
    late = await deliver(client, fixture("user.updated"))
    assert late.json()["outcome"] == "ignored"
    assert await user_row(session) is None


async def test_deleting_a_user_removes_their_conversations_and_files_in_every_organization(
    client: httpx.AsyncClient, session: AsyncSession, settings: Any
) -> None:
    tenant = await make_tenant(session)
    other = await make_tenant(session)
    folder = Path(settings.workspaces_dir) / str(tenant.org.id) / str(tenant.user.id)
    (folder / "files" / "uploads").mkdir(parents=True)
    (folder / "files" / "uploads" / "a.txt").write_text("bytes")
    deleted = copy.deepcopy(fixture("user.deleted"))
    deleted["data"]["id"] = tenant.user.clerk_id
    assert (await deliver(client, deleted)).json()["outcome"] == "processed"

    await set_tenant(session, tenant.org.id)
    assert await session.scalar(select(func.count()).select_from(Conversation)) == 0
    for table in ("messages", "files", "agent_states", "memberships"):
        assert await session.scalar(text(f"SELECT count(*) FROM {table}")) == 0, table
    # What the user made for the organization stays with it.
    owned = text("SELECT count(*) FROM agents WHERE owner_organization_id = :org")
    assert await session.scalar(owned, {"org": tenant.org.id}) == 1
    assert not folder.exists()
    await set_tenant(session, other.org.id)
    assert await session.scalar(select(func.count()).select_from(Conversation)) == 1


async def test_deleting_an_organization_removes_all_its_rows_and_files(
    client: httpx.AsyncClient, session: AsyncSession, settings: Any
) -> None:
    tenant = await make_tenant(session)
    folder = Path(settings.workspaces_dir) / str(tenant.org.id)
    folder.mkdir(parents=True)
    deleted = copy.deepcopy(fixture("organization.deleted"))
    deleted["data"]["id"] = tenant.org.clerk_id
    assert (await deliver(client, deleted)).json()["outcome"] == "processed"
    await set_tenant(session, tenant.org.id)
    for table in ("conversations", "messages", "files", "embeddings", "memberships"):
        assert await session.scalar(text(f"SELECT count(*) FROM {table}")) == 0, table
    assert await user_row(session, tenant.user.clerk_id) is not None
    assert not folder.exists()


async def test_other_event_types_are_recorded_and_ignored(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    response = await deliver(client, fixture("session.created"), svix_id="msg_session")
    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"
    event = await session.scalar(select(WebhookEvent).where(WebhookEvent.svix_id == "msg_session"))
    assert event is not None and event.event_type == "session.created"
    assert event.processed_at is not None


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param("wrong-secret", id="wrong-secret"),
        pytest.param("stale-timestamp", id="stale-timestamp"),
        pytest.param("edited-body", id="edited-body"),
    ],
)
async def test_bad_signatures_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, session: AsyncSession, tamper: str
) -> None:
    payload = fixture("user.created")
    if tamper == "wrong-secret":
        body, headers = signed_webhook(payload, secret="whsec_" + "A" * 32)
    elif tamper == "stale-timestamp":
        body, headers = signed_webhook(payload, sent_at=datetime.now(UTC) - timedelta(hours=1))
    else:
        body, headers = signed_webhook(payload)
        body = body.replace(b"Ada", b"Eve")
    response = await client.post("/webhooks/clerk", content=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert await user_row(session) is None
    assert await session.scalar(select(func.count()).select_from(WebhookEvent)) == 0


@pytest.mark.parametrize("signature", ["garbage", "v1", "v1,abc v1", "v1,!!!", "\t"])
async def test_a_malformed_signature_is_refused_and_svix_retry_still_applies(
    client: httpx.AsyncClient, session: AsyncSession, signature: str
) -> None:
    svix_id = f"msg_{uuid.uuid4().hex}"
    body, headers = signed_webhook(fixture("user.created"), svix_id)
    refused = await client.post(
        "/webhooks/clerk", content=body, headers={**headers, "svix-signature": signature}
    )
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/invalid-webhook-signature"
    assert await session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
    # Svix retries the same message with its real signature: it is applied, not a duplicate.
    retried = await client.post("/webhooks/clerk", content=body, headers=headers)
    assert retried.status_code == 200
    assert retried.json()["duplicate"] is False
    assert await user_row(session) is not None


async def test_a_body_that_is_not_utf8_is_refused(client: httpx.AsyncClient) -> None:
    body, headers = signed_webhook(fixture("user.created"))
    response = await client.post("/webhooks/clerk", content=b"\xff\xfe" + body, headers=headers)
    assert response.status_code == 401


async def test_missing_svix_headers_are_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/webhooks/clerk", json=fixture("user.created"), headers={"svix-id": f"msg_{uuid.uuid4()}"}
    )
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/missing-webhook-headers"


async def test_a_deleted_users_token_is_refused(client: httpx.AsyncClient, fake_clerk: Any) -> None:
    headers = fake_clerk.headers(USER, ORG, "admin")
    assert (await client.get("/me", headers=headers)).status_code == 200
    await deliver(client, fixture("user.deleted"))
    refused = await client.get("/me", headers=headers)
    assert refused.status_code == 401
    # A new token for the deleted user does not bring the user back either.
    again = await client.get("/me", headers=fake_clerk.headers(USER, ORG, "admin"))
    assert again.status_code == 401
