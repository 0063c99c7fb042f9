"""`GET /metrics`: who may read it, and what it answers."""

import asyncio
import hmac
import ipaddress
import logging

from app.core.db import Database
from app.core.settings import Settings
from app.observability import metrics, repository
from app.observability.errors import MetricsFromLoopbackOnly, MetricsTokenRequired

logger = logging.getLogger(__name__)

# The queue's counts are read at each scrape; a database that does not answer in time leaves
# them out of that scrape, rather than leaving the scraper without the rest.
JOB_COUNTS_TIMEOUT_SECONDS = 2.0


async def scrape(
    settings: Settings, database: Database, authorization: str | None, client: str | None
) -> bytes:
    """Every metric in Prometheus' text format, for a caller with METRICS_TOKEN, or for any
    loopback client when it is unset."""
    _check_access(settings, authorization, client)
    read_now = []
    try:
        async with asyncio.timeout(JOB_COUNTS_TIMEOUT_SECONDS):
            async with database.acquire_outside_request() as connection:
                counts = await repository.count_jobs(connection)
        read_now.append(metrics.job_queue_family(counts))
    except Exception:
        # Whatever the database does (down, pool exhausted, slow), the scrape answers: the
        # metrics are how an operator sees that.
        logger.warning("job queue not counted for /metrics", exc_info=True)
    return await asyncio.to_thread(metrics.exposition, read_now)


def _check_access(settings: Settings, authorization: str | None, client: str | None) -> None:
    # An empty METRICS_TOKEN (`METRICS_TOKEN=` in a compose file) is no token: it would let
    # in any `Authorization: Bearer ` header.
    expected = settings.metrics_token.get_secret_value().encode() if settings.metrics_token else b""
    if expected:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise MetricsTokenRequired(
                "Send METRICS_TOKEN as `Authorization: Bearer <token>`.",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        return
    if not _is_loopback(client):
        raise MetricsFromLoopbackOnly(
            "METRICS_TOKEN is unset, so /metrics answers only on this machine (loopback): set "
            "it to scrape from elsewhere."
        )


def _is_loopback(client: str | None) -> bool:
    """The client's address as uvicorn gives it: behind a trusted proxy (uvicorn's
    FORWARDED_ALLOW_IPS, loopback by default) the one in X-Forwarded-For, so a request that a
    proxy on this machine forwards from elsewhere is not from loopback."""
    try:
        return client is not None and ipaddress.ip_address(client).is_loopback
    except ValueError:
        return False
