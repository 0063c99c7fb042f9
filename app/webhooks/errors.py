from app.core.errors import BadRequest, ServiceUnavailable, Unauthorized


class MissingWebhookHeaders(BadRequest):
    problem = "missing-webhook-headers"
    title = "Missing webhook headers"


class InvalidWebhookSignature(Unauthorized):
    problem = "invalid-webhook-signature"
    title = "Invalid webhook signature"


class WebhooksNotConfigured(ServiceUnavailable):
    problem = "webhooks-not-configured"
    title = "Webhooks not configured"
