from app.core.errors import Forbidden, Unauthorized


class InvalidToken(Unauthorized):
    problem = "invalid-token"
    title = "Invalid session token"


class MissingToken(Unauthorized):
    problem = "missing-token"
    title = "Missing session token"


class OrganizationRequired(Forbidden):
    problem = "organization-required"
    title = "Organization required"


class AdminRequired(Forbidden):
    problem = "admin-required"
    title = "Organization admin required"
