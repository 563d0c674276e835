"""charts/perfpilot, rendered and linted offline with helm-python-sdk (Helm's own Go library): it lints strict, renders
valid Kubernetes objects, grants pool RBAC and renders the Grafana dashboard's ConfigMap only when asked, runs
`perfpilot run` with flags it accepts and the values given, refuses bad values through values.schema.json, and stays in
step with crds/, manifests/install and its README."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import helm_python
import pytest
import yaml
from helm_python import Chart, lint

from perfpilot.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "perfpilot"
NAME, NAMESPACE = "perfpilot", "perfpilot"

# What the operator needs without pools (control/cycle.py, control/loop.py, actuate/kube.py, kopf).
BASE_RULES = {
    ("perfpilot.io", "performanceprofiles", "list"),
    ("perfpilot.io", "performanceprofiles/status", "patch"),
    ("autoscaling", "horizontalpodautoscalers", "list"),
    ("autoscaling", "horizontalpodautoscalers", "patch"),
    ("apps", "deployments", "get"),
    ("apps", "deployments", "patch"),
    ("apps", "statefulsets", "get"),
    ("apps", "statefulsets", "patch"),
    ("", "pods", "list"),
    ("", "events", "create"),
}
POOL_RULES = {
    "configMaps": {("", "configmaps", "get"), ("", "configmaps", "patch"),
                   ("apps", "deployments", "list"), ("apps", "statefulsets", "list")},
    "cnpgPoolers": {("postgresql.cnpg.io", "poolers", "get"), ("postgresql.cnpg.io", "poolers", "patch")},
}


@pytest.fixture(scope="module")
def chart() -> Iterator[Chart]:
    with Chart.load(CHART) as loaded:
        yield loaded


def _rendered(chart: Chart, values: dict[str, Any] | None = None) -> dict[str, str]:
    return chart.render(values or {}, name=NAME, namespace=NAMESPACE)


def _documents(chart: Chart, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [document for source, text in _rendered(chart, values).items() if not source.endswith("NOTES.txt")
            for document in yaml.safe_load_all(text) if document]


def _one(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [document for document in documents if document["kind"] == kind]
    return found


def _kinds(documents: list[dict[str, Any]]) -> list[str]:
    return sorted(document["kind"] for document in documents)


def _rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def _granted(chart: Chart, values: dict[str, Any] | None = None) -> set[tuple[str, str, str]]:
    return _rules(_one(_documents(chart, values), "ClusterRole"))


def _container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    [container] = _one(documents, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


EVERYTHING_ON = {
    "prometheus": {"url": "https://thanos.example:9091", "timeoutSeconds": 2.5,
                   "headers": {"X-Scope-OrgID": "shop-team", "X-Extra": "a=b c $(HOME)"},
                   "bearerTokenSecret": {"name": "prometheus-token", "key": "bearer"},
                   "caConfigMap": {"name": "prometheus-ca", "key": "bundle.pem"}},
    "watchNamespaces": ["shop", "payments"],
    "pool": {"configMaps": True, "cnpgPoolers": True, "adminConsole": True},
    "metrics": {"service": {"enabled": True}, "serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}},
    "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Platform"}},
    "imagePullSecrets": [{"name": "registry"}], "priorityClassName": "system-cluster-critical",
    "podAnnotations": {"team": "platform"}, "podLabels": {"tier": "control"}, "nodeSelector": {"pool": "system"},
    "tolerations": [{"key": "system", "operator": "Exists", "effect": "NoSchedule"}],
    "serviceAccount": {"annotations": {"iam.example/role": "perfpilot"}},
}


# Leader election on, with the replicas it allows.
ELECTION = {"leaderElection": {"enabled": True}, "replicaCount": 2}
# The operator's Lease (control/leader.py): read and renewed by name, created by the first replica.
LEASE_RULES = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["perfpilot"],
     "verbs": ["get", "patch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
]


@pytest.mark.parametrize("values", [None, EVERYTHING_ON, ELECTION], ids=["defaults", "everything-on", "election"])
def test_the_chart_lints_strict_without_errors_or_warnings(values: dict[str, Any] | None) -> None:
    report = lint(CHART, values, strict=True, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == [], report
    # Severity 1 is information ("icon is recommended"); 2 is a warning, 3 an error.
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


@pytest.mark.parametrize("values", [None, {**EVERYTHING_ON, "metrics": {"service": {"enabled": True}}}, ELECTION],
                         ids=["defaults", "everything-on-but-the-service-monitor", "election"])
def test_the_rendered_objects_pass_kubernetes_validate_strict(chart: Chart, values: dict[str, Any] | None,
                                                               tmp_path: Path) -> None:
    # The ServiceMonitor is left out: kubernetes-validate passes any custom resource with a mere warning.
    documents = _documents(chart, values)
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(documents))
    result = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", str(manifest)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(documents) >= 4, result.stdout


def test_the_default_render_is_a_service_account_its_cluster_role_and_binding_and_one_deployment(chart: Chart) -> None:
    documents = _documents(chart)
    assert _kinds(documents) == ["ClusterRole", "ClusterRoleBinding", "Deployment", "ServiceAccount"]
    binding, account = _one(documents, "ClusterRoleBinding"), _one(documents, "ServiceAccount")
    assert binding["roleRef"]["name"] == _one(documents, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": NAMESPACE}]
    pod = _one(documents, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_the_default_cluster_role_is_exactly_what_the_operator_needs_without_pools(chart: Chart) -> None:
    granted = _granted(chart)
    assert granted == BASE_RULES
    assert not any(resource in ("configmaps", "poolers") for _, resource, _ in granted)


@pytest.mark.parametrize("option", sorted(POOL_RULES))
def test_each_pool_option_adds_exactly_its_rules(chart: Chart, option: str) -> None:
    assert _granted(chart, {"pool": {option: True}}) - BASE_RULES == POOL_RULES[option]
    assert _granted(chart, {"pool": {option: True}}) >= BASE_RULES


def test_both_pool_options_add_both_sets_of_rules(chart: Chart) -> None:
    assert _granted(chart, {"pool": {"configMaps": True, "cnpgPoolers": True}}) == BASE_RULES.union(
        *POOL_RULES.values())


def test_the_admin_console_option_adds_reading_secrets_and_nothing_else(chart: Chart) -> None:
    with_console = {"pool": {"configMaps": True, "adminConsole": True}}
    assert _granted(chart, with_console) - _granted(chart, {"pool": {"configMaps": True}}) == {("", "secrets", "get")}
    assert not any(resource == "secrets" for _, resource, _ in _granted(chart, {"pool": {
        "configMaps": True, "cnpgPoolers": True}}))


def test_with_watched_namespaces_the_admin_console_reads_secrets_only_there(chart: Chart) -> None:
    values = {"pool": {"configMaps": True, "adminConsole": True}, "watchNamespaces": ["shop", "payments"]}
    documents = _documents(chart, values)
    assert ("", "secrets", "get") not in _rules(_one(documents, "ClusterRole"))
    roles = {d["metadata"]["namespace"]: d for d in documents
             if d["kind"] == "Role" and d["metadata"]["name"].endswith("-pgbouncer-admin")}
    bindings = {d["metadata"]["namespace"]: d for d in documents
                if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-pgbouncer-admin")}
    assert set(roles) == set(bindings) == {"shop", "payments"}
    account = _one(documents, "ServiceAccount")["metadata"]["name"]
    for namespace, role in roles.items():
        assert _rules(role) == {("", "secrets", "get")}
        binding = bindings[namespace]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": role["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]
    assert not any(d["kind"] == "Role" and d["metadata"]["name"].endswith("-pgbouncer-admin")
                   for d in _documents(chart, {**values, "pool": {"configMaps": True}}))


@pytest.mark.parametrize("rbac_create", [True, False])
def test_the_admin_console_without_configmap_pools_is_refused(chart: Chart, rbac_create: bool) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=re.escape("pool.adminConsole needs pool.configMaps")):
        _rendered(chart, {"pool": {"adminConsole": True}, "rbac": {"create": rbac_create}})


KEDA_RULES = {("keda.sh", "scaledobjects", "get"), ("keda.sh", "scaledobjects", "patch")}


def test_the_keda_option_adds_exactly_its_rules(chart: Chart) -> None:
    assert _granted(chart) & KEDA_RULES == set()
    assert _granted(chart, {"keda": {"scaledObjects": True}}) - BASE_RULES == KEDA_RULES


def test_rbac_create_false_renders_no_cluster_role_or_binding(chart: Chart) -> None:
    assert _kinds(_documents(chart, {"rbac": {"create": False}})) == ["Deployment", "ServiceAccount"]


def test_the_default_deployment_is_one_replica_recreated_running_perfpilot_run_as_the_flags_default(
        chart: Chart) -> None:
    documents = _documents(chart)
    deployment = _one(documents, "Deployment")
    assert deployment["spec"]["replicas"] == 1  # the chart does not turn leader election on by default
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = _container(documents)
    assert container["image"] == f"ghcr.io/perfpilot/perfpilot:{chart.metadata['appVersion']}"
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.prometheus_url, args.namespace) == ("run", "", [])
    assert args.leader_election_namespace == ""
    assert not any(arg.startswith(("--leader-election", "--identity", "--lease")) for arg in container["args"])
    assert "env" not in container
    assert not {"Role", "RoleBinding"} & set(_kinds(documents))
    # The chart's values are the operator's own defaults.
    defaults = build_parser().parse_args(["run"])
    assert (args.tick, args.timeout, args.log_format, args.metrics_port, args.liveness) == (
        defaults.tick, defaults.timeout, defaults.log_format, defaults.metrics_port, defaults.liveness)
    assert (args.bearer_token_file, args.ca_file) == (None, None)
    assert "volumes" not in deployment["spec"]["template"]["spec"]
    assert "volumeMounts" not in container


def _mounted_file(pod: dict[str, Any], container: dict[str, Any], path: Path, source: str) -> tuple[str, str]:
    """(name of the Secret or ConfigMap, its key) that ``path`` in the container holds."""
    [mount] = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == path.parent]
    assert mount["readOnly"] is True
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    [item] = [i for i in volume[source]["items"] if i["path"] == path.name]
    return volume[source]["secretName" if source == "secret" else "name"], item["key"]


def test_the_deployment_runs_perfpilot_run_with_the_values_given(chart: Chart) -> None:
    values = {**EVERYTHING_ON, "tickSeconds": 2.5, "logFormat": "console", "liveness": {"port": 9000},
              "metrics": {"port": 9001}}
    documents = _documents(chart, values)
    pod = _one(documents, "Deployment")["spec"]["template"]["spec"]
    container = _container(documents)
    args = build_parser().parse_args(container["args"])
    assert args.command == "run"
    assert args.prometheus_url == "https://thanos.example:9091"
    # As the kubelet passes them: "$$" becomes "$", so $(HOME) reaches the operator as written, not expanded.
    assert sorted(arg.replace("$$", "$") for arg in args.header) == ["X-Extra=a=b c $(HOME)", "X-Scope-OrgID=shop-team"]
    assert "--header=X-Extra=a=b c $$(HOME)" in container["args"]
    assert args.namespace == ["shop", "payments"]
    assert (args.tick, args.timeout, args.log_format, args.metrics_port) == (2.5, 2.5, "console", 9001)
    liveness = urlparse(args.liveness)
    assert (liveness.hostname, liveness.port, liveness.path) == ("0.0.0.0", 9000, "/healthz")
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"health": 9000, "metrics": 9001}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert _mounted_file(pod, container, args.bearer_token_file, "secret") == ("prometheus-token", "bearer")
    assert _mounted_file(pod, container, args.ca_file, "configMap") == ("prometheus-ca", "bundle.pem")
    assert not any("subPath" in mount for mount in container["volumeMounts"])  # a rotated token reaches the pod


def test_the_pod_meets_the_restricted_pod_security_standard_by_default(chart: Chart) -> None:
    documents = _documents(chart)
    pod = _one(documents, "Deployment")["spec"]["template"]["spec"]
    container = _container(documents)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}


def test_the_metrics_service_and_service_monitor_are_rendered_only_when_enabled(chart: Chart) -> None:
    assert not {"Service", "ServiceMonitor"} & set(_kinds(_documents(chart)))
    only_service = _documents(chart, {"metrics": {"service": {"enabled": True}}})
    assert "ServiceMonitor" not in _kinds(only_service)
    service = _one(only_service, "Service")
    pod_labels = _one(only_service, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    [port] = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in _container(only_service)["ports"] if p["containerPort"] == 8081}

    both = _documents(chart, {"metrics": {"service": {"enabled": True},
                                          "serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}}})
    monitor, service = _one(both, "ServiceMonitor"), _one(both, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == [port["name"]]
    assert monitor["spec"]["endpoints"][0]["interval"] == "30s"


DASHBOARD = CHART / "dashboards" / "perfpilot.json"


def test_the_grafana_dashboard_config_map_is_rendered_only_when_enabled_with_the_labels_given(chart: Chart) -> None:
    assert "ConfigMap" not in _kinds(_documents(chart))
    assert "ConfigMap" not in _kinds(_documents(chart, {"grafanaDashboard": {"enabled": False,
                                                                             "namespace": "monitoring"}}))
    documents = _documents(chart, {"grafanaDashboard": {
        "enabled": True, "labels": {"grafana_dashboard": "yes", "team": "platform"},
        "annotations": {"grafana_folder": "Platform"}}})
    assert _kinds(documents) == ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "ServiceAccount"]
    metadata = _one(documents, "ConfigMap")["metadata"]
    assert metadata["labels"].items() >= {"grafana_dashboard": "yes", "team": "platform",
                                          "app.kubernetes.io/name": "perfpilot"}.items()
    assert metadata["annotations"] == {"grafana_folder": "Platform"}
    assert metadata["namespace"] == NAMESPACE

    # The defaults: the label kube-prometheus-stack's sidecar looks for, no annotation; another namespace on demand.
    metadata = _one(_documents(chart, {"grafanaDashboard": {"enabled": True, "namespace": "monitoring"}}),
                    "ConfigMap")["metadata"]
    assert metadata["labels"]["grafana_dashboard"] == "1"
    assert "annotations" not in metadata
    assert metadata["namespace"] == "monitoring"


def test_the_grafana_dashboard_config_map_holds_the_dashboard_json_byte_for_byte(chart: Chart) -> None:
    config_map = _one(_documents(chart, {"grafanaDashboard": {"enabled": True}}), "ConfigMap")
    assert list(config_map["data"]) == ["perfpilot.json"]
    text = config_map["data"]["perfpilot.json"]
    assert text == DASHBOARD.read_text(encoding="utf-8")
    dashboard = json.loads(text)
    assert (dashboard["uid"], dashboard["title"]) == ("perfpilot-operator", "perfpilot operator")


def test_a_service_monitor_without_its_service_is_refused(chart: Chart) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=re.escape("needs metrics.service.enabled")):
        _rendered(chart, {"metrics": {"serviceMonitor": {"enabled": True}}})


def test_one_port_for_both_liveness_and_metrics_is_refused(chart: Chart) -> None:
    with pytest.raises(helm_python.HelmRenderError, match="both 8080"):
        _rendered(chart, {"metrics": {"port": 8080}})


def test_leader_election_grants_exactly_the_lease_in_the_release_namespace_to_the_deployments_account(
        chart: Chart) -> None:
    documents = _documents(chart, ELECTION)
    assert _kinds(documents) == ["ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding",
                                 "ServiceAccount"]
    role, binding = _one(documents, "Role"), _one(documents, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == LEASE_RULES
    assert _granted(chart, ELECTION) == BASE_RULES  # the Lease is not granted cluster-wide
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    pod = _one(documents, "Deployment")["spec"]["template"]["spec"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": pod["serviceAccountName"],
                                    "namespace": NAMESPACE}]


def test_leader_election_runs_each_replica_under_its_pod_name_and_rolls_upgrades(chart: Chart) -> None:
    documents = _documents(chart, {**ELECTION, "leaderElection": {"enabled": True, "leaseDurationSeconds": 45}})
    deployment = _one(documents, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    container = _container(documents)
    args = build_parser().parse_args(container["args"])
    # Kubernetes expands $(POD_NAME) in args from the container's env.
    assert (args.leader_election_namespace, args.identity, args.lease_duration) == (NAMESPACE, "$(POD_NAME)", 45)
    assert container["env"] == [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    assert (args.command, args.tick) == ("run", 10)


def test_leader_election_follows_the_release_namespace_and_default_duration(chart: Chart) -> None:
    rendered = chart.render({"leaderElection": {"enabled": True}}, name=NAME, namespace="ops")
    documents = [d for source, text in rendered.items() if not source.endswith("NOTES.txt")
                 for d in yaml.safe_load_all(text) if d]
    args = build_parser().parse_args(_container(documents)["args"])
    assert (args.leader_election_namespace, args.lease_duration) == ("ops", 30)
    assert _one(documents, "Role")["metadata"]["namespace"] == "ops"
    assert _one(documents, "Deployment")["spec"]["replicas"] == 1


def test_leader_election_without_rbac_create_renders_no_role_but_still_elects(chart: Chart) -> None:
    documents = _documents(chart, {**ELECTION, "rbac": {"create": False}})
    assert _kinds(documents) == ["Deployment", "ServiceAccount"]
    assert build_parser().parse_args(_container(documents)["args"]).leader_election_namespace == NAMESPACE


def test_several_replicas_without_leader_election_are_refused(chart: Chart) -> None:
    with pytest.raises(helm_python.HelmRenderError,
                       match=r"replicaCount is 2 but leaderElection.enabled is false: .*both evaluate every profile"):
        _rendered(chart, {"replicaCount": 2})


@pytest.mark.parametrize(("lease", "tick", "three_ticks"), [(29, 10, "30"), (30, 10.5, "31.5"), (3, 1.5, "4.5")])
def test_a_lease_shorter_than_three_ticks_is_refused(chart: Chart, lease: int, tick: float, three_ticks: str) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=re.escape(
            f"leaderElection.leaseDurationSeconds is {lease}, less than 3 x tickSeconds ({three_ticks})")):
        _rendered(chart, {**ELECTION, "leaderElection": {"enabled": True, "leaseDurationSeconds": lease},
                          "tickSeconds": tick})


@pytest.mark.parametrize(("lease", "tick"), [(30, 10), (3, 1), (300, 100)])
def test_a_lease_of_three_ticks_or_more_is_accepted_as_the_operator_accepts_it(
        chart: Chart, lease: int, tick: float, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values = {**ELECTION, "leaderElection": {"enabled": True, "leaseDurationSeconds": lease}, "tickSeconds": tick}
    args = _container(_documents(chart, values))["args"]
    assert build_parser().parse_args(args).lease_duration == lease
    # `perfpilot run` itself checks every flag before it connects: the first thing it refuses is the kubeconfig
    # that is not there, so it took the lease and the tick.
    missing = tmp_path / "kubeconfig"
    assert main([*args, "--kubeconfig", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"perfpilot run: kubeconfig {missing}: no such file"


def test_the_election_is_off_when_leader_election_is_disabled_even_with_its_duration_set(chart: Chart) -> None:
    # A short lease is not checked while election is off: the operator ignores --lease-duration then.
    documents = _documents(chart, {"leaderElection": {"enabled": False, "leaseDurationSeconds": 5}})
    assert build_parser().parse_args(_container(documents)["args"]).leader_election_namespace == ""
    assert "Role" not in _kinds(documents)


def test_the_notes_warn_when_prometheus_url_is_empty(chart: Chart) -> None:
    def notes(values: dict[str, Any]) -> str:
        return next(text for source, text in _rendered(chart, values).items() if source.endswith("NOTES.txt"))

    assert "WARNING: prometheus.url is empty" in notes({})
    assert "WARNING" not in notes({"prometheus": {"url": "http://prometheus:9090"}, "pool": {"configMaps": True}})
    assert "kubectl get pp" in notes({})


@pytest.mark.parametrize(("pool", "held"), [
    ({}, ["pool.configMaps=true", "pool.cnpgPoolers=true"]),
    ({"configMaps": True}, ["pool.cnpgPoolers=true"]),
    ({"cnpgPoolers": True}, ["pool.configMaps=true"]),
    ({"configMaps": True, "cnpgPoolers": True}, []),
])
def test_the_notes_say_which_pools_are_held_until_their_option_is_on(chart: Chart, pool: dict[str, bool],
                                                                    held: list[str]) -> None:
    text = next(text for source, text in _rendered(chart, {"pool": pool}).items() if source.endswith("NOTES.txt"))
    assert [option for option in ("pool.configMaps=true", "pool.cnpgPoolers=true") if option in text] == held


# Helm checks values.schema.json when it renders (helm install, upgrade, template) and when it lints.
BAD_VALUES = {
    "tickSeconds 0": ({"tickSeconds": 0}, "/tickSeconds"),
    "tickSeconds 301": ({"tickSeconds": 301}, "/tickSeconds"),
    "tickSeconds a string": ({"tickSeconds": "10"}, "/tickSeconds"),
    "timeoutSeconds 0.05": ({"prometheus": {"timeoutSeconds": 0.05}}, "/prometheus/timeoutSeconds"),
    "logFormat xml": ({"logFormat": "xml"}, "/logFormat"),
    "an unknown top-level key": ({"replicas": 2}, "replicas"),
    "replicaCount 0": ({"replicaCount": 0}, "/replicaCount"),
    "replicaCount 11": ({**ELECTION, "replicaCount": 11}, "/replicaCount"),
    "replicaCount 1.5": ({"replicaCount": 1.5}, "/replicaCount"),
    "leaseDurationSeconds 0": ({"leaderElection": {"leaseDurationSeconds": 0}}, "/leaderElection/leaseDurationSeconds"),
    "leaseDurationSeconds 301": ({**ELECTION, "leaderElection": {"enabled": True, "leaseDurationSeconds": 301}},
                                 "/leaderElection/leaseDurationSeconds"),
    "leaseDurationSeconds 30.5": ({"leaderElection": {"leaseDurationSeconds": 30.5}},
                                  "/leaderElection/leaseDurationSeconds"),
    "leaderElection.enabled a string": ({"leaderElection": {"enabled": "true"}}, "/leaderElection/enabled"),
    "an unknown nested key": ({"metrics": {"service": {"type": "NodePort"}}}, "type"),
    "metrics.port -1": ({"metrics": {"port": -1}}, "/metrics/port"),
    "liveness.port 65536": ({"liveness": {"port": 65536}}, "/liveness/port"),
    "a URL without scheme": ({"prometheus": {"url": "prometheus:9090"}}, "/prometheus/url"),
    "a URL with a query": ({"prometheus": {"url": "http://prometheus:9090/?x=1"}}, "/prometheus/url"),
    "a namespace that is no DNS label": ({"watchNamespaces": ["Shop_1"]}, "/watchNamespaces/0"),
    "pullPolicy Sometimes": ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    "pool option not a boolean": ({"pool": {"configMaps": "yes"}}, "/pool/configMaps"),
    "a header value with a newline": ({"prometheus": {"headers": {"X-Scope-OrgID": "a\nb"}}},
                                      "/prometheus/headers/X-Scope-OrgID"),
    "a header value a number": ({"prometheus": {"headers": {"X-Scope-OrgID": 7}}}, "/prometheus/headers/X-Scope-OrgID"),
    "a header name with a space": ({"prometheus": {"headers": {"X Scope": "a"}}}, "invalid propertyName 'X Scope'"),
    "adminConsole not a boolean": ({"pool": {"configMaps": True, "adminConsole": 1}}, "/pool/adminConsole"),
    "grafanaDashboard.enabled a string": ({"grafanaDashboard": {"enabled": "true"}}, "/grafanaDashboard/enabled"),
    "a dashboard label a number": ({"grafanaDashboard": {"labels": {"grafana_dashboard": 1}}},
                                   "/grafanaDashboard/labels/grafana_dashboard"),
    "dashboard labels a list": ({"grafanaDashboard": {"labels": ["grafana_dashboard"]}}, "/grafanaDashboard/labels"),
    "a dashboard annotation a boolean": ({"grafanaDashboard": {"annotations": {"folder": True}}},
                                         "/grafanaDashboard/annotations/folder"),
    "dashboard namespace a number": ({"grafanaDashboard": {"namespace": 5}}, "/grafanaDashboard/namespace"),
    "dashboard namespace no DNS label": ({"grafanaDashboard": {"namespace": "Monitoring"}},
                                         "/grafanaDashboard/namespace"),
    "an unknown dashboard key": ({"grafanaDashboard": {"folder": "perfpilot"}}, "folder"),
}


@pytest.mark.parametrize(("values", "where"), list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_the_schema_refuses_bad_values_when_rendering(chart: Chart, values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=re.escape(where)):
        _rendered(chart, values)


LINTED_BAD_VALUES = ["tickSeconds 0", "an unknown top-level key", "replicaCount 11"]


@pytest.mark.parametrize(("values", "where"), [BAD_VALUES[key] for key in LINTED_BAD_VALUES], ids=LINTED_BAD_VALUES)
def test_the_schema_refuses_bad_values_when_linting(values: dict[str, Any], where: str) -> None:
    report = lint(CHART, values, strict=True, namespace=NAMESPACE)
    assert any(where in error for error in report["errors"]), report


@pytest.mark.parametrize("values", [
    {"tickSeconds": 1}, {"tickSeconds": 300}, {"tickSeconds": 1.5},
    {"prometheus": {"timeoutSeconds": 0.1}}, {"prometheus": {"timeoutSeconds": 300}},
    {"liveness": {"port": 1}, "metrics": {"port": 65535}}, {"logFormat": "console"},
    {"prometheus": {"url": "HTTPS://[::1]:9090/prometheus"}},
    {"replicaCount": 1}, {**ELECTION, "replicaCount": 10},
    {**ELECTION, "leaderElection": {"enabled": True, "leaseDurationSeconds": 300}},
    {**ELECTION, "leaderElection": {"enabled": True, "leaseDurationSeconds": 3}, "tickSeconds": 1},
], ids=json.dumps)
def test_the_schema_accepts_the_bounds(chart: Chart, values: dict[str, Any]) -> None:
    assert _one(_documents(chart, values), "Deployment")


def test_metrics_port_0_serves_no_metrics_and_opens_no_port(chart: Chart) -> None:
    documents = _documents(chart, {"metrics": {"port": 0}})
    container = _container(documents)
    assert build_parser().parse_args(container["args"]).metrics_port == 0
    assert [port["name"] for port in container["ports"]] == ["health"]


def test_a_metrics_service_without_metrics_is_refused(chart: Chart) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=re.escape("metrics.service.enabled needs metrics.port")):
        _rendered(chart, {"metrics": {"port": 0, "service": {"enabled": True}}})


def test_the_chart_crd_is_exactly_the_committed_crd(chart: Chart) -> None:
    committed = REPO / "crds" / "performanceprofiles.perfpilot.io.yaml"
    copied = CHART / "crds" / committed.name
    assert copied.read_bytes() == committed.read_bytes(), "the chart's CRD drifted from crds/: run `make crd`"
    assert [crd["name"] for crd in chart.crds] == [f"crds/{committed.name}"]


def test_the_install_manifests_are_the_chart_rendered_by_render_install() -> None:
    spec = importlib.util.spec_from_file_location("render_install", REPO / "scripts" / "render_install.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (REPO / "manifests" / "install" / "perfpilot.yaml").read_text(encoding="utf-8")
    assert module.render_install() == committed, (
        "manifests/install drifted from the chart: run `make install-manifests`")


def _value_keys(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """The dotted keys of values.yaml, down to the maps the schema describes key by key (resources,
    podSecurityContext and the like are Kubernetes objects, one key each)."""
    for key, value in values.items():
        node = schema["properties"][key]
        if isinstance(value, dict) and "properties" in node:
            yield from _value_keys(value, node, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_every_values_key_is_in_the_readme_table_and_nothing_else_is(chart: Chart) -> None:
    keys = list(_value_keys(chart.values, chart.schema or {}))
    assert len(keys) > 30
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    table = re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE)
    assert sorted(table) == sorted(keys)


def test_every_values_key_has_a_comment_above_it() -> None:
    lines = (CHART / "values.yaml").read_text(encoding="utf-8").splitlines()
    keys = [i for i, line in enumerate(lines) if re.match(r"^\s*[A-Za-z]\w*:", line)]
    assert len(keys) > 30
    uncommented = [lines[i].strip() for i in keys if not lines[i - 1].lstrip().startswith("#")]
    assert uncommented == []
