from app.core.errors import Forbidden, Unauthorized


class MetricsTokenRequired(Unauthorized):
    problem = "metrics-token-required"
    title = "Metrics token required"


class MetricsFromLoopbackOnly(Forbidden):
    problem = "metrics-loopback-only"
    title = "Metrics answer loopback clients only"
