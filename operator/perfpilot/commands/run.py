"""``perfpilot run``: the operator itself (kopf), evaluating every PerformanceProfile it can see."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
from pydantic import ValidationError

from perfpilot.actuate.kube import REQUEST_TIMEOUT_SECONDS, KubeConfigError, connect
from perfpilot.commands.inputs import check_prometheus_files, parse_header_flags
from perfpilot.control.leader import LeaseSettings
from perfpilot.control.loop import LoopSettings
from perfpilot.observe.reader import PrometheusSettings

EXIT_BAD_INPUT = 2
# The Prometheus settings' fields as the flags that set them, for the messages of bad input.
_FLAGS = {"url": "--prometheus-url", "timeout_seconds": "--timeout", "bearer_token_file": "--bearer-token-file",
          "ca_file": "--ca-file", "headers": "--header"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the operator: evaluate every PerformanceProfile and write what Auto mode decides",
        description="Run the operator against the cluster of --kubeconfig (else $KUBECONFIG, ~/.kube/config, "
        "or the pod's service account). Every tick it lists the PerformanceProfiles, evaluates those whose "
        "interval has passed or whose spec changed, with one Prometheus snapshot for all of them, writes the "
        "changes Auto profiles decide and every profile's status. Exit status 2: bad input, named.",
    )
    parser.add_argument("--prometheus-url", default="", metavar="URL",
                        help="default Prometheus base URL (a profile's spec.metrics.prometheusURL overrides it)")
    parser.add_argument("--kubeconfig", type=Path, default=None, metavar="FILE",
                        help="kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, else in-cluster)")
    parser.add_argument("--namespace", action="append", default=[], metavar="NAME",
                        help="only profiles in this namespace, repeatable (default: every namespace)")
    parser.add_argument("--tick", type=float, default=10.0, metavar="SECONDS",
                        help="how often due profiles are looked for (1 to 300; each profile's interval still "
                        "sets how often it is evaluated)")
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", metavar="URL",
                        help="liveness endpoint to serve (kopf's), empty for none")
    parser.add_argument("--leader-election-namespace", default="", metavar="NAME",
                        help="run several replicas: only the holder of Lease perfpilot in this namespace ticks "
                        "(default: no election, run one replica)")
    parser.add_argument("--identity", default=socket.gethostname(), metavar="NAME",
                        help="this replica's name in the Lease (default: the host name, a pod's name)")
    parser.add_argument("--lease-duration", type=int, default=30, metavar="SECONDS",
                        help="how long an unrenewed Lease keeps its holder (at least 3 ticks, at most 300)")
    parser.add_argument("--metrics-port", type=int, default=8081, metavar="PORT",
                        help="serve the operator's Prometheus metrics on this port at /metrics (0: not served)")
    parser.add_argument("--log-format", choices=("json", "console"), default="json",
                        help="one JSON object per event (for a log pipeline), or lines for a terminal")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="per Prometheus query, retries included (0.1 to 300)")
    parser.add_argument("--bearer-token-file", type=Path, metavar="FILE", help="file holding a Prometheus token")
    parser.add_argument("--ca-file", type=Path, metavar="FILE", help="CA bundle for Prometheus' certificate")
    parser.add_argument("--header", action="append", default=[], metavar="NAME=VALUE",
                        help="extra HTTP header on every query, repeatable (e.g. X-Scope-OrgID=tenant for Mimir)")
    parser.set_defaults(func=run)


def compute_request_timeout_seconds(lease: LeaseSettings | None) -> float:
    """The longest wait for one API call: under leader election, short enough that a write sent just before the
    renew deadline (two thirds of the Lease) is done before another replica may take over (all of it)."""
    if lease is None:
        return REQUEST_TIMEOUT_SECONDS
    return min(REQUEST_TIMEOUT_SECONDS, lease.duration_seconds - lease.renew_deadline_seconds)


def configure_logging(log_format: str) -> None:
    """perfpilot's events (structlog) and kopf's own lines (the logging module) in one format: one JSON object
    per line for a log pipeline, or lines for a terminal."""
    import kopf  # noqa: PLC0415  (as in run)

    renderer = structlog.processors.JSONRenderer() if log_format == "json" else structlog.dev.ConsoleRenderer()
    # dict_tracebacks: a log.exception's traceback as data in the JSON event (it is otherwise "exc_info": true).
    tracebacks = [structlog.processors.dict_tracebacks] if log_format == "json" else []
    structlog.configure(processors=[structlog.processors.add_log_level,
                                    structlog.processors.TimeStamper(fmt="iso", utc=True), *tracebacks, renderer])
    # kopf.run does not set up logging (its CLI does): without this, its lines went to Python's last-resort
    # handler, warnings only and as plain text beside the JSON.
    kopf.configure(log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL)


def run(args: argparse.Namespace) -> int:
    # Imported here: kopf and the handlers cost the other commands most of a second at start.
    import kopf  # noqa: PLC0415

    from perfpilot.handlers import REGISTRY  # noqa: PLC0415

    try:
        if not 1 <= args.tick <= 300:
            raise ValueError(f"--tick: must be 1 to 300 seconds (got {args.tick})")
        if not 0 <= args.metrics_port <= 65535:
            raise ValueError(f"--metrics-port: must be 0 (off) to 65535 (got {args.metrics_port})")
        if args.metrics_port and args.liveness and urlsplit(args.liveness).port == args.metrics_port:
            raise ValueError(f"--metrics-port: the liveness endpoint uses it already (got {args.metrics_port})")
        check_prometheus_files(bearer_token_file=args.bearer_token_file, ca_file=args.ca_file)
        prometheus = PrometheusSettings(url=args.prometheus_url, timeout_seconds=args.timeout,
                                        bearer_token_file=args.bearer_token_file, ca_file=args.ca_file,
                                        headers=parse_header_flags(args.header))
        lease = None
        if args.leader_election_namespace:
            if not 3 * args.tick <= args.lease_duration <= 300:
                raise ValueError(f"--lease-duration: must be 3 ticks ({3 * args.tick:g} s) to 300 s, so the "
                                 f"leader renews it in time (got {args.lease_duration})")
            if not args.identity:
                raise ValueError("--identity: must not be empty (got '')")
            lease = LeaseSettings(namespace=args.leader_election_namespace, identity=args.identity,
                                  duration_seconds=args.lease_duration)
        settings = LoopSettings(prometheus=prometheus, tick_seconds=args.tick, namespaces=tuple(args.namespace),
                                lease=lease)
        client = connect(args.kubeconfig)
    except ValidationError as error:
        for detail in error.errors(include_url=False):
            field = str(detail["loc"][0]) if detail["loc"] else ""
            print(f"perfpilot run: {_FLAGS.get(field, field)}: {detail['msg']} (got {detail.get('input')!r})",
                  file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, KubeConfigError) as error:
        print(f"perfpilot run: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    configure_logging(args.log_format)
    kopf.run(registry=REGISTRY, clusterwide=True, standalone=True, liveness_endpoint=args.liveness or None,
             memo=kopf.Memo(loop_settings=settings, kube_client=client, metrics_port=args.metrics_port,
                            request_timeout_seconds=compute_request_timeout_seconds(lease)))
    return 0
