"""One real Prometheus for the whole session: an hour of backfilled history plus one live-scraped app."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

# The harness modules sit next to the tests; pytest's importlib mode does not put this folder on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from prom_scenarios import LIVE_LATENCY_SECONDS, LIVE_NAMESPACE, LIVE_POD, LIVE_REQUESTS_PER_SECOND, build_cluster
from promharness import OpenMetricsWriter, PrometheusServer, ScrapeTarget, free_port, running_prometheus


@dataclass
class LiveApp:
    address: str
    stop: threading.Event


@pytest.fixture(scope="session")
def cluster() -> OpenMetricsWriter:
    return build_cluster()


@pytest.fixture(scope="session")
def live_app() -> Iterator[LiveApp]:
    """A prometheus_client endpoint whose latency histogram keeps receiving 0.3 s observations."""
    registry = CollectorRegistry()
    histogram = Histogram("http_request_duration_seconds", "Request latency.", registry=registry,
                          buckets=(0.1, 0.25, 0.5, 1.0))
    requests = Counter("http_requests", "Requests served.", ["code"], registry=registry)
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()

    def serve_load() -> None:
        while not stop.wait(1 / LIVE_REQUESTS_PER_SECOND):
            histogram.observe(LIVE_LATENCY_SECONDS)
            requests.labels(code="200").inc()

    worker = threading.Thread(target=serve_load, daemon=True)
    worker.start()
    yield LiveApp(address=f"127.0.0.1:{port}", stop=stop)
    stop.set()
    worker.join(timeout=2)
    server.shutdown()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory, cluster: OpenMetricsWriter,
               live_app: LiveApp) -> Iterator[PrometheusServer]:
    workdir = tmp_path_factory.mktemp("prometheus")
    target = ScrapeTarget(address=live_app.address, labels={"namespace": LIVE_NAMESPACE, "pod": LIVE_POD})
    with running_prometheus(workdir=workdir, openmetrics=cluster.render(), scrape_targets=[target]) as server:
        yield server
