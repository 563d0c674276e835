"""kopf wiring, and nothing else: start the tick loop with the operator, stop it with it, report its health.

perfpilot evaluates its profiles in one loop rather than in a kopf handler per object, because every profile
due in a tick must share one Prometheus snapshot (DESIGN section 8: the queries do not grow with the
profiles). The loop lists the profiles at each tick; a spec change is evaluated at the next one, since a new
generation is always due.

The handlers are kept in a registry of their own, ``REGISTRY``, which ``perfpilot run`` hands to kopf: importing
this module changes nothing global. What they need comes in kopf's ``memo`` (``perfpilot run`` builds it):
``memo.loop_settings`` (a ``LoopSettings``), ``memo.kube_client`` (a ``kubernetes.client.ApiClient``) and,
optionally, ``memo.request_timeout_seconds`` (the longest wait for one API call), ``memo.metrics_port`` (where
``/metrics`` is served; absent or 0: not served) and ``memo.clock`` (what the loop reads ``now`` from; the
system clock when absent).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf
from prometheus_client import start_http_server

from perfpilot.actuate.kube import REQUEST_TIMEOUT_SECONDS, KubeApi
from perfpilot.control.loop import STUCK_TICK_SECONDS, LoopHealth, run_forever, utc_now

REGISTRY = kopf.OperatorRegistry()


@kopf.on.login(registry=REGISTRY)
def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf connects with the credentials perfpilot writes with (a kubeconfig given to ``perfpilot run``, or
    the pod's service account), so both talk to the same API server as the same user."""
    configuration = memo.kube_client.configuration
    # Through get_api_key_with_prefix, which runs the refresh hook: an in-cluster token is rotated on disk.
    token = configuration.get_api_key_with_prefix("authorization") or ""
    scheme, _, value = token.partition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme or None,
        token=value or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


@kopf.on.startup(registry=REGISTRY)
async def start(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
    # perfpilot records its own Events (one per change and rollback); kopf's per-handler ones would be noise.
    settings.posting.enabled = False
    # No kopf handler watches any resource, so kopf need not scan the cluster's CRDs (nor be granted to).
    settings.scanning.disabled = True
    memo.stop = asyncio.Event()
    memo.health = LoopHealth()
    port = memo.get("metrics_port", 0)
    # The default registry: the reader's PromQL metrics and the loop's (control.instrumentation).
    memo.metrics_server = start_http_server(port, addr="0.0.0.0")[0] if port else None
    memo.loop_task = asyncio.create_task(
        run_forever(KubeApi(memo.kube_client, request_timeout_seconds=memo.get("request_timeout_seconds",
                                                                                REQUEST_TIMEOUT_SECONDS)),
                    memo.loop_settings, stop=memo.stop, health=memo.health,
                    clock=memo.get("clock", utc_now)))


@kopf.on.cleanup(registry=REGISTRY)
async def stop(memo: kopf.Memo, **_: Any) -> None:
    memo.stop.set()
    await memo.loop_task
    if memo.metrics_server is not None:
        memo.metrics_server.shutdown()
        memo.metrics_server.server_close()


@kopf.on.probe(id="loop", registry=REGISTRY)
def probe(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """``/healthz`` (with ``--liveness``): when the last tick began, how many profiles were evaluated, whether
    this replica leads, and the last tick's error, if any. It fails (and the kubelet restarts the operator) once
    the tick loop has stopped, or a tick has hung."""
    health: LoopHealth = memo.health
    if memo.loop_task.done():
        raise kopf.PermanentError("the tick loop has stopped")
    if health.decide_stuck(now_monotonic=time.monotonic()):
        raise kopf.PermanentError(f"a tick has run for more than {STUCK_TICK_SECONDS:g} s")
    return {
        "lastTickAt": health.last_tick_at.isoformat() if health.last_tick_at else None,
        "evaluated": health.evaluated,
        "leading": health.leading,
        "lastError": health.last_error or None,
    }
