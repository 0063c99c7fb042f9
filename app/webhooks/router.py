from fastapi import APIRouter, Request

from app.core.db import SessionDep, TransactionalRoute
from app.webhooks import service
from app.webhooks.errors import WebhooksNotConfigured
from app.webhooks.schemas import WebhookReceipt

router = APIRouter(prefix="/webhooks", tags=["webhooks"], route_class=TransactionalRoute)


@router.post("/clerk")
async def receive_clerk_webhook(request: Request, session: SessionDep) -> WebhookReceipt:
    """Clerk's user, organization and membership events, verified with Svix on the raw body."""
    secret = request.app.state.settings.clerk_webhook_signing_secret
    if not secret:
        raise WebhooksNotConfigured("Set CLERK_WEBHOOK_SIGNING_SECRET to receive Clerk webhooks.")
    event = service.verify(secret, await request.body(), dict(request.headers))
    return await service.receive(
        session,
        request.headers["svix-id"],
        event,
        request.app.state.settings.workspaces_dir,
    )
