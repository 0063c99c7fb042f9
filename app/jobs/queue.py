"""The job queue: procrastinate on the same PostgreSQL.

Domains declare their jobs on a procrastinate `Blueprint` in their own `tasks.py` and list
its factory in `TASK_BLUEPRINTS`; `create_job_queue` assembles them into one App. A job
takes ids, not objects, sets the tenant for each organization it touches, and is safe to
run twice.

Every worker keeps a heartbeat, and the jobs of a worker silent for WORKER_STALLED_SECONDS
run again (`app/jobs/stalled.py`).

Workers connect as the application role, like the API: row-level security holds for jobs too.
`ajc worker` runs one (scale by adding workers on more machines); `ajc serve` runs one in
process unless RUN_WORKER_IN_PROCESS is off.
"""

from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import procrastinate

from app.jobs import stalled
from app.observability import jobs as observed_jobs
from app.observability import tracing

BlueprintFactory = Callable[[], procrastinate.Blueprint]


def _blueprints() -> list[tuple[str, BlueprintFactory]]:
    from app.budgets import tasks as budget_tasks
    from app.conversations import tasks as conversation_tasks
    from app.knowledge import tasks as knowledge_tasks
    from app.runs import tasks as run_tasks

    return [
        (run_tasks.NAMESPACE, run_tasks.blueprint),
        (knowledge_tasks.NAMESPACE, knowledge_tasks.blueprint),
        (conversation_tasks.NAMESPACE, conversation_tasks.blueprint),
        (budget_tasks.NAMESPACE, budget_tasks.blueprint),
    ]


# (namespace, blueprint factory) of every domain's jobs: a factory, because procrastinate
# renames a blueprint's tasks when an app takes them, so each app needs its own.
TASK_BLUEPRINTS: list[tuple[str, BlueprintFactory]] = _blueprints()


def to_libpq_url(url: str) -> str:
    """procrastinate speaks psycopg: the same database, in libpq's URL form."""
    parts = urlsplit(url)
    query = parts.query.replace("ssl=", "sslmode=")
    return urlunsplit(("postgresql", parts.netloc, parts.path, query, parts.fragment))


def create_job_queue(database_url: str, stalled_seconds: float = 30.0) -> procrastinate.App:
    """`stalled_seconds`: WORKER_STALLED_SECONDS (its default here too, for tests)."""
    queue = procrastinate.App(
        # procrastinate's pool checks connections at checkout (its default), like the API's
        # pre-ping: a connection that died with a database restart is replaced.
        connector=procrastinate.PsycopgConnector(conninfo=to_libpq_url(database_url)),
        worker_defaults={
            **stalled.worker_options(stalled_seconds),
            # Around every job: its duration for /metrics, and a span when tracing is on.
            "worker_middleware": [observed_jobs.measure_job, *tracing.job_middlewares()],
        },
    )
    for namespace, make_blueprint in TASK_BLUEPRINTS:
        queue.add_tasks_from(make_blueprint(), namespace=namespace)
    queue.add_tasks_from(stalled.blueprint(stalled_seconds), namespace=stalled.NAMESPACE)
    return queue
