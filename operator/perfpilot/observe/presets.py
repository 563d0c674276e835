"""Metric names of the exporters perfpilot reads, by preset — the only place these names are spelled.

Pool metrics differ by exporter (see ``shared/TESTING.md``): the prometheus-community ``pgbouncer_exporter``
and the PyPI ``prometheus-pgbouncer-exporter`` share the pool gauge names but not the pool-size one (nor the
label naming the database on it);
CloudNativePG's poolers export ``cnpg_pgbouncer_*`` with pgBouncer's own column names. Container metrics
are cAdvisor's as the kubelet exposes them (``/metrics/cadvisor``), which every Kubernetes Prometheus setup
scrapes; they are not configurable per profile because they do not vary per application.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfpilot.api.spec import Pgbouncer, PoolExporter


@dataclass(frozen=True)
class PoolMetricNames:
    """Names of one exporter's pgBouncer series; every series carries a ``database`` label."""

    server_active: str  # server connections linked to a client (gauge)
    client_waiting: str  # clients waiting for a server connection (gauge)
    max_wait_seconds: str  # age of the oldest waiting client, seconds (gauge)
    # The pool size pgBouncer serves per database now (SHOW DATABASES' pool_size: the database's own
    # pool_size, else default_pool_size, as last loaded or SET): a write is verified once every pooler serves it.
    pool_size: str
    # pgBouncer's SHOW POOLS splits the oldest wait into whole seconds (maxwait) and the microseconds
    # beyond them (maxwait_us); an exporter that passes both through needs both added back together.
    max_wait_microseconds_part: str | None = None
    database_label: str = "database"
    # The label of ``pool_size`` naming the database as clients ask pgBouncer for it (the [databases] entry).
    # prometheus-community's exporter (and CloudNativePG's, which follows it) put that in ``name`` and the
    # server-side database in ``database``; the PyPI exporter puts it in ``database``.
    pool_size_database_label: str = "name"


POOL_PRESETS: dict[PoolExporter, PoolMetricNames] = {
    PoolExporter.PROMETHEUS_COMMUNITY: PoolMetricNames(
        server_active="pgbouncer_pools_server_active_connections",
        client_waiting="pgbouncer_pools_client_waiting_connections",
        max_wait_seconds="pgbouncer_pools_client_maxwait_seconds",
        pool_size="pgbouncer_databases_pool_size",
    ),
    PoolExporter.CLOUDNATIVE_PG: PoolMetricNames(
        server_active="cnpg_pgbouncer_pools_sv_active",
        client_waiting="cnpg_pgbouncer_pools_cl_waiting",
        max_wait_seconds="cnpg_pgbouncer_pools_maxwait",
        pool_size="cnpg_pgbouncer_databases_pool_size",
        max_wait_microseconds_part="cnpg_pgbouncer_pools_maxwait_us",
    ),
    PoolExporter.PYPI: PoolMetricNames(
        server_active="pgbouncer_pools_server_active_connections",
        client_waiting="pgbouncer_pools_client_waiting_connections",
        max_wait_seconds="pgbouncer_pools_client_maxwait_seconds",
        pool_size="pgbouncer_databases_database_pool_size",
        pool_size_database_label="database",
    ),
}


def resolve_pool_exporter(pgbouncer: Pgbouncer) -> PoolExporter:
    """``Auto`` means CloudNativePG's names for a Pooler, else the prometheus-community exporter's."""
    if pgbouncer.exporter is not PoolExporter.AUTO:
        return pgbouncer.exporter
    return PoolExporter.CLOUDNATIVE_PG if pgbouncer.pooler_ref is not None else PoolExporter.PROMETHEUS_COMMUNITY


def pool_metric_names(pgbouncer: Pgbouncer) -> PoolMetricNames:
    return POOL_PRESETS[resolve_pool_exporter(pgbouncer)]


@dataclass(frozen=True)
class ContainerMetricNames:
    """cAdvisor series, labelled ``namespace``, ``pod``, ``container`` by the kubelet."""

    cpu_usage_seconds_total: str = "container_cpu_usage_seconds_total"
    cfs_periods_total: str = "container_cpu_cfs_periods_total"
    cfs_throttled_periods_total: str = "container_cpu_cfs_throttled_periods_total"
    memory_working_set_bytes: str = "container_memory_working_set_bytes"


CADVISOR = ContainerMetricNames()
