from app.core.errors import NotFound


class AgentNotFound(NotFound):
    problem = "agent-not-found"
    title = "Agent not found"
