"""Every number that decides which table row applies, in one place (DESIGN section 4).

The defaults below are what ``decide()`` uses; tests and the simulator may pass a different
``Thresholds`` to explore, but the operator never does, so the documented numbers are the live ones.
Each field says where its number comes from: DESIGN (the product spec), a guide, or ours (a choice
made here and listed in ``docs/tuning-tables.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

from perfpilot.tuning.observations import RISE_SPAN_SECONDS
from perfpilot.tuning.tables import POOL_UTILISATION_LEVELS


@dataclass(frozen=True)
class Thresholds:
    # --- load pattern -----------------------------------------------------------------------------
    # DESIGN: load is Bursty when the request rate's coefficient of variation over the window is above this.
    bursty_cv: float = 0.30
    # DESIGN: ...or when its peak is above this multiple of its median.
    bursty_peak_to_median: float = 2.0
    # Ours (hysteresis): while the live CPU target is perfpilot's own Bursty-row decision (from its records), the
    # load stays Bursty until the CV drops under this…
    bursty_leave_cv: float = 0.25
    # …and the peak under this multiple of the median, so a CV wobbling around 0.30 does not flip the rows.
    bursty_leave_peak_to_median: float = 1.8
    # Ours: fewer samples than this say nothing about a pattern (a CV of 3 points is noise).
    min_samples_for_pattern: int = 5

    # --- memory -------------------------------------------------------------------------------------
    # DESIGN: memory is Growing when the working set rises by more than this percent of the request per hour…
    memory_growth_percent_of_request_per_hour: float = 5.0
    # …with a good linear fit. Ours: R² of at least 0.8 (a leak climbs steadily; a sawtooth does not).
    memory_growth_min_r_squared: float = 0.8
    # Ours: a slope is only trusted over at least this much time.
    memory_growth_min_span_seconds: float = 600.0
    # DESIGN: memory is Variable when its coefficient of variation is above this.
    memory_variable_cv: float = 0.20

    # --- provisioning -------------------------------------------------------------------------------
    # DESIGN: CPU-bound when throttled in more than this fraction of CFS periods (mean over the window, ours)…
    cpu_bound_throttled_ratio: float = 0.10
    # …or running at more than this fraction of its CPU limit (95th percentile of the window, ours).
    cpu_bound_limit_fraction: float = 0.90
    # DESIGN: memory-bound when OOMKilled in the window or above this fraction of the memory request (peak).
    memory_bound_request_fraction: float = 0.90
    # DESIGN: over-provisioned when, with the SLO met for the whole window, usage (peak) stays under this
    # fraction of the request; for CPU only while the HPA sits at minReplicas.
    over_provisioned_usage_fraction: float = 0.40
    # Ours: a CPU cut waits while the window's p95 went above this fraction of the SLO. At minReplicas the HPA
    # does not make up for smaller pods: every request gets less CPU and takes longer, so a cut onto p95 near
    # the SLO breaches it, is rolled back, and is tried again once its bar ends (a service at 1 req/s cut
    # 318m -> 239m and rolled back eight times in 12 h, 15 minutes over the SLO each).
    cpu_cut_latency_room_fraction: float = 0.80

    # --- latency and emergencies --------------------------------------------------------------------
    # DESIGN: an emergency is p95 above this multiple of the SLO…
    emergency_latency_multiple: float = 2.0
    # Ours: …in every sample of this recent span, so one slow scrape is not an emergency.
    emergency_latency_span_seconds: float = 120.0
    # DESIGN: …or pool clients waiting in every sample of the last this-many seconds.
    emergency_pool_waiting_span_seconds: float = 300.0
    # Ours: "recent" for "SLO breached now" and "CPU below its target now": the mean of the last 5 minutes.
    recent_span_seconds: float = 300.0
    # Kubernetes' default --horizontal-pod-autoscaler-tolerance: the HPA adds a pod only when utilisation is
    # above its target by more than this fraction, so with the SLO met an HPA at maxReplicas is saturated only
    # beyond it (with the SLO breached, CPU at the target is enough).
    hpa_tolerance: float = 0.10
    # DESIGN: the latency feedback steps a CPU target back up only when p95 stays under this fraction of
    # the SLO for the whole window. Ours: every raise of the CPU target needs this (a raise of the memory
    # target needs the SLO met for the whole window).
    relax_latency_fraction: float = 0.60

    # --- behaviour ----------------------------------------------------------------------------------
    # Ours: a flash crowd is the request rate rising to this multiple of its value this long before. A CPU cut
    # also keeps the pod request at this multiple of the window's peak usage per pod: the crowd arrives faster
    # than a new pod starts, so the pods already running carry its first minutes.
    flash_crowd_multiple: float = 2.0
    flash_crowd_span_seconds: float = float(RISE_SPAN_SECONDS)  # the span of the peak-window rise too
    # Ours (hysteresis): with the Aggressive scale-up row live, it is left only when the request rate's rise
    # stays under this multiple (entering needs flash_crowd_multiple).
    flash_crowd_leave_multiple: float = 1.5
    # Ours: replica counts flap when their direction (up/down) reverses at least this often in the window.
    flapping_reversals: int = 3
    # Ours (hysteresis): with the Slow scale-down row live, it is left only at or under this many reversals.
    flapping_leave_reversals: int = 1

    # --- pool ---------------------------------------------------------------------------------------
    # auditor guide ("Database Connections", tables.POOL_UTILISATION_LEVELS, critical > 90%): grow a tier
    # above this utilisation…
    pool_grow_utilisation_percent: float = POOL_UTILISATION_LEVELS.critical_percent
    # auditor guide (target < 50%): shrink a tier when under this for the whole window…
    pool_shrink_utilisation_percent: float = POOL_UTILISATION_LEVELS.target_percent
    # auditor guide (warning < 80%): …but only if the peak demand stays under this on the smaller pool (ours),
    # so a shrink never lands in the band that makes the next cycle grow it again.
    pool_warning_utilisation_percent: float = POOL_UTILISATION_LEVELS.warning_percent
    # Ours: "sustained" waiting / high utilisation = in at least this fraction of the last 5 minutes' samples.
    pool_sustained_fraction: float = 0.5
    pool_sustained_span_seconds: float = 300.0

    # --- peaks over guardrails.peakWindow ------------------------------------------------------------
    # Ours: a CPU cut must leave maxReplicas x request x CPU target at least this multiple of the peak total
    # CPU of the peak window (25% headroom: the HPA reacts late, and a peak day can beat the last one).
    peak_cpu_headroom_multiple: float = 1.25
    # Ours: a memory cut must leave each cut container's request (times the HPA's memory target, when it has
    # one) at least this multiple of that container's peak working set of the peak window, and, under a
    # memory-target HPA, the pod's total request times the target this multiple of the largest pod's peak.
    peak_memory_headroom_multiple: float = 1.25
    # Ours: a cut (the Over resources row, a pool shrink) waits until the peak window holds at least this much
    # CPU history of the workload (or cut_history_fraction of guardrails.peakWindow when that is less): a peak
    # read from less may have missed the day's high. A new workload, or a Prometheus with short retention, is
    # left as it is.
    cut_min_history_seconds: float = 86_400.0
    cut_history_fraction: float = 0.95
    # Ours: under objective Reliability the spike-headroom rule grows the minReplicas pods before any breach,
    # once they fall short of the largest rise by more than this fraction of what it needs (a shortfall of a
    # few percent is within the noise of the CPU per request/s, not worth a rollout).
    spike_ahead_shortfall_fraction: float = 0.10

    # --- pacing ---------------------------------------------------------------------------------------
    # Ours: no emergency follows a change before the change can show in the signals: this many intervals
    # (an HPA or pool edit acts within one sync and one scrape; resources also wait for the rollout).
    emergency_after_change_intervals: int = 2
    # Ours: a setting's move is not undone within this long (a move toward more capacity is checked against the
    # setting's latest move only, a resources change per container and request), except by an emergency toward
    # capacity, a move toward capacity while the SLO is breached or clients wait for the pool, a container's
    # memory raised while it is OOMKilled, a rollback, or the return of a coupled edit. A day is the
    # traffic's own cycle: a row chosen for the busy hour stays through the quiet night instead of flapping
    # with it (a 2 h hold gave 34-49 changes in 2 days on the benchmark's bursty traces; docs/benchmarks.md).
    reversal_hold_seconds: float = 86400.0

    # Ours: a resources change that can wait (no more CPU, not an emergency, nothing OOMKilled, the working set
    # under memory_near_limit_fraction of the limit) waits, with the HPA above minReplicas, while the request
    # rate of the last recent_span_seconds is above this fraction of the peak window's peak: its rollout takes
    # maxUnavailable pods out that the others, held near the target, cannot cover at the busy hour…
    rollout_busy_rate_fraction: float = 0.80
    # …or while p95 went above this fraction of the SLO in the last recent_span_seconds: the pods have no room
    # for what the ones taken out carried, whatever the week's peak was (a day after a bigger one)…
    rollout_latency_room_fraction: float = 0.80
    # …but a change toward capacity, or one held by the rate alone, no longer than this after the wait began
    # (TuningState.off_peak_wait_since): a workload near its peak for a day has no quieter hour to wait for. A
    # cut held by p95 near the SLO waits as long as that lasts: it is never urgent.
    rollout_peak_wait_max_seconds: float = 86400.0
    # Ours: a container's working set (window peak) at this fraction of its own memory limit or more (or the
    # largest pod's of the pod's limit) makes a resources change urgent: it neither waits for off-peak nor for
    # the HPA to leave maxReplicas (a rollout replaces those pods with fresh ones).
    memory_near_limit_fraction: float = 0.90

    # --- verdict ------------------------------------------------------------------------------------
    # DESIGN: a verdict is Inconclusive when the request rate moved by more than this fraction.
    load_moved_fraction: float = 0.30
    # DESIGN: a regression is p95 above the SLO and more than this fraction above the baseline…
    regression_latency_fraction: float = 0.10
    # …or the error ratio up by more than this (half a percentage point).
    regression_error_ratio_increase: float = 0.005
    # Ours: the first third of verifyFor is settling time (rollout, HPA reaction) left out of "after".
    verify_settle_fraction: float = 1 / 3
    # Ours, as the reader's rule for a whole window: a mean or a share over a span (a verdict's "before" and
    # "after", sustained pool waiting) is evidence only when its samples fill at least this share of the span's
    # steps (one sample in ten minutes is not).
    min_sample_share_of_span: float = 0.5
    # DESIGN: a rolled-back move is barred for this many cooldowns.
    barred_cooldowns: int = 6


DEFAULT_THRESHOLDS = Thresholds()
