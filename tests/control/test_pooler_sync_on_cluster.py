"""A pool change made live on the running pgBouncers' admin consoles (spec.pool.pgbouncer.adminSecretRef): the
emulated cluster holds shop/api, its pgBouncer ConfigMap, a Secret and two pooler Pods whose IPs are two real
pgBouncers (127.0.0.2 and 127.0.0.3, one port, as pods share one), each running on its own copy of the ini as the
kubelet mounted it before perfpilot's write. The real Prometheus of the control tests makes the engine grow the
pool (test_cycle_on_cluster.py)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import Any

import pytest
from kubeharness import MERGE_PATCH, EmulatedCluster
from pgbouncer_harness import PgBouncer, pgbouncer_folder, running_pgbouncer
from promharness import PrometheusServer, free_port
from shop_scenario import AT, BEFORE, conditions, events, pool, profile_named, run_shop_cycle, seed, status_of

from perfpilot.actuate.kube import KubeApi, KubeError
from perfpilot.api.spec import PerformanceProfile
from perfpilot.api.status import PoolSize
from perfpilot.control.cycle import TickReads
from perfpilot.control.leader import LeaderElector, LeaderGuardedApi, LeadershipLost, LeaseSettings
from perfpilot.control.pooler_sync import SECRET_LABEL, apply_pooler_sync

pytestmark = pytest.mark.integration

PASSWORD = "pool-admin-password"
POD_IPS = {"pgbouncer-a": "127.0.0.2", "pgbouncer-b": "127.0.0.3"}


def _admin_profile(*, mode: str = "Auto") -> dict[str, Any]:
    profile = profile_named(mode=mode)
    profile["spec"]["pool"]["pgbouncer"]["adminSecretRef"] = {"name": "pgbouncer-admin"}
    return profile


def _secret(password: str = PASSWORD, *, marked: bool = True) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
            "metadata": {"name": "pgbouncer-admin", "namespace": "shop",
                         "labels": {SECRET_LABEL: "true"} if marked else {"app": "pgbouncer"}},
            "data": {"username": base64.b64encode(b"admin").decode(),
                     "password": base64.b64encode(password.encode()).decode()}}


def _pooler_pod(name: str, ip: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop",
                                                           "labels": {"app": "pgbouncer"}},
            "spec": {"containers": [{"name": "pgbouncer", "image": "bitnami/pgbouncer"}],
                     "volumes": [{"name": "config", "configMap": {"name": "pgbouncer"}}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}}


def _ini(kube: EmulatedCluster) -> str:
    text: str = kube.get("v1", "ConfigMap", "pgbouncer", "shop")["data"]["pgbouncer.ini"]
    return text


@contextmanager
def _shop_with_poolers(kube: EmulatedCluster, *, mode: str = "Auto", secret: dict[str, Any] | None = None,
                       running: tuple[str, ...] = tuple(POD_IPS)) -> Iterator[dict[str, PgBouncer]]:
    """shop/api seeded with the admin Secret and the pooler Pods; the ConfigMap's ini listens on one port, where
    a pgBouncer runs for each Pod named in ``running`` (the others' IPs have nothing listening)."""
    seed(kube, _admin_profile(mode=mode))
    port = free_port()
    ini = _ini(kube).replace("[pgbouncer]\n", f"[pgbouncer]\nlisten_port = {port}\n")
    kube.request("PATCH", kube.path("v1", "ConfigMap", "shop") + "/pgbouncer",
                 {"data": {"pgbouncer.ini": ini}}, content_type=MERGE_PATCH).raise_for_status()
    if secret != {}:
        kube.create(secret or _secret())
    for name, ip in POD_IPS.items():
        kube.create(_pooler_pod(name, ip))
    with ExitStack() as stack:
        started: dict[str, PgBouncer] = {}
        for name in running:
            folder = stack.enter_context(pgbouncer_folder())
            pgbouncer = stack.enter_context(running_pgbouncer(folder, ini, host=POD_IPS[name], port=port,
                                                              password=PASSWORD))
            assert not isinstance(pgbouncer, str), pgbouncer
            started[name] = pgbouncer
        yield started


def _condition(status: dict[str, Any], kind: str = "PoolerSynced") -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status["conditions"] if c["type"] == kind)
    return found


def _running_pool(pgbouncer: PgBouncer) -> PoolSize:
    size, reserve = pgbouncer.pool_sizes("app")
    return PoolSize(default_pool_size=size, reserve_pool_size=reserve)


def test_a_pool_change_is_live_on_every_pooler_in_the_evaluation_that_writes_it(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    with _shop_with_poolers(kube) as poolers:
        assert {name: _running_pool(p) for name, p in poolers.items()} == dict.fromkeys(POD_IPS, BEFORE)
        files = {name: p.config.read_text() for name, p in poolers.items()}
        first = len(list(kube.emulator))

        [outcome] = run_shop_cycle(kube, scenario_prometheus.url)

        assert outcome.written, outcome.problem
        assert outcome.pooler_synced == "Synced"  # what /metrics counts (perfpilot_pooler_syncs_total)
        grown = outcome.decision.change.edit.to_value
        assert pool(kube) == grown != BEFORE
        assert {name: _running_pool(p) for name, p in poolers.items()} == dict.fromkeys(POD_IPS, grown)
        assert {name: p.config.read_text() for name, p in poolers.items()} == files  # live, the files as mounted
        status = status_of(kube)
        assert status["lastChange"]["verdict"] == "Pending"
        synced = _condition(status)
        assert (synced["status"], synced["reason"]) == ("True", "Synced")
        for name in POD_IPS:
            assert f"{name}: SET default_pool_size = {grown.default_pool_size}" in synced["message"]
        assert conditions(status)["Ready"] == "True"
        # What the chart's pool.adminConsole grants on Secrets (tests/chart): get, of the one named.
        secrets = {(str(request.method).rsplit(".", 1)[-1].upper(), request.url.path)
                   for request in list(kube.emulator)[first:] if "/secrets" in request.url.path}
        assert secrets == {("GET", "/api/v1/namespaces/shop/secrets/pgbouncer-admin")}


def test_a_pooler_that_fell_back_to_its_file_is_brought_back_at_the_next_evaluation(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    with _shop_with_poolers(kube) as poolers:
        [first] = run_shop_cycle(kube, scenario_prometheus.url)
        grown = first.decision.change.edit.to_value
        poolers["pgbouncer-b"].admin("RELOAD")  # someone reloads before the kubelet synced its file
        assert _running_pool(poolers["pgbouncer-b"]) == BEFORE

        [second] = run_shop_cycle(kube, scenario_prometheus.url, now=AT + timedelta(minutes=1))

        assert not second.written  # no new change: the one written is brought back
        assert {name: _running_pool(p) for name, p in poolers.items()} == dict.fromkeys(POD_IPS, grown)
        synced = _condition(status_of(kube))
        assert synced["status"] == "True"
        assert "sent pgbouncer-b: SET" in synced["message"] and "pgbouncer-a: SET" not in synced["message"]


def test_a_pooler_not_answering_is_reported_and_the_change_stays_recorded(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    with _shop_with_poolers(kube, running=("pgbouncer-a",)) as poolers:
        [outcome] = run_shop_cycle(kube, scenario_prometheus.url)

        assert outcome.written, outcome.problem
        grown = outcome.decision.change.edit.to_value
        assert pool(kube) == grown
        assert _running_pool(poolers["pgbouncer-a"]) == grown  # the one that answers has it
        status = status_of(kube)
        assert status["lastChange"]["verdict"] == "Pending"
        synced = _condition(status)
        assert (synced["status"], synced["reason"]) == ("False", "AdminUnreachable")
        assert outcome.pooler_synced == "AdminUnreachable"
        assert "Pod/pgbouncer-b" in synced["message"] and "127.0.0.3" in synced["message"]
        assert "Pod/pgbouncer-a" not in synced["message"]


def test_a_missing_secret_is_named_and_changes_nothing_else(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    with _shop_with_poolers(kube, secret={}) as poolers:
        [outcome] = run_shop_cycle(kube, scenario_prometheus.url)

        assert outcome.written, outcome.problem
        assert {name: _running_pool(p) for name, p in poolers.items()} == dict.fromkeys(POD_IPS, BEFORE)
        synced = _condition(status_of(kube))
        assert (synced["status"], synced["reason"]) == ("False", "SecretUnreadable")
        assert "adminSecretRef.name pgbouncer-admin: no Secret of that name in namespace shop" in synced["message"]


def test_a_wrong_password_is_reported_without_the_password(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    with _shop_with_poolers(kube) as poolers:
        wrong = "not-the-" + PASSWORD
        kube.request("PATCH", kube.path("v1", "Secret", "shop") + "/pgbouncer-admin",
                     {"data": {"password": base64.b64encode(wrong.encode()).decode()}},
                     content_type=MERGE_PATCH).raise_for_status()
        run_shop_cycle(kube, scenario_prometheus.url)

        assert {name: _running_pool(p) for name, p in poolers.items()} == dict.fromkeys(POD_IPS, BEFORE)
        synced = _condition(status_of(kube))
        assert (synced["status"], synced["reason"]) == ("False", "AdminUnreachable")
        assert "password authentication failed" in synced["message"]
        assert wrong not in synced["message"]


def test_a_recommend_profile_leaves_the_poolers_alone(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    with _shop_with_poolers(kube, mode="Recommend") as poolers:
        poolers["pgbouncer-a"].admin("SET default_pool_size = 3")  # not the ConfigMap's: still not touched
        run_shop_cycle(kube, scenario_prometheus.url)

        assert _running_pool(poolers["pgbouncer-a"]) == PoolSize(default_pool_size=3, reserve_pool_size=2)
        assert _running_pool(poolers["pgbouncer-b"]) == BEFORE
        assert "PoolerSynced" not in conditions(status_of(kube))


def test_a_secret_not_marked_for_the_console_is_not_sent_anywhere(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    with _shop_with_poolers(kube, secret=_secret(marked=False)) as poolers:
        [outcome] = run_shop_cycle(kube, scenario_prometheus.url)

        assert outcome.written, outcome.problem
        assert {name: _running_pool(p) for name, p in poolers.items()} == dict.fromkeys(POD_IPS, BEFORE)
        synced = _condition(status_of(kube))
        assert (synced["status"], synced["reason"]) == ("False", "SecretNotMarked")
        assert f'{SECRET_LABEL}: "true"' in synced["message"]


@pytest.mark.parametrize(("mode", "why"), [("Recommend", "mode Recommend"), ("Off", "not evaluated (Off)")])
def test_a_sync_turned_off_says_so_instead_of_keeping_the_last_verdict(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer, mode: str, why: str
) -> None:
    with _shop_with_poolers(kube):
        run_shop_cycle(kube, scenario_prometheus.url)
        assert _condition(status_of(kube))["reason"] == "Synced"
        kube.request("PATCH", kube.path("perfpilot.io/v1alpha1", "PerformanceProfile", "shop") + "/api",
                     {"spec": {"mode": mode}}, content_type=MERGE_PATCH).raise_for_status()

        run_shop_cycle(kube, scenario_prometheus.url, now=AT + timedelta(minutes=1))

        synced = _condition(status_of(kube))
        assert (synced["status"], synced["reason"]) == ("Unknown", "SyncOff")
        assert why in synced["message"]


class _SecondStatusRefused(KubeApi):
    """The API server takes the status that records the change and refuses the next one."""

    statuses = 0

    def apply_status(self, namespace: str, name: str, status: Any) -> dict[str, Any]:
        self.statuses += 1
        if self.statuses == 2:
            raise KubeError(503, "PATCH status: the server is unavailable")
        return super().apply_status(namespace, name, status)


def test_a_status_refused_after_the_sync_leaves_the_change_written_recorded_and_announced(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    with _shop_with_poolers(kube) as poolers:
        api = _SecondStatusRefused(kube.api)
        [outcome] = run_shop_cycle(kube, scenario_prometheus.url, api=api)

        assert api.statuses == 2
        assert outcome.written and outcome.phase is not None, outcome.problem
        grown = outcome.decision.change.edit.to_value
        assert {name: _running_pool(p) for name, p in poolers.items()} == dict.fromkeys(POD_IPS, grown)
        status = status_of(kube)
        assert status["lastChange"]["verdict"] == "Pending"
        assert "PoolerSynced" not in conditions(status)  # the status that would have said so was refused
        assert [event["reason"] for event in events(kube)] == ["Changed"]


def test_a_replica_that_no_longer_holds_the_lease_sends_no_command(kube: EmulatedCluster) -> None:
    with _shop_with_poolers(kube) as poolers:
        ini = _ini(kube).replace("default_pool_size = 10", "default_pool_size = 15")
        kube.request("PATCH", kube.path("v1", "ConfigMap", "shop") + "/pgbouncer",
                     {"data": {"pgbouncer.ini": ini}}, content_type=MERGE_PATCH).raise_for_status()
        api = KubeApi(kube.api)
        never_renewed = LeaderElector(api, LeaseSettings(namespace="perfpilot", identity="a"), wall_clock=lambda: AT)
        profile = PerformanceProfile.model_validate(_admin_profile())

        with pytest.raises(LeadershipLost):
            apply_pooler_sync(TickReads(LeaderGuardedApi(api, never_renewed)), profile, paused=False, previous=[])

        assert {name: _running_pool(p) for name, p in poolers.items()} == dict.fromkeys(POD_IPS, BEFORE)
        # The same sync as the leader (no election) sends the SET.
        synced = apply_pooler_sync(TickReads(api), profile, paused=False, previous=[])
        assert synced is not None and synced.reason == "Synced", synced
        assert {name: _running_pool(p).default_pool_size for name, p in poolers.items()} == dict.fromkeys(POD_IPS, 15)


def test_a_config_map_gone_since_the_evaluation_read_it_is_named(kube: EmulatedCluster) -> None:
    with _shop_with_poolers(kube) as poolers:
        document = _admin_profile()
        document["spec"]["pool"]["pgbouncer"]["configMapRef"] = {"name": "pgbouncer-gone"}
        profile = PerformanceProfile.model_validate(document)

        synced = apply_pooler_sync(TickReads(KubeApi(kube.api)), profile, paused=False, previous=[])

        assert synced is not None and (synced.status, synced.reason) == ("False", "PoolerUnreadable")
        assert synced.message == ("spec.pool.pgbouncer.configMapRef.name pgbouncer-gone: no ConfigMap of that name "
                                  "in namespace shop")
        assert {name: _running_pool(p) for name, p in poolers.items()} == dict.fromkeys(POD_IPS, BEFORE)
