from fastapi import APIRouter, Request

from app.core.db import SessionDep, TransactionalRoute
from app.webhooks import service
from app.webhooks.errors import WebhooksNotConfigured
from app.webhooks.schemas import ClerkEvent, WebhookReceipt

router = APIRouter(prefix="/webhooks", tags=["webhooks"], route_class=TransactionalRoute)


# The route reads the raw body (the signature covers its bytes), so its body and Svix's
# headers are documented here rather than parsed by FastAPI.
_SVIX_HEADERS = [
    {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
    for name in service.SVIX_HEADERS
]
_CLERK_EVENT_BODY = {
    "required": True,
    "content": {"application/json": {"schema": ClerkEvent.model_json_schema()}},
}


@router.post(
    "/clerk",
    openapi_extra={"parameters": _SVIX_HEADERS, "requestBody": _CLERK_EVENT_BODY},
)
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
        request.app.state.storage,
    )
