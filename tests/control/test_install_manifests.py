"""manifests/install: valid Kubernetes objects (kubernetes-validate --strict), and a Deployment that runs the
`perfpilot run` this package has, with flags it accepts and the probe on the port it serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from perfpilot.cli import build_parser

INSTALL = Path(__file__).resolve().parents[2] / "manifests" / "install" / "perfpilot.yaml"


def _documents() -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(INSTALL.read_text()) if document]


def test_the_install_manifests_pass_kubernetes_validate_strict() -> None:
    result = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", str(INSTALL)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(_documents())


def test_the_deployment_runs_perfpilot_run_with_flags_it_accepts_and_probes_its_liveness_port() -> None:
    deployment = next(d for d in _documents() if d["kind"] == "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "run"
    assert args.prometheus_url.startswith("http")
    liveness = urlparse(args.liveness)
    probe = container["livenessProbe"]["httpGet"]
    [port] = [p for p in container["ports"] if p["name"] == probe["port"]]
    assert (probe["path"], port["containerPort"]) == (liveness.path, liveness.port)
    assert deployment["spec"]["replicas"] == 1  # no leader election yet: one operator evaluates each profile
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == next(
        d for d in _documents() if d["kind"] == "ServiceAccount")["metadata"]["name"]
