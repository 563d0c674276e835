"""The pool of a ConfigMap pgBouncer, brought to its running replicas on their admin consoles (DESIGN section 6:
"a live SET default_pool_size for an immediate effect, always alongside" the ini).

Without ``spec.pool.pgbouncer.adminSecretRef`` a pgBouncer takes a new ini when something reloads it (a reload
sidecar, a restart). With it, each evaluation of an Auto profile compares the pool every Ready replica shows
(``SHOW DATABASES``) with the one the ConfigMap gives, and sends what differs: ``SET`` for a size the
[pgbouncer] section governs, which takes effect at once, and ``RELOAD`` for one written on the database's
line (``compute_admin_commands``). It runs after the evaluation's writes, so a pool change is live within the
evaluation that wrote it. The ConfigMap stays the truth: a replica that restarts reads it, and a RELOAD by
anyone reads the same values once the kubelet has synced the file.

The Secret must be marked for this (``SECRET_LABEL``): whoever may write a profile names the Secret, and the
operator, which may read Secrets, sends its password to the Pods that mount the ConfigMap. Unmarked, a
profile could have any Secret of the namespace with those keys (a database superuser's) sent there.

What it found is the profile's ``PoolerSynced`` condition. A replica that cannot be reached, a Secret that
cannot be read, a pool not yet live: none of them changes the tuning state or stops the evaluation.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Protocol

from perfpilot.actuate.kube import KubeError
from perfpilot.actuate.pgbouncer_admin import AdminLogin, AdminSync, PgbouncerAdminError, apply_admin_sync
from perfpilot.actuate.pgbouncer_ini import AdminCommands, compute_admin_commands
from perfpilot.api.spec import Mode, PerformanceProfile
from perfpilot.api.status import Condition, PoolSize
from perfpilot.control.status import ConditionUpdate
from perfpilot.observe.workload import (
    PoolerPod,
    WorkloadSpecError,
    parse_pgbouncer_ini,
    pgbouncer_listen_port,
    pgbouncer_serves,
    pooler_pods,
)

CONDITION = "PoolerSynced"
# The keys of a kubernetes.io/basic-auth Secret.
USERNAME_KEY = "username"
PASSWORD_KEY = "password"
# The label a Secret carries to be sent to pgBouncer's admin console.
SECRET_LABEL = "perfpilot.io/pgbouncer-admin"
# Pods are reached side by side, each within its own deadline (pgbouncer_admin.EXCHANGE_SECONDS).
MOST_PODS_AT_ONCE = 8


class _Reads(Protocol):
    def ensure_may_write(self) -> None: ...

    def fetch_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def fetch_objects(self, kind: str, namespace: str | None) -> list[dict[str, Any]]: ...


class _NotSynced(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _secret_value(secret: Mapping[str, Any], key: str, *, where: str) -> str:
    data = secret.get("data")
    raw = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(raw, str) or not raw:
        raise _NotSynced("SecretUnreadable", f"{where}: data.{key} is required (the admin console's {key})")
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as error:
        raise _NotSynced("SecretUnreadable", f"{where}: data.{key} is not base64 of UTF-8 text ({error})") from error


def fetch_admin_login(kube: _Reads, namespace: str, name: str) -> AdminLogin:
    """The admin console's user and password from the Secret's ``username`` and ``password``, if the Secret is
    marked for it."""
    where = f"spec.pool.pgbouncer.adminSecretRef.name {name}"
    try:
        secret = kube.fetch_object("Secret", namespace, name)
    except KubeError as error:
        raise _NotSynced("SecretUnreadable", f"{where}: {error}") from error
    if secret is None:
        raise _NotSynced("SecretUnreadable", f"{where}: no Secret of that name in namespace {namespace}")
    metadata = secret.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    if not isinstance(labels, Mapping) or labels.get(SECRET_LABEL) != "true":
        raise _NotSynced("SecretNotMarked", f"{where}: the Secret lacks the label {SECRET_LABEL}: \"true\", which "
                                            f"marks it as one whose password may be sent to pgBouncer's admin console")
    return AdminLogin(username=_secret_value(secret, USERNAME_KEY, where=f"Secret/{name}"),
                      password=_secret_value(secret, PASSWORD_KEY, where=f"Secret/{name}"))


def _describe(pool: PoolSize) -> str:
    return f"pool {pool.default_pool_size}, reserve {pool.reserve_pool_size}"


def _sync_pods(pods: list[PoolerPod], *, ini: str, port: int, login: AdminLogin, database: str, where: str,
               fence: Callable[[], None]) -> list[AdminSync | PgbouncerAdminError]:
    def decide(pod: PoolerPod, shown: PoolSize | None) -> AdminCommands:
        # A SET or RELOAD is a write: under leader election it goes out only while the Lease is held (fence
        # raises LeadershipLost, which ends the tick as any write of a deposed leader does).
        fence()
        return compute_admin_commands(ini, database=database, shown=shown, file_follows=pod.file_follows,
                                      where=where)

    def sync(pod: PoolerPod) -> AdminSync | PgbouncerAdminError:
        try:
            return apply_admin_sync(pod.ip, port, login=login, database=database, decide=partial(decide, pod))
        except PgbouncerAdminError as error:
            return error

    with ThreadPoolExecutor(max_workers=min(MOST_PODS_AT_ONCE, len(pods))) as pool:
        return list(pool.map(sync, pods))


def _sync(kube: _Reads, profile: PerformanceProfile) -> ConditionUpdate:
    pgbouncer = profile.spec.pool.pgbouncer
    assert pgbouncer is not None and pgbouncer.admin_secret_ref is not None and pgbouncer.config_map_ref is not None
    namespace, ref, database = profile.metadata.namespace, pgbouncer.config_map_ref, pgbouncer.database
    login = fetch_admin_login(kube, namespace, pgbouncer.admin_secret_ref.name)
    try:
        config_map = kube.fetch_object("ConfigMap", namespace, ref.name)
        pods = pooler_pods(kube.fetch_objects("Pod", namespace), ref.name)
    except (KubeError, WorkloadSpecError) as error:
        raise _NotSynced("PoolerUnreadable", str(error)) from error
    if config_map is None:
        raise _NotSynced("PoolerUnreadable", f"spec.pool.pgbouncer.configMapRef.name {ref.name}: no ConfigMap of "
                                             f"that name in namespace {namespace}")
    data = config_map.get("data")
    ini = data.get(ref.key) if isinstance(data, Mapping) else None
    if not isinstance(ini, str):
        raise _NotSynced("PoolerUnreadable", f"spec.pool.pgbouncer.configMapRef: no data.{ref.key} in ConfigMap "
                                             f"{ref.name}")
    where = f"ConfigMap/{ref.name}: data.{ref.key}"
    try:
        wanted_live = parse_pgbouncer_ini(ini, database=database, where=where)
        port = pgbouncer_listen_port(ini, where=where)
        served = pgbouncer_serves(ini, database=database, where=where)
    except WorkloadSpecError as error:
        raise _NotSynced("PoolerUnreadable", str(error)) from error
    if not served:
        raise _NotSynced("NoSuchDatabase", f"spec.pool.pgbouncer.database {database}: ConfigMap {ref.name} has no "
                                           f"[databases] line for it and no * line, so pgBouncer serves no such pool")
    if not pods:
        raise _NotSynced("NoPoolerPods", f"no Ready Pod in namespace {namespace} mounts ConfigMap {ref.name}")
    wanted = PoolSize(default_pool_size=wanted_live.default_pool_size,
                      reserve_pool_size=wanted_live.reserve_pool_size)
    results = _sync_pods(pods, ini=ini, port=port, login=login, database=database, where=where,
                         fence=kube.ensure_may_write)

    unreachable = [f"Pod/{pod.name}: {result}" for pod, result in zip(pods, results, strict=True)
                   if isinstance(result, PgbouncerAdminError) and not result.connected]
    refused = [f"Pod/{pod.name}: {result}" for pod, result in zip(pods, results, strict=True)
               if isinstance(result, PgbouncerAdminError) and result.connected]
    synced = [(pod, result) for pod, result in zip(pods, results, strict=True) if isinstance(result, AdminSync)]
    sent = [f"{pod.name}: {', '.join(result.sent)}" for pod, result in synced if result.sent]
    behind = [(pod, result.after) for pod, result in synced if result.after is not None and result.after != wanted]
    unshown = [pod.name for pod, result in synced if result.after is None]
    done = f"; sent {'; '.join(sent)}" if sent else ""
    if unreachable or refused:
        reason = "AdminUnreachable" if unreachable else "AdminRefused"
        raise _NotSynced(reason, "; ".join([*unreachable, *refused]) + done)
    if behind:
        why = [f"{pod.name} runs {_describe(after)}" + (
            " (it mounts the ini with subPath, which the kubelet never updates: a size on the database's line "
            "reaches it only when the Pod restarts)" if not pod.file_follows else "") for pod, after in behind]
        # RELOAD reads the mounted file, which the kubelet syncs up to about a minute after the ConfigMap.
        lag = ("; RELOAD reads the mounted file, which may not have caught up with the ConfigMap yet"
               if any("RELOAD" in line for line in sent) else "")
        raise _NotSynced("NotSynced", f"{', '.join(why)} where ConfigMap {ref.name} gives {_describe(wanted)} for "
                                      f"{database}{done}{lag}; tried again next evaluation")
    if unshown:
        return ConditionUpdate(type=CONDITION, status="Unknown", reason="PoolNotShown",
                               message=f"pgBouncer on {', '.join(unshown)} shows no pool for {database} yet (the * "
                                       f"line's pool comes with the database's first client){done}")
    return ConditionUpdate(type=CONDITION, status="True", reason="Synced",
                           message=f"{_describe(wanted)} for {database} on "
                                   f"{', '.join(pod.name for pod in pods)}{done}")


def _why_not_synced(profile: PerformanceProfile, *, paused: bool) -> str | None:
    pgbouncer = profile.spec.pool.pgbouncer
    if pgbouncer is None or not profile.spec.pool.enabled:
        return "the pool is not tuned"
    if pgbouncer.admin_secret_ref is None:
        return "no spec.pool.pgbouncer.adminSecretRef"
    if pgbouncer.config_map_ref is None:
        return "a CloudNativePG Pooler is reloaded by its operator"
    if profile.spec.mode is not Mode.AUTO:
        return f"mode {profile.spec.mode.value}: only Auto changes the poolers"
    if paused:
        return "the workload is paused"
    return None


def compute_sync_off(previous: Sequence[Condition], why: str) -> ConditionUpdate | None:
    """``PoolerSynced`` saying the sync is off (``why``) where the previous status still holds one that says
    otherwise, so that an old "Synced" does not stand; None where there is none to replace."""
    before = next((condition for condition in previous if condition.type == CONDITION), None)
    if before is None or (before.reason == "SyncOff" and before.message == why):
        return None
    return ConditionUpdate(type=CONDITION, status="Unknown", reason="SyncOff", message=why)


def apply_pooler_sync(kube: _Reads, profile: PerformanceProfile, *, paused: bool,
                      previous: Sequence[Condition]) -> ConditionUpdate | None:
    """Bring the profile's running pgBouncers to the pool its ConfigMap gives; the ``PoolerSynced`` condition
    saying how that went. When there is nothing to sync (no adminSecretRef, a Pooler, the pool not tuned, a
    profile not in Auto, a workload paused): ``compute_sync_off``."""
    off = _why_not_synced(profile, paused=paused)
    if off is not None:
        return compute_sync_off(previous, off)
    try:
        return _sync(kube, profile)
    except _NotSynced as problem:
        return ConditionUpdate(type=CONDITION, status="False", reason=problem.reason, message=str(problem))
