from app.core.errors import Forbidden, NotFound


class ConversationNotFound(NotFound):
    problem = "conversation-not-found"
    title = "Conversation not found"


class ConversationReadOnly(Forbidden):
    problem = "conversation-read-only"
    title = "Conversation is read-only"
