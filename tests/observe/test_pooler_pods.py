"""pooler_pods and pgbouncer_listen_port: where the admin consoles of a ConfigMap pgBouncer's replicas are."""

from __future__ import annotations

from typing import Any

import pytest

from perfpilot.observe.workload import PoolerPod, WorkloadSpecError, pgbouncer_listen_port, pooler_pods


def _pod(name: str, *, volumes: list[dict[str, Any]], phase: str = "Running", ip: str | None = "10.0.0.1",
         deleting: bool = False, ready: str = "True", mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})}
    return {"kind": "Pod", "metadata": metadata,
            "spec": {"volumes": volumes, "containers": [{"name": "pgbouncer", "volumeMounts": mounts or []}]},
            "status": {"phase": phase, **({"podIP": ip} if ip else {}),
                       "conditions": [{"type": "Ready", "status": ready}]}}


MOUNTS = [{"name": "config", "configMap": {"name": "pgbouncer"}}]


def test_only_running_pods_that_mount_the_config_map_and_have_an_ip_are_poolers() -> None:
    objects = [
        _pod("b", volumes=MOUNTS, ip="10.0.0.2"),
        _pod("a", volumes=[{"name": "all", "projected": {"sources": [{"secret": {"name": "tls"}},
                                                                       {"configMap": {"name": "pgbouncer"}}]}}]),
        _pod("other-config", volumes=[{"name": "config", "configMap": {"name": "nginx"}}]),
        _pod("starting", volumes=MOUNTS, phase="Pending", ip=None),
        _pod("no-ip-yet", volumes=MOUNTS, ip=None),
        _pod("going", volumes=MOUNTS, deleting=True),
        _pod("done", volumes=MOUNTS, phase="Succeeded"),
        _pod("not-ready", volumes=MOUNTS, ready="False"),
        {"kind": "Deployment", "metadata": {"name": "pgbouncer"}, "spec": {"template": {"spec": {"volumes": MOUNTS}}}},
    ]
    assert pooler_pods(objects, "pgbouncer") == [PoolerPod("a", "10.0.0.1"), PoolerPod("b", "10.0.0.2")]


def test_a_pod_mounting_the_ini_with_sub_path_is_one_whose_file_never_follows() -> None:
    ini_file = {"name": "config", "mountPath": "/etc/pgbouncer/pgbouncer.ini", "subPath": "pgbouncer.ini"}
    objects = [
        _pod("sub-path", volumes=MOUNTS, mounts=[ini_file]),
        _pod("whole", volumes=MOUNTS, ip="10.0.0.2", mounts=[{"name": "config", "mountPath": "/etc/pgbouncer"},
                                                             {"name": "tls", "mountPath": "/tls", "subPath": "ca"}]),
        # A sidecar's subPath mount beside pgBouncer's whole one: the whole one is taken for pgBouncer's.
        {**_pod("sidecar", volumes=MOUNTS, ip="10.0.0.3", mounts=[{"name": "config", "mountPath": "/etc/pgbouncer"}]),
         "spec": {"volumes": MOUNTS, "containers": [
             {"name": "pgbouncer", "volumeMounts": [{"name": "config", "mountPath": "/etc/pgbouncer"}]},
             {"name": "exporter", "volumeMounts": [ini_file]}]}},
    ]
    assert pooler_pods(objects, "pgbouncer") == [PoolerPod("sidecar", "10.0.0.3", file_follows=True),
                                                 PoolerPod("sub-path", "10.0.0.1", file_follows=False),
                                                 PoolerPod("whole", "10.0.0.2", file_follows=True)]


def test_a_pod_with_malformed_volumes_is_refused_with_the_field() -> None:
    with pytest.raises(WorkloadSpecError, match=r"Pod/a: spec.volumes: expected a list"):
        pooler_pods([_pod("a", volumes="config")], "pgbouncer")  # type: ignore[arg-type]


@pytest.mark.parametrize(("ini", "port"), [
    ("[pgbouncer]\npool_mode = session\n", 6432),
    ("[pgbouncer]\nlisten_port = 5432\n", 5432),
    ("[pgbouncer]\nlisten_port = 5432\n[pgbouncer]\n", 6432),  # a second section starts from the defaults
    ("[databases]\napp = host=db\n", 6432),
])
def test_the_listen_port_is_the_one_pgbouncer_applies(ini: str, port: int) -> None:
    assert pgbouncer_listen_port(ini) == port


@pytest.mark.parametrize("raw", ["0", "70000", "http"])
def test_a_listen_port_out_of_range_is_refused_with_its_value(raw: str) -> None:
    with pytest.raises(WorkloadSpecError, match=rf"ConfigMap/pgbouncer: \[pgbouncer\] listen_port.*'{raw}'"):
        pgbouncer_listen_port(f"[pgbouncer]\nlisten_port = {raw}\n", where="ConfigMap/pgbouncer")
