"""The model cluster: one Deployment's pods, its rollouts, their CPU/memory, latency and the pgBouncer pool.

The parameters are chosen once (``ClusterParams``, documented in ``docs/simulator.md``). The model advances
in ticks of ``TICK_SECONDS``; within a tick the request rate is constant. Each tick:

1. the Deployment controller creates and deletes pods toward ``spec_replicas`` (rolling update with
   maxSurge/maxUnavailable 25% when the pod template changed); an HPA rescale (``scale``) reconciles at
   once;
2. ready pods share the requests evenly (a round-robin Service), whatever their size: each group of pods of
   one size keeps its own CPU backlog against its own capacity; pods that are starting get none but burn
   start-up CPU;
3. per pod: CPU used, CFS throttling against the limit, working set (optionally growing), an OOM kill
   and restart when the working set passes the memory limit;
4. latency (``queueing.LatencyMix``), failed requests (those that would wait longer than the timeout),
   and the pool's gauges.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from perfpilot.api.status import ContainerResources, PoolSize
from perfpilot.sim.queueing import LatencyMix, compute_cpu_sojourn_mean_seconds, draw_pool_instant, erlang_c
from perfpilot.tuning.values import HPA_SYNC_SECONDS

TICK_SECONDS = float(HPA_SYNC_SECONDS)  # the replay's tick is the HPA controller's sync
MIB = 2**20
CFS_PERIODS_PER_SECOND = 10.0  # the kernel's default 100 ms CFS period
CONTAINER = "app"
SEED = 1998  # the gauges are sampled; a fixed seed keeps every replay identical
OOM_KILLED = "OOMKilled"  # the container status's termination reason


@dataclass(frozen=True)
class ClusterParams:
    """The service the model stands for. See docs/simulator.md for why each value."""

    cpu_demand_seconds: float = 0.055  # CPU time one request needs, single-threaded
    db_seconds: float = 0.120  # database time per request, holding one pooled connection
    connections_per_request: float = 1.0
    startup_seconds: float = 75.0  # container start to readiness (image cached, JIT/cache warm-up)
    startup_cpu_millicores: int = 300  # CPU burnt while starting
    idle_cpu_millicores: int = 20
    burst_factor: float = 1.5  # CPU a pod gets = min(limit, burst_factor x request): nodes packed by requests
    base_memory_bytes: int = 350 * MIB
    memory_growth_bytes_per_hour: float = 0.0  # per pod, since its container started
    utilisation_cap: float = 0.98  # above this the fluid backlog takes over from the queueing formula
    request_timeout_seconds: float = 10.0  # a request that would wait longer fails
    metrics_window_seconds: float = TICK_SECONDS  # metrics-server's sample window
    # metrics-server scrapes the kubelets every 15 s and a CPU rate needs two samples: a container has no
    # metric for about this long after it starts, and the HPA counts its pod as missing meanwhile.
    metrics_first_sample_seconds: float = 2 * TICK_SECONDS
    # The HPA reads metrics-server's latest sample, scraped up to one resolution (15 s) before its sync and
    # covering the window before that scrape: at a sync it sees the usage of the tick before the last.
    metrics_delay_seconds: float = TICK_SECONDS
    reserve_pool_timeout_seconds: float = 5.0  # pgBouncer's default: reserve connections after 5 s of waiting
    # pgBouncer's default: a server connection idle this long is closed, the reserve's among them (they are
    # not closed when the wait ends, only once they go unused).
    server_idle_timeout_seconds: float = 600.0
    max_surge: float = 0.25
    max_unavailable: float = 0.25

    def effective_cpu_millicores(self, resources: ContainerResources) -> float:
        limit = resources.cpu_limit_millicores
        request = cpu_request_millicores(resources)
        burst = self.burst_factor * request
        return float(min(limit, burst) if limit else burst)


def cpu_request_millicores(resources: ContainerResources) -> int:
    """The container's CPU request as the API server stores it: one with a limit and no request gets the
    limit (Kubernetes' defaulting); 0 with neither."""
    return resources.cpu_request_millicores or resources.cpu_limit_millicores or 0


def memory_request_bytes(resources: ContainerResources) -> int:
    """The container's memory request as the API server stores it (the limit when only that is set); 0 with
    neither."""
    return resources.memory_request_bytes or resources.memory_limit_bytes or 0


def timed_out_latency(params: ClusterParams) -> LatencyMix:
    """What the client sees of a request that times out: the timeout itself, for every one of them."""
    return LatencyMix.point_mass(params.request_timeout_seconds)


@dataclass(slots=True)
class SimPod:
    name: str
    version: int
    resources: ContainerResources
    created_seconds: float
    ready_at_seconds: float
    container_started_seconds: float
    cpu_seconds_total: float = 0.0
    throttled_periods_total: float = 0.0
    periods_total: float = 0.0
    usage_millicores: float = 0.0
    working_set_bytes: float = 0.0
    restarts: int = 0
    # The container status's lastState.terminated: why and when the container last ended (None: never).
    last_termination_reason: str | None = None
    last_termination_seconds: float | None = None

    def ready(self, now_seconds: float) -> bool:
        return self.ready_at_seconds <= now_seconds


@dataclass(frozen=True, slots=True)
class TickOutcome:
    start_seconds: float
    requests: float  # arrived in the tick
    failed: float
    latency: LatencyMix
    pool_server_active: float
    pool_servers_open: int  # the pool's size, and the reserve's connections while open
    pool_client_waiting: float
    pool_max_wait_seconds: float


@dataclass(frozen=True, slots=True)
class CpuBacklog:
    """The fluid CPU backlog of the ready pods of one size, and which pods hold it (a share each)."""

    pod_names: frozenset[str]
    requests: float

    @property
    def pods(self) -> int:
        return len(self.pod_names)


@dataclass(frozen=True, slots=True)
class _GroupServed:
    cpu_millicores: float
    pods: int
    served_rate_per_second: float  # requests whose CPU work the group did in the tick, per second
    per_pod_rate_per_second: float
    failed: float  # requests that would have waited past the timeout
    ok_requests: float  # the group's arrivals in the tick, less what it failed
    backlog_after: float
    delay_seconds: float  # the backlog's delay, added to every request the group serves


def _serve_group(*, params: ClusterParams, cpu_millicores: float, pods: int, ready_pods: int,
                 rate_per_second: float, backlog_requests: float, dt_seconds: float) -> _GroupServed:
    """One tick of the ready pods of one size: a round-robin share ``pods / ready_pods`` of the arrivals
    against their own capacity; beyond ``utilisation_cap`` the excess queues as a fluid backlog, drained as
    capacity allows, and what would wait past the timeout fails. Drained work is served work: CPU is used."""
    per_pod_arrivals = rate_per_second / ready_pods
    rate = rate_per_second * (pods / ready_pods)
    capacity = pods * cpu_millicores / 1000.0 / params.cpu_demand_seconds * params.utilisation_cap
    before = backlog_requests
    if capacity <= 0:
        failed = before + rate * dt_seconds
        return _GroupServed(cpu_millicores, pods, 0.0, 0.0, failed, 0.0, 0.0, params.request_timeout_seconds)
    after = max(0.0, before + (rate - capacity) * dt_seconds)
    limit = params.request_timeout_seconds * capacity
    failed = max(0.0, after - limit)
    after = min(after, limit)
    drained_per_second = (before - after - failed) / dt_seconds  # negative while the backlog grows
    return _GroupServed(
        cpu_millicores=cpu_millicores,
        pods=pods,
        served_rate_per_second=rate + drained_per_second,
        per_pod_rate_per_second=per_pod_arrivals + drained_per_second / pods,
        failed=failed,
        ok_requests=max(0.0, rate * dt_seconds - failed),
        backlog_after=after,
        delay_seconds=(before + after) / 2 / capacity,
    )


def _throttled_share(usage_millicores: float, limit_millicores: int | None) -> float:
    """Share of CFS periods throttled. Requests arrive in bursts much shorter than a second, so periods
    start being throttled well before the average reaches the limit: none below half the limit, then
    rising quadratically to every period at the limit."""
    if not limit_millicores:
        return 0.0
    x = (usage_millicores / limit_millicores - 0.5) / 0.5
    return 0.0 if x <= 0 else min(1.0, x * x)


@dataclass
class Cluster:
    params: ClusterParams
    resources: ContainerResources
    pool: PoolSize
    spec_replicas: int
    now_seconds: float
    pods: list[SimPod] = field(default_factory=list)
    template_version: int = 0
    cpu_backlogs: dict[float, CpuBacklog] = field(default_factory=dict)  # per pod size (effective CPU)
    pool_backlog_requests: float = 0.0
    reserve_open_until_seconds: float = -math.inf  # the reserve's connections stay open until then
    rollout_complete_version: int = 0  # the template the Deployment last reported rolled out (NewReplicaSetAvailable)
    oom_kill_seconds: list[float] = field(default_factory=list)  # every kill, for tests; not what a reader sees
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    _serial: int = 0

    @classmethod
    def started(
        cls, *, params: ClusterParams, resources: ContainerResources, pool: PoolSize, replicas: int, now_seconds: float
    ) -> Cluster:
        """A cluster whose pods have been running (ready) for a while before the replay starts: the newest for
        an hour, the others one start-up delay apart before it, as a rolling update with one pod of surge
        brings them up (pods of one age would also all reach a growing memory limit at once)."""
        cluster = cls(params, resources, pool, replicas, now_seconds)
        for index in range(replicas):
            cluster._create_pod(now_seconds - 3600.0 - (replicas - 1 - index) * params.startup_seconds)
        return cluster

    def pool_servers_open(self, now_seconds: float) -> int:
        """The pool's server connections open: its size, and the reserve's while they stay open."""
        reserve = self.pool.reserve_pool_size if now_seconds < self.reserve_open_until_seconds else 0
        return self.pool.default_pool_size + reserve

    @property
    def cpu_backlog_requests(self) -> float:
        """Requests queued beyond what the ready pods serve, over every pod size."""
        return sum(backlog.requests for backlog in self.cpu_backlogs.values())

    # --- Deployment controller -------------------------------------------------------------------------

    def set_resources(self, resources: ContainerResources) -> None:
        """A new pod template: the Deployment rolls it out."""
        if resources != self.resources:
            self.resources = resources
            self.template_version += 1

    def rollout_in_progress(self) -> bool:
        """What the reader makes of the Deployment's status (``observe.workload.rollout_in_progress``): pods
        of an older template left, fewer pods on the latest one than wanted, or the rollout's last new pods
        still starting (``Progressing`` still ``ReplicaSetUpdated``). Pods starting after a scale-up, or
        restarting once the rollout was reported complete, are no rollout."""
        if any(p.version != self.template_version for p in self.pods):
            return True
        if sum(1 for p in self.pods if p.version == self.template_version) < self.spec_replicas:
            return True
        return self.rollout_complete_version != self.template_version

    def oom_kills_shown(self, *, since_seconds: float, until_seconds: float) -> int:
        """OOM kills the current Pods' container statuses show between ``since`` and ``until`` (both
        included), as ``observe.workload.oom_kills_of`` counts them: a container's last termination only, so
        at most one per container (the model's container restarts at once, so its ``state`` is never
        terminated), and none of a pod since deleted."""
        return sum(
            1 for pod in self.pods
            if pod.last_termination_reason == OOM_KILLED and pod.last_termination_seconds is not None
            and since_seconds <= pod.last_termination_seconds <= until_seconds
        )

    def scale(self, replicas: int) -> None:
        """The HPA rescales the Deployment: its controller creates or deletes the pods at once (within
        milliseconds on a cluster), so a scale-up is never read as a rollout in progress. During a rollout
        the next tick's reconcile does it: a second pass of the rolling update at one instant would move
        the rollout a step ahead (deleting old pods frees surge room)."""
        self.spec_replicas = replicas
        if all(pod.version == self.template_version for pod in self.pods):
            self._reconcile_deployment(self.now_seconds)

    def _create_pod(self, now_seconds: float) -> None:
        self._serial += 1
        self.pods.append(SimPod(
            name=f"api-{self.template_version}-{self._serial}",
            version=self.template_version,
            resources=self.resources,
            created_seconds=now_seconds,
            ready_at_seconds=now_seconds + self.params.startup_seconds,
            container_started_seconds=now_seconds,
            working_set_bytes=float(self.params.base_memory_bytes),
        ))

    def _deletion_order(self, pods: list[SimPod], now: float) -> list[SimPod]:
        """The order pods are deleted in: the oldest template's ReplicaSet first (a rollout scales the old
        ReplicaSets down oldest first), within one the ReplicaSet's own (``controller.ActivePods``' ranking):
        not ready first, then ready for the shortest time, then more restarts, then the newest."""
        return sorted(pods, key=lambda p: (p.version, p.ready(now), -p.ready_at_seconds, -p.restarts,
                                           -p.created_seconds))

    def _delete(self, victims: list[SimPod]) -> None:
        gone = {id(p) for p in victims}
        self.pods = [p for p in self.pods if id(p) not in gone]

    def _reconcile_deployment(self, now: float) -> None:
        wanted = self.spec_replicas
        new = [p for p in self.pods if p.version == self.template_version]
        old = [p for p in self.pods if p.version != self.template_version]
        if not old:
            if len(new) < wanted:
                for _ in range(wanted - len(new)):
                    self._create_pod(now)
            elif len(new) > wanted:
                self._delete(self._deletion_order(new, now)[: len(new) - wanted])
            self._note_rollout_complete(now)
            return
        surge = math.ceil(self.params.max_surge * wanted)
        unavailable = math.floor(self.params.max_unavailable * wanted)
        self._create_new_pods_into_surge_room(now, surge=surge)
        new = [p for p in self.pods if p.version == self.template_version]
        if len(new) > wanted:
            self._delete(self._deletion_order(new, now)[: len(new) - wanted])
            new = [p for p in self.pods if p.version == self.template_version]
        # As reconcileOldReplicaSets: at most allPods - minAvailable - the new pods not yet available go, the
        # old pods not ready first (cleanupUnhealthyReplicas: no availability lost), then ready ones while
        # enough stay up.
        min_available = wanted - unavailable
        limit = len(self.pods) - min_available - sum(1 for p in new if not p.ready(now))
        if limit <= 0:
            return
        victims = [p for p in self._deletion_order(old, now) if not p.ready(now)][:limit]
        ready_total = sum(1 for p in self.pods if p.ready(now))
        removable = ready_total - min_available
        for pod in self._deletion_order([p for p in old if p.ready(now)], now):
            if removable <= 0:
                break
            victims.append(pod)
            removable -= 1
        self._delete(victims)
        # Deleting old pods frees surge room, which the controller fills at once (its next sync follows the
        # ReplicaSet's update within milliseconds), not a tick later.
        self._create_new_pods_into_surge_room(now, surge=surge)
        self._note_rollout_complete(now)

    def _note_rollout_complete(self, now: float) -> None:
        """The controller reports the rollout complete (NewReplicaSetAvailable) once only pods of the latest
        template are left, as many as wanted, all available; it does not take that back for a pod that stops
        being ready later."""
        pods = self.pods
        if (all(p.version == self.template_version for p in pods) and len(pods) >= self.spec_replicas
                and all(p.ready(now) for p in pods)):
            self.rollout_complete_version = self.template_version

    def _create_new_pods_into_surge_room(self, now: float, *, surge: int) -> None:
        wanted = self.spec_replicas
        new = sum(1 for p in self.pods if p.version == self.template_version)
        room = wanted + surge - len(self.pods)
        for _ in range(max(0, min(wanted - new, room))):
            self._create_pod(now)

    # --- one tick ---------------------------------------------------------------------------------------

    def advance(self, *, rate_per_second: float, dt_seconds: float = TICK_SECONDS) -> TickOutcome:
        """Run ``[now, now + dt)`` at ``rate_per_second`` and move the clock."""
        p = self.params
        now = self.now_seconds
        self._reconcile_deployment(now)
        ready = [pod for pod in self.pods if pod.ready(now)]
        arrivals = rate_per_second * dt_seconds
        demand = p.cpu_demand_seconds

        members: dict[float, list[str]] = {}
        for pod in ready:
            members.setdefault(p.effective_cpu_millicores(pod.resources), []).append(pod.name)
        groups = {cpu: len(names) for cpu, names in members.items()}

        # CPU side: each group of same-size pods gets its round-robin share of the arrivals and keeps its own
        # fluid backlog against its own capacity. The queues of pods that are gone (deleted, or restarting
        # after an OOM kill) go with them: those requests fail.
        failed = 0.0
        backlog_before = self.cpu_backlog_requests
        carried: dict[float, float] = {}
        for cpu, held in self.cpu_backlogs.items():
            # The pods that hold the queue and are still ready: a new pod of the same size holds none of it.
            staying = len(held.pod_names.intersection(members.get(cpu, ())))
            carried[cpu] = held.requests * staying / held.pods
            failed += held.requests - carried[cpu]
        served_rate = 0.0
        backlogs: dict[float, CpuBacklog] = {}
        served: list[_GroupServed] = []
        for cpu, count in groups.items():
            group = _serve_group(
                params=p, cpu_millicores=cpu, pods=count, ready_pods=len(ready), rate_per_second=rate_per_second,
                backlog_requests=carried.get(cpu, 0.0), dt_seconds=dt_seconds,
            )
            failed += group.failed
            served_rate += group.served_rate_per_second
            if group.backlog_after > 0:
                backlogs[cpu] = CpuBacklog(frozenset(members[cpu]), group.backlog_after)
            served.append(group)
        if not ready:
            failed += arrivals  # nothing serves: every request times out
        self.cpu_backlogs = backlogs
        per_pod_rate = {group.cpu_millicores: group.per_pod_rate_per_second for group in served}

        rates: list[float] = []
        ok = [group.ok_requests for group in served]
        everything_served = all(group.failed == 0 for group in served)
        for group in served:
            # Utilisation capped at utilisation_cap: beyond it the backlog carries the delay.
            cores = group.cpu_millicores / 1000.0
            arrival = min(group.per_pod_rate_per_second, p.utilisation_cap * cores / demand)
            mean = compute_cpu_sojourn_mean_seconds(demand_seconds=demand, cores=cores,
                                                    arrival_rate_per_second=arrival)
            rates.append(1.0 / mean)
        # The share of the tick's successful requests each group served: its round-robin share, less what
        # it failed.
        if everything_served or sum(ok) <= 0:
            weights = [group.pods / len(ready) for group in served]
        else:
            weights = [value / sum(ok) for value in ok]

        # Pods: CPU, throttling, memory, OOM.
        growth_per_second = p.memory_growth_bytes_per_hour / 3600.0
        for pod in self.pods:
            limit_m = pod.resources.cpu_limit_millicores
            if pod.ready(now):
                cpu = p.effective_cpu_millicores(pod.resources)
                usage = min(cpu, per_pod_rate[cpu] * demand * 1000.0) + p.idle_cpu_millicores
            else:
                usage = float(p.startup_cpu_millicores)
            if limit_m:
                usage = min(usage, float(limit_m))
            pod.usage_millicores = usage
            pod.cpu_seconds_total += usage / 1000.0 * dt_seconds
            periods = CFS_PERIODS_PER_SECOND * dt_seconds
            pod.periods_total += periods
            pod.throttled_periods_total += periods * _throttled_share(usage, limit_m)
            pod.working_set_bytes = p.base_memory_bytes + growth_per_second * (now - pod.container_started_seconds)
            memory_limit = pod.resources.memory_limit_bytes
            if memory_limit and pod.working_set_bytes > memory_limit:
                # OOMKilled: the kubelet restarts the container, which must start (and warm up) again.
                self.oom_kill_seconds.append(now)
                pod.last_termination_reason = OOM_KILLED
                pod.last_termination_seconds = now
                pod.restarts += 1
                pod.container_started_seconds = now
                pod.ready_at_seconds = now + p.startup_seconds
                pod.working_set_bytes = float(p.base_memory_bytes)

        # Pool: M/M/N on server connections; beyond saturation, a fluid backlog of waiting clients.
        default_servers = self.pool.default_pool_size
        pool_before = self.pool_backlog_requests
        hold = p.db_seconds
        offered = served_rate * hold * p.connections_per_request
        base_capacity = default_servers / hold / p.connections_per_request * p.utilisation_cap
        # pgBouncer opens the reserve's connections for clients that waited past reserve_pool_timeout; once
        # open they serve every client, and go idle (then closed) only when the default ones suffice again.
        waited_past_timeout = pool_before / base_capacity > p.reserve_pool_timeout_seconds
        saturated = pool_before > 0 or offered > p.utilisation_cap * default_servers
        if not self.pool.reserve_pool_size:
            self.reserve_open_until_seconds = -math.inf  # a reserve set to 0 closes its connections
        reserve_open = now < self.reserve_open_until_seconds
        if self.pool.reserve_pool_size and (waited_past_timeout or (reserve_open and saturated)):
            self.reserve_open_until_seconds = now + dt_seconds + p.server_idle_timeout_seconds
        servers = self.pool_servers_open(now)
        pool_capacity = servers / hold / p.connections_per_request * p.utilisation_cap
        pool_after = max(0.0, pool_before + (served_rate - pool_capacity) * dt_seconds)
        pool_limit = p.request_timeout_seconds * pool_capacity
        if pool_after > pool_limit:
            failed += pool_after - pool_limit
            pool_after = pool_limit
        self.pool_backlog_requests = pool_after
        pool_delay = (pool_before + pool_after) / 2 / pool_capacity
        load = min(offered, p.utilisation_cap * servers)
        wait_probability = erlang_c(servers, load) if offered > 0 else 0.0
        wait_rate = (servers - load) / hold
        # pgBouncer's sv_active and cl_waiting are counts at the scrape instant, not means: drawn from
        # M/M/N's state distribution, the waiting clients plus the saturated backlog.
        instant = draw_pool_instant(servers, load, self.rng.random())
        queue_length = instant.queued + pool_after
        # The oldest waiting client arrived about (clients waiting / arrival rate) ago.
        tail = queue_length / served_rate if served_rate > 0 and queue_length > 0 else 0.0

        if not ready:
            latency = timed_out_latency(p)
        else:
            latency = LatencyMix(
                shift_seconds=hold + pool_delay,
                cpu_rates_per_second=tuple(rates),
                group_weights=tuple(weights),
                wait_probability=wait_probability,
                wait_rate_per_second=wait_rate,
                group_shifts_seconds=tuple(group.delay_seconds for group in served),
            )
        self.now_seconds = now + dt_seconds
        return TickOutcome(
            start_seconds=now,
            requests=arrivals,
            failed=min(failed, arrivals + backlog_before + pool_before),
            latency=latency,
            pool_server_active=servers if pool_after > 0 else instant.busy_servers,  # a backlog: all busy
            pool_servers_open=servers,
            pool_client_waiting=queue_length,
            pool_max_wait_seconds=tail,
        )
