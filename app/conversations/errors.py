from app.core.errors import Conflict, Forbidden, NotFound


class ConversationNotFound(NotFound):
    problem = "conversation-not-found"
    title = "Conversation not found"


class ConversationReadOnly(Forbidden):
    problem = "conversation-read-only"
    title = "Conversation is read-only"


class ThreadOfAnotherAgent(Conflict):
    problem = "thread-of-another-agent"
    title = "Thread belongs to another agent"
