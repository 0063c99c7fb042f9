"""Who is calling: the `Principal` a route receives, never the raw claims.

Clerk session tokens come in two formats: v1 (`org_id`, `org_role` like `org:admin`,
`org_slug`) and v2 (`"v": 2`, compact `"o": {"id", "rol", "slg"}` with `rol` like `admin`).
Both become one `Identity` (Clerk's ids), which `auth.service` resolves to our rows.
"""

from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request

from app.auth import service
from app.auth.errors import AdminRequired, InvalidToken, MissingToken, OrganizationRequired
from app.auth.identity import Identity, OrganizationPrincipal, Principal
from app.core.db import request_unit_of_work
from app.core.raises import raises
from app.organizations.models import MembershipRole


def identity_from_claims(claims: dict[str, Any]) -> Identity:
    if claims.get("v") == 2:
        organization = claims.get("o") or {}
        org_id, role, slug = (
            organization.get("id"),
            organization.get("rol"),
            organization.get("slg"),
        )
    else:
        org_id, role, slug = claims.get("org_id"), claims.get("org_role"), claims.get("org_slug")
    if not isinstance(claims.get("sub"), str):
        raise InvalidToken("The token names no user.")
    if org_id is not None and not isinstance(org_id, str):
        raise InvalidToken("The token's organization is malformed.")
    return Identity(
        clerk_user_id=claims["sub"],
        clerk_organization_id=org_id,
        role=_role(role) if org_id else None,
        organization_slug=slug if isinstance(slug, str) else None,
    )


def _role(clerk_role: object) -> MembershipRole:
    """`org:admin` (v1) and `admin` (v2) are admins; every other role, custom ones included,
    is a member."""
    if isinstance(clerk_role, str) and clerk_role.removeprefix("org:") == "admin":
        return MembershipRole.admin
    return MembershipRole.member


def session_token(request: Request) -> str:
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("Send the session token as `Authorization: Bearer <token>`.")
        return token.strip()
    cookie = request.cookies.get("__session")
    if cookie:
        return cookie
    raise MissingToken("Sign in: no `Authorization: Bearer` header or `__session` cookie.")


@raises(InvalidToken)  # the verifier kept on app.state, which the reading cannot follow
async def get_principal(request: Request) -> Principal:
    claims = await request.app.state.token_verifier.verify(session_token(request))
    identity = identity_from_claims(claims)
    # Also scopes the request's transaction to the organization and user (row-level security).
    user_id, organization_id = await service.resolve_identity(
        request_unit_of_work(request), identity, request.app.state.identity_cache, claims["exp"]
    )
    # For the request's trace, when tracing is on (app/observability/tracing.py).
    request.state.organization_id = organization_id
    if organization_id is None or identity.clerk_organization_id is None or identity.role is None:
        return Principal(user_id, identity.clerk_user_id, None, None, None)
    return OrganizationPrincipal(
        user_id,
        identity.clerk_user_id,
        organization_id,
        identity.clerk_organization_id,
        identity.role,
    )


async def get_organization_principal(
    principal: Annotated[Principal, Depends(get_principal)],
) -> OrganizationPrincipal:
    if not isinstance(principal, OrganizationPrincipal):
        raise OrganizationRequired(
            "Select an organization: this request acts for one, and the token names none."
        )
    return principal


async def get_admin_principal(
    principal: Annotated[OrganizationPrincipal, Depends(get_organization_principal)],
) -> OrganizationPrincipal:
    if not principal.is_admin:
        raise AdminRequired("Only the organization's admins may do this.")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
OrganizationPrincipalDep = Annotated[OrganizationPrincipal, Depends(get_organization_principal)]
AdminDep = Annotated[OrganizationPrincipal, Depends(get_admin_principal)]


async def get_caller_connection(request: Request, principal: PrincipalDep) -> asyncpg.Connection:
    """The request's driver connection (`RequestUnitOfWork`), scoped to the caller: taken
    after the principal, so its transaction begins with the tenant, in one round trip."""
    return await request_unit_of_work(request).connection()


CallerConnectionDep = Annotated[asyncpg.Connection, Depends(get_caller_connection)]
