from app.core.errors import Conflict, NotFound, ServiceUnavailable, UnprocessableContent


class StaleAgentState(Conflict):
    problem = "stale-agent-state"
    title = "Stale agent state"


class InvalidStatePatch(UnprocessableContent):
    problem = "invalid-state-patch"
    title = "Invalid JSON Patch"


class RunsAtCapacity(ServiceUnavailable):
    problem = "runs-at-capacity"
    title = "Too many runs in progress"


class RunNotFound(NotFound):
    problem = "run-not-found"
    title = "Run not found"


class DuplicateMessageIds(UnprocessableContent):
    problem = "duplicate-message-ids"
    title = "Duplicate message ids"
