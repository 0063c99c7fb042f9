from app.core.errors import Conflict, Forbidden, NotFound, UnprocessableContent


class AgentNotFound(NotFound):
    problem = "agent-not-found"
    title = "Agent not found"


class AgentSlugTaken(Conflict):
    problem = "agent-slug-taken"
    title = "Agent slug taken"


class PlatformAgentReadOnly(Forbidden):
    problem = "platform-agent-read-only"
    title = "Platform agent is read-only"


class QuickTaskNotFound(NotFound):
    problem = "quick-task-not-found"
    title = "Quick task not found"


class QuickTaskNameTaken(Conflict):
    problem = "quick-task-name-taken"
    title = "Quick task name taken"


class MissingQuickTaskParameters(UnprocessableContent):
    problem = "missing-quick-task-parameters"
    title = "Missing quick task parameters"


class InvalidQuickTask(UnprocessableContent):
    problem = "invalid-quick-task"
    title = "Invalid quick task"
