"""The reader's own metrics, in the default ``prometheus_client`` registry the operator's ``/metrics`` serves.

Tests count queries through these same counters, so what is tested is what operators see.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PROMQL_QUERIES = Counter(
    "perfpilot_promql_queries",
    "PromQL range queries sent, by Prometheus URL, signal and outcome (ok, error, unreachable, too_heavy).",
    ["prometheus", "signal", "outcome"],
)
PROMQL_QUERY_SECONDS = Histogram(
    "perfpilot_promql_query_duration_seconds",
    "Wall time of one PromQL range query including retries, by Prometheus URL.",
    ["prometheus"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PROMQL_RETRIES = Counter(
    "perfpilot_promql_retries",
    "Attempts repeated after a connection error or a 5xx answer, by Prometheus URL.",
    ["prometheus"],
)
