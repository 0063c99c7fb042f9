from app.core.errors import Conflict, NotFound, TooManyRequests, UnprocessableContent


class BudgetNotFound(NotFound):
    problem = "budget-not-found"
    title = "Budget not found"


class BudgetExists(Conflict):
    problem = "budget-exists"
    title = "Budget exists"


class NotAMember(UnprocessableContent):
    problem = "not-a-member"
    title = "Not a member"


class BudgetExceeded(TooManyRequests):
    """The call does not fit under a hard limit: what it may cost at most (its input and
    the least output worth asking for) is more than the window has left."""

    problem = "budget-exceeded"
    title = "Budget exceeded"


class ModelUnpriced(Conflict):
    """Under a cost budget, a model without a price cannot be bounded: refused (fail
    closed) until an admin gives it a price."""

    problem = "model-unpriced"
    title = "Model has no price"
