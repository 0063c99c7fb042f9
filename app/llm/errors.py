from app.core.errors import Conflict, Forbidden, NotFound, UnprocessableContent


class ModelNotFound(NotFound):
    problem = "model-not-found"
    title = "Model not found"


class ModelNameTaken(Conflict):
    problem = "model-name-taken"
    title = "Model name taken"


class PlatformModelReadOnly(Forbidden):
    problem = "platform-model-read-only"
    title = "Platform model is read-only"


class PriceNotInTheFuture(UnprocessableContent):
    problem = "price-not-in-the-future"
    title = "A price starts now or later"


class InvalidModel(UnprocessableContent):
    problem = "invalid-model"
    title = "Invalid model"


class ModelUnavailable(Conflict):
    """The agent's model cannot answer now (inactive, gone, not a chat model)."""

    problem = "model-unavailable"
    title = "Model unavailable"


class ModelInUse(Conflict):
    problem = "model-in-use"
    title = "Model in use"
