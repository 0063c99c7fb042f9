from app.core.errors import TooManyRequests


class RateLimited(TooManyRequests):
    problem = "rate-limited"
    title = "Rate limit exceeded"
