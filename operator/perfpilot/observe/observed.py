"""``status.observed`` from ``Observations``: the latest value of each signal, or null and why.

The same keys serve the profile's status (written by the operator) and ``perfpilot plan --json``.
Utilisations are percent of the requests (CPU, memory) or of the pool's capacity, computed by the engine's
own helpers so the status shows the numbers the rules used.
"""

from __future__ import annotations

from pydantic.alias_generators import to_camel

from perfpilot.api.status import ObservedStatus
from perfpilot.tuning.observations import Observations, Series, Signal, Unknown
from perfpilot.tuning.signals import (
    compute_cpu_utilisation_percent,
    compute_memory_utilisation_percent,
    compute_pool_utilisation_percent,
)


def observed_status(observations: Observations) -> ObservedStatus:
    signals: dict[str, Signal] = {
        "p95_latency_seconds": observations.latency_p95_seconds,
        "request_rate_per_second": observations.request_rate_per_second,
        "error_ratio": observations.error_ratio,
        "cpu_utilization_percent": compute_cpu_utilisation_percent(observations),
        "memory_utilization_percent": compute_memory_utilisation_percent(observations),
        "replicas": observations.replicas,
        "pool_utilization_percent": compute_pool_utilisation_percent(observations),
        "pool_waiting_clients": observations.pool_client_waiting,
        "pool_size_served_min": observations.pool_served_size_min,
        "pool_size_served_max": observations.pool_served_size_max,
    }
    values: dict[str, float | None] = {}
    unknown: dict[str, str] = {}
    for field, signal in signals.items():
        if isinstance(signal, Unknown):
            values[field] = None
            alias = ObservedStatus.model_fields[field].alias or field
            unknown[alias] = signal.reason
        else:
            values[field] = signal.latest
    # A container's own series, unknown, blocks its pod's provisioning when the profile sizes that container:
    # name the container and why (the pod-level values above do not show it).
    for container in observations.live.containers:
        readings = [observations.find_container_cpu_usage(container.name),
                    observations.find_container_working_set(container.name)]
        if container.cpu_limit_millicores:
            readings.append(observations.find_container_throttled_ratio(container.name))
        for name, reading in readings:
            if name.endswith("_by_container") and isinstance(reading, Unknown):
                unknown[f"{to_camel(name)}[{container.name}]"] = reading.reason
    known = [s for s in signals.values() if isinstance(s, Series)]
    return ObservedStatus(
        at=observations.at,
        samples=max((len(s.values) for s in known), default=0),
        unknown=unknown,
        **values,
    )
