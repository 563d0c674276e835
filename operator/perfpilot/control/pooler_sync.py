"""The pool of a ConfigMap pgBouncer, brought to its running replicas on their admin consoles (DESIGN section 6:
"a live SET default_pool_size for an immediate effect, always alongside" the ini).

Without ``spec.pool.pgbouncer.adminSecretRef`` a pgBouncer takes a new ini when something reloads it (a reload
sidecar, a restart). With it, each evaluation of an Auto profile compares the pool every running replica
shows (``SHOW DATABASES``) with the one the ConfigMap gives, and sends what differs: ``SET`` for a size the
[pgbouncer] section governs, which takes effect at once, and ``RELOAD`` for one written on the database's
line (``compute_admin_commands``). It runs after the evaluation's writes, so a pool change is live within the
evaluation that wrote it. The ConfigMap stays the truth: a replica that restarts reads it, and a RELOAD by
anyone reads the same values once the kubelet has synced the file.

What it found is the profile's ``PoolerSynced`` condition. A replica that cannot be reached, a Secret that
cannot be read, a pool not yet live: none of them changes the tuning state or stops the evaluation.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Protocol

from perfpilot.actuate.kube import KubeError
from perfpilot.actuate.pgbouncer_admin import AdminLogin, PgbouncerAdminError, apply_admin_sync
from perfpilot.actuate.pgbouncer_ini import compute_admin_commands
from perfpilot.api.spec import Mode, PerformanceProfile
from perfpilot.api.status import PoolSize
from perfpilot.control.status import ConditionUpdate
from perfpilot.observe.workload import (
    WorkloadSpecError,
    parse_pgbouncer_ini,
    pgbouncer_listen_port,
    pooler_pods,
)

CONDITION = "PoolerSynced"
# The keys of a kubernetes.io/basic-auth Secret.
USERNAME_KEY = "username"
PASSWORD_KEY = "password"


class _Reads(Protocol):
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
    """The admin console's user and password from the Secret's ``username`` and ``password``."""
    where = f"Secret/{name}"
    try:
        secret = kube.fetch_object("Secret", namespace, name)
    except KubeError as error:
        raise _NotSynced("SecretUnreadable", f"spec.pool.pgbouncer.adminSecretRef.name {name}: {error}") from error
    if secret is None:
        raise _NotSynced("SecretUnreadable", f"spec.pool.pgbouncer.adminSecretRef.name {name}: no Secret of that "
                                             f"name in namespace {namespace}")
    return AdminLogin(username=_secret_value(secret, USERNAME_KEY, where=where),
                      password=_secret_value(secret, PASSWORD_KEY, where=where))


def _describe(pool: PoolSize) -> str:
    return f"pool {pool.default_pool_size}, reserve {pool.reserve_pool_size}"


def _sync(kube: _Reads, profile: PerformanceProfile) -> ConditionUpdate:
    pgbouncer = profile.spec.pool.pgbouncer
    assert pgbouncer is not None and pgbouncer.admin_secret_ref is not None and pgbouncer.config_map_ref is not None
    namespace, ref = profile.metadata.namespace, pgbouncer.config_map_ref
    login = fetch_admin_login(kube, namespace, pgbouncer.admin_secret_ref.name)
    try:
        config_map = kube.fetch_object("ConfigMap", namespace, ref.name)
        pods = pooler_pods(kube.fetch_objects("Pod", namespace), ref.name)
    except (KubeError, WorkloadSpecError) as error:
        raise _NotSynced("PoolerUnreadable", str(error)) from error
    data = config_map.get("data") if config_map is not None else None
    ini = data.get(ref.key) if isinstance(data, Mapping) else None
    if not isinstance(ini, str):
        raise _NotSynced("PoolerUnreadable", f"spec.pool.pgbouncer.configMapRef: no data.{ref.key} in ConfigMap "
                                             f"{ref.name}")
    where = f"ConfigMap/{ref.name}: data.{ref.key}"
    try:
        wanted = parse_pgbouncer_ini(ini, database=pgbouncer.database, where=where)
        port = pgbouncer_listen_port(ini, where=where)
    except WorkloadSpecError as error:
        raise _NotSynced("PoolerUnreadable", str(error)) from error
    if not pods:
        raise _NotSynced("NoPoolerPods", f"no running Pod in namespace {namespace} mounts ConfigMap {ref.name}")
    wanted_size = PoolSize(default_pool_size=wanted.default_pool_size, reserve_pool_size=wanted.reserve_pool_size)
    unreachable: list[str] = []
    behind: list[str] = []
    unshown: list[str] = []
    sent: list[str] = []
    for pod in pods:
        try:
            synced = apply_admin_sync(pod.ip, port, login=login, database=pgbouncer.database,
                                      decide=lambda shown: compute_admin_commands(
                                          ini, database=pgbouncer.database, shown=shown, where=where))
        except PgbouncerAdminError as error:
            unreachable.append(f"Pod/{pod.name}: {error}")
            continue
        if synced.sent:
            sent.append(f"{pod.name}: {', '.join(synced.sent)}")
        if synced.after is None:
            unshown.append(pod.name)
        elif synced.after != wanted_size:
            behind.append(f"{pod.name} runs {_describe(synced.after)}")
    if unreachable:
        raise _NotSynced("AdminUnreachable", "; ".join(unreachable))
    if behind:
        # RELOAD reads the mounted file, which the kubelet syncs up to about a minute after the ConfigMap.
        lag = ("; RELOAD reads the mounted file, which may not have caught up with the ConfigMap yet"
               if any("RELOAD" in line for line in sent) else "")
        raise _NotSynced("NotSynced", f"{', '.join(behind)} where ConfigMap {ref.name} gives {_describe(wanted_size)} "
                                      f"for {pgbouncer.database} (sent {'; '.join(sent) or 'nothing'}{lag}; "
                                      f"tried again next evaluation)")
    done = f"; sent {'; '.join(sent)}" if sent else ""
    if unshown:
        return ConditionUpdate(type=CONDITION, status="Unknown", reason="PoolNotShown",
                               message=f"pgBouncer on {', '.join(unshown)} shows no pool for {pgbouncer.database} "
                                       f"yet (one comes with its first client){done}")
    return ConditionUpdate(type=CONDITION, status="True", reason="Synced",
                           message=f"{_describe(wanted_size)} for {pgbouncer.database} on "
                                   f"{', '.join(pod.name for pod in pods)}{done}")


def apply_pooler_sync(kube: _Reads, profile: PerformanceProfile, *, paused: bool) -> ConditionUpdate | None:
    """Bring the profile's running pgBouncers to the pool its ConfigMap gives; the ``PoolerSynced`` condition
    saying how that went, or None when there is nothing to sync (no adminSecretRef, a Pooler (CloudNativePG
    reloads it itself), the pool not tuned, a profile not in Auto, a workload paused)."""
    pgbouncer = profile.spec.pool.pgbouncer
    if (pgbouncer is None or pgbouncer.admin_secret_ref is None or pgbouncer.config_map_ref is None
            or not profile.spec.pool.enabled or profile.spec.mode is not Mode.AUTO or paused):
        return None
    try:
        return _sync(kube, profile)
    except _NotSynced as problem:
        return ConditionUpdate(type=CONDITION, status="False", reason=problem.reason, message=str(problem))
