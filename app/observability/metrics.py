"""The service's Prometheus metrics, and the text `GET /metrics` answers with.

`ajc serve --workers N` runs N processes, and a scrape reaches one of them. In prometheus-
client's multiprocess mode each process writes its values to files of its own under
PROMETHEUS_MULTIPROC_DIR (which `ajc serve` makes for its workers before it starts them:
`app/observability/multiprocess.py`), and whichever process is scraped reads and sums all of
them: counters and histograms over every process that ran, the gauges of the moment (runs
active, pool connections) over the living ones (`livesum`). One process alone (`ajc serve`
with one worker, the tests) keeps them in memory, in the library's default registry.

The hot paths pay a dictionary lookup and an observation (about a microsecond; two in
multiprocess mode, a write to a shared memory map): the request histogram's label sets are
looked up once and kept, and a run's tokens are counted per write to its stream, not per
token.
"""

import os
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

# prometheus-client's own variable, which the library reads once, at import, to choose where
# values live; read the same way here so the exposition matches it. Not a setting: `ajc serve`
# sets it for the processes it starts.
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")

# Requests answered before routing (a run refused at the door, a body refused as too large)
# or by no route (404): one label value, so unknown paths cannot grow the label set.
UNROUTED = "(unrouted)"

REQUEST_DURATION = Histogram(
    "ajc_http_request_duration_seconds",
    "Time to answer a request, to the end of its body (a run's whole stream), by route "
    "template, method and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
RUNS_ACTIVE = Gauge(
    "ajc_runs_active",
    "Runs being streamed now (RUN_MAX_CONCURRENT per process).",
    multiprocess_mode="livesum",
)
RUNS_ADMITTED = Counter("ajc_runs_admitted", "Run requests given a place among the runs.")
RUNS_REFUSED = Counter(
    "ajc_runs_refused", "Run requests refused at the door (503): the process was full."
)
TOKENS_STREAMED = Counter(
    "ajc_run_tokens_streamed",
    "Pieces of answer text and tool-call arguments written to the runs' streams, one per "
    "chunk of the model's stream (a token, or a few).",
)
TIME_TO_FIRST_TOKEN = Histogram(
    "ajc_run_time_to_first_token_seconds",
    "From a run request reaching its route to the first piece of the answer written to its stream.",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
EVENT_LOOP_LAG = Histogram(
    "ajc_event_loop_lag_seconds",
    "How late the event loop ran a timer due now (sampled twice a second per process): how "
    "long work that did not yield held up every other request.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
DB_POOL_IN_USE = Gauge(
    "ajc_db_pool_connections_in_use",
    "Connections taken from a pool: `orm` (SQLAlchemy sessions) or `driver` (asyncpg, the hot "
    "reads).",
    ["pool"],
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "ajc_db_pool_waiting",
    "Tasks waiting for a connection of a pool (sampled twice a second per process).",
    ["pool"],
    multiprocess_mode="livesum",
)
JOB_DURATION = Histogram(
    "ajc_job_duration_seconds",
    "Time a job ran, by task and outcome (`succeeded`, `failed`).",
    ["task", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
)
CHUNKS_EMBEDDED = Counter(
    "ajc_knowledge_chunks_embedded",
    "Knowledge chunks embedded by ingestions; its rate is the ingestion's chunks per second.",
)

# Any token is a method to the server: others count as one, as OpenTelemetry's do.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_request_durations: dict[tuple[str, str, int], Histogram] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    if method not in _METHODS:
        method = "_OTHER"
    key = (method, route, status)
    child = _request_durations.get(key)
    if child is None:
        child = _request_durations[key] = REQUEST_DURATION.labels(method, route, str(status))
    child.observe(seconds)


def job_queue_family(counts: Iterable[tuple[str, str, int]]) -> Metric:
    """Jobs in procrastinate's table by queue and status, as read at the scrape."""
    family = GaugeMetricFamily(
        "ajc_job_queue_jobs",
        "Jobs in the queue's table by queue and status (`todo`: waiting, `doing`: running, "
        "`failed`...; succeeded jobs are deleted), read at the scrape.",
        labels=["queue", "status"],
    )
    for queue, status, count in counts:
        family.add_metric([queue, status], count)
    return family


class _Read(Collector):
    """Metrics read for this scrape only."""

    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics


def exposition(read_now: list[Metric]) -> bytes:
    """Every metric in Prometheus' text format: this process's, or every process's in
    multiprocess mode (reading their files: call it off the event loop)."""
    if MULTIPROCESS_DIR is None:
        return generate_latest(REGISTRY) + generate_latest(_registry_of(read_now))
    registry = _registry_of(read_now)
    MultiProcessCollector(registry, path=MULTIPROCESS_DIR)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def _registry_of(metrics: list[Metric]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Read(metrics))
    return registry
