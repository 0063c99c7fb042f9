"""Rate limits per user and per organization on the requests that cost the most (runs,
uploads, ingestions, searches), shared by every process of `ajc serve --workers N` through
PostgreSQL (`rate_limits`, GCRA: one row and one time per key, see repository.py).

The statement runs on a pooled driver connection of its own, in autocommit, not in the
request's transaction: there its row locks would be held until the request commits, so
one organization's concurrent uploads (or a run's whole preparation) would queue behind
each other on the organization's key. On its own, a lock lasts one statement. A refused
request therefore spends nothing; an accepted one that fails later keeps its count, as a
request that was made.
"""

import math
import uuid
from datetime import timedelta
from enum import StrEnum

from app.auth.identity import OrganizationPrincipal
from app.core.db import Database
from app.core.settings import Settings
from app.limits import repository
from app.limits.errors import RateLimited
from app.limits.repository import Allowance


class RateLimitKind(StrEnum):
    runs = "runs"
    uploads = "uploads"
    ingestions = "ingestions"
    searches = "searches"


def _counts(settings: Settings, kind: RateLimitKind) -> tuple[int, int]:
    """(per user, per organization)."""
    match kind:
        case RateLimitKind.runs:
            return settings.rate_limit_runs_per_user, settings.rate_limit_runs_per_organization
        case RateLimitKind.uploads:
            return (
                settings.rate_limit_uploads_per_user,
                settings.rate_limit_uploads_per_organization,
            )
        case RateLimitKind.ingestions:
            return (
                settings.rate_limit_ingestions_per_user,
                settings.rate_limit_ingestions_per_organization,
            )
        case RateLimitKind.searches:
            return (
                settings.rate_limit_searches_per_user,
                settings.rate_limit_searches_per_organization,
            )


def user_key(kind: RateLimitKind, user_id: uuid.UUID) -> str:
    return f"{kind}:user:{user_id}"


def organization_key(kind: RateLimitKind, organization_id: uuid.UUID) -> str:
    return f"{kind}:org:{organization_id}"


def allowances(
    settings: Settings, principal: OrganizationPrincipal, kinds: tuple[RateLimitKind, ...]
) -> list[Allowance]:
    period = timedelta(seconds=settings.rate_limit_period_seconds)
    found = []
    for kind in kinds:
        per_user, per_organization = _counts(settings, kind)
        found.append(Allowance(user_key(kind, principal.user_id), per_user, period))
        found.append(
            Allowance(organization_key(kind, principal.organization_id), per_organization, period)
        )
    return found


async def enforce(
    database: Database,
    settings: Settings,
    principal: OrganizationPrincipal,
    *kinds: RateLimitKind,
) -> None:
    """Count the request against the caller's and their organization's limits of each kind,
    or refuse it (429 with Retry-After) and count it nowhere."""
    if not settings.rate_limits_enabled:
        return
    async with database.acquire_outside_request() as connection:
        refusal = await repository.take(connection, allowances(settings, principal, kinds))
    if refusal is None:
        return
    kind, scope, _ = refusal.key.split(":", 2)
    applies_to = "user" if scope == "user" else "organization"
    retry_after = max(1, math.ceil(refusal.retry_after_seconds))
    whose = "you" if applies_to == "user" else "your organization"
    raise RateLimited(
        f"Too many {kind} for {whose}: retry in {retry_after} s.",
        headers={"Retry-After": str(retry_after)},
        limit=kind,
        applies_to=applies_to,
    )
