from app.core.errors import NotFound


class OrganizationNotFound(NotFound):
    problem = "organization-not-found"
    title = "Organization not found"
