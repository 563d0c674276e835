"""Observe-cycle benchmark: queries and seconds of one ``fetch_observations`` cycle for 1, 100 and 1,000 profiles.

Run ``python bench/observe_cycle.py``. It starts the same real Prometheus as ``tests/observe`` (an hour of
the small test cluster backfilled with promtool, ``tests/observe/promharness.py``), runs one cycle per
profile count (each count once to warm up, then ``--repeat`` measured runs) and prints the queries sent
(from ``perfpilot_promql_queries_total``) and the wall-clock seconds. Numbers are printed, not asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests" / "observe"
sys.path.insert(0, str(TESTS))

from prom_scenarios import AT_SECONDS, build_cluster  # noqa: E402
from promharness import running_prometheus  # noqa: E402

from perfpilot.api.spec import PerformanceProfile  # noqa: E402
from perfpilot.api.status import ContainerResources  # noqa: E402
from perfpilot.observe.instrumentation import PROMQL_QUERIES  # noqa: E402
from perfpilot.observe.reader import PrometheusSettings  # noqa: E402
from perfpilot.observe.snapshot import ProfileTarget, fetch_observations  # noqa: E402
from perfpilot.tuning.observations import LiveConfig  # noqa: E402

PROFILE_COUNTS = (1, 100, 1000)
LIVE = LiveConfig(hpa=None, containers=(
    ContainerResources(name="app", cpu_request_millicores=500, cpu_limit_millicores=1000,
                       memory_request_bytes=512 * 2**20),))


def target(index: int) -> ProfileTarget:
    """Profile 0 is shop/api (it has data); the rest spread over 50 namespaces, all tuning a pool."""
    namespace, name = ("shop", "api") if index == 0 else (f"team-{index % 50}", f"svc-{index}")
    profile = PerformanceProfile.model_validate({
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"targetRef": {"kind": "Deployment", "name": name},
                 "guardrails": {"window": "30m", "interval": "60s"},
                 "pool": {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}, "database": "app"}}},
    })
    return ProfileTarget(profile, LIVE)


def queries_sent(url: str) -> float:
    return sum(sample.value for metric in PROMQL_QUERIES.collect() for sample in metric.samples
               if sample.name.endswith("_total") and sample.labels["prometheus"] == url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="measured cycles per profile count (default 5)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1 (got {args.repeat})")
    at = datetime.fromtimestamp(AT_SECONDS, tz=UTC)
    with tempfile.TemporaryDirectory(prefix="perfpilot-bench-") as workdir, \
            running_prometheus(workdir=Path(workdir), openmetrics=build_cluster().render()) as prometheus:
        settings = PrometheusSettings(url=prometheus.url, step_seconds=60, rate_window_seconds=120)
        print(f"Prometheus {prometheus.url}; one cycle = fetch_observations at {at.isoformat()}, "
              f"{args.repeat} measured run(s) after one warm-up")
        print(f"{'profiles':>9} {'queries/cycle':>14} {'median s':>9} {'min s':>7} {'max s':>7}")
        for count in PROFILE_COUNTS:
            targets = [target(index) for index in range(count)]
            fetch_observations(targets, at=at, settings=settings)  # warm-up
            before = queries_sent(prometheus.url)
            seconds: list[float] = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                fetch_observations(targets, at=at, settings=settings)
                seconds.append(time.perf_counter() - started)
            per_cycle = (queries_sent(prometheus.url) - before) / args.repeat
            print(f"{count:>9} {per_cycle:>14g} {statistics.median(seconds):>9.3f} {min(seconds):>7.3f} "
                  f"{max(seconds):>7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
