from app.core.errors import Conflict, UnprocessableContent


class StaleAgentState(Conflict):
    problem = "stale-agent-state"
    title = "Stale agent state"


class InvalidStatePatch(UnprocessableContent):
    problem = "invalid-state-patch"
    title = "Invalid JSON Patch"
