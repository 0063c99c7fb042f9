"""Admission of runs: a process streams at most RUN_MAX_CONCURRENT at once; beyond that a run
is refused at the door with 503 problem+json and Retry-After.

At the door means an ASGI middleware, ahead of routing, dependencies, authentication and the
database: a refusal costs a counter and a small JSON body. It matters under a burst. Every
refusal takes its turn on the same event loop as the first bytes of the admitted runs, and
`bench/bench_streams.py` (500 runs opened at once) measured a refusal through the route
stack at about 1 ms. A few hundred of them came before every admitted run's first byte.

An admitted request carries its place to the route in the scope's state (`Admitted`). The
run takes the place over when it starts (`RunRegistry.add`) and gives it back when its task
ends. A request that ends without starting a run (bad input, an unknown agent, a failed
commit) gives it back when it ends.
"""

import re
from typing import Annotated

from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.middleware import refuse
from app.core.raises import raises
from app.observability import metrics
from app.runs.errors import RunsAtCapacity
from app.runs.executor import Admission, RunRegistry

# What a refused run is told: runs last seconds to minutes, a place frees up often.
RETRY_AFTER_SECONDS = 2
# POST /agents/{agent_id}/runs, POST /agents/{agent_id}/quick-tasks/{task_id}/runs and
# CopilotKit's POST /copilotkit/agent/{agent_id}/run.
RUN_PATH = re.compile(
    r"^(?:/agents/[^/]+/(?:quick-tasks/[^/]+/)?runs|/copilotkit/agent/[^/]+/run)$"
)
STATE_KEY = "run_admission"


class RunAdmissionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not RUN_PATH.match(route_path(scope))
        ):
            await self.app(scope, receive, send)
            return
        registry: RunRegistry = scope["app"].state.run_registry
        admission = registry.admit()
        if admission is None:
            metrics.RUNS_REFUSED.inc()
            await refuse(
                scope,
                send,
                RunsAtCapacity.status_code,
                RunsAtCapacity.problem,
                RunsAtCapacity.title,
                "This server is streaming as many runs as it can; retry in "
                f"{RETRY_AFTER_SECONDS} s.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            return
        metrics.RUNS_ADMITTED.inc()
        scope.setdefault("state", {})[STATE_KEY] = admission
        try:
            await self.app(scope, receive, send)
        finally:
            if not admission.taken_by_run:
                admission.release()


def route_path(scope: Scope) -> str:
    """The path the router matches: without the prefix the service is mounted under behind a
    proxy (`root_path`, which uvicorn puts in front of the path), as Starlette's routing does."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path) :]
    return path


@raises(RunsAtCapacity)  # at the door, by the middleware that hands this place over
async def admission(request: Request) -> Admission:
    """`async`: a plain `def` dependency would run in FastAPI's thread pool."""
    admission: Admission = getattr(request.state, STATE_KEY)
    return admission


Admitted = Annotated[Admission, Depends(admission)]
