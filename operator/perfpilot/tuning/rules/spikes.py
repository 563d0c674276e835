"""What the running pods (at most minReplicas) must carry alone while new ones start: the larger of the window's
peak rate and its median plus the peak window's largest rise, in CPU."""

from __future__ import annotations

from dataclasses import dataclass

from perfpilot.tuning import signals
from perfpilot.tuning.observations import RISE_SPAN_SECONDS, Observations, Peak, Series, Signal, Unknown
from perfpilot.tuning.rules.context import RuleContext, format_hours


@dataclass(frozen=True)
class SpikeNeed:
    """What the running pods must carry alone while new ones start (see ``compute_spike_need``)."""

    pods: int
    needed_millicores: float
    usual_millicores: float  # the CPU of the window's usual (median) rate
    evidence: str


def find_spike_signals_missing(observations: Observations) -> tuple[str, ...]:
    """The signals ``compute_spike_need`` needs that are unknown."""
    needed: dict[str, Signal | Peak] = {
        "peak_request_rate_rise_per_second": observations.peak_request_rate_rise_per_second,
        "request_rate_per_second": observations.request_rate_per_second,
        "cpu_usage_millicores_per_pod": observations.cpu_usage_millicores_per_pod,
        "replicas": observations.replicas,
    }
    return tuple(name for name, value in needed.items() if isinstance(value, Unknown))


def compute_spike_need(
    observations: Observations, *, pods: int, ceiling_rate_per_second: float | None = None
) -> SpikeNeed:
    """The CPU ``pods`` pods must carry alone: the window's usual rate (median) plus the largest rise of the
    rate within RISE_SPAN_SECONDS seen over the peak window, and at least the window's peak rate, at the
    window's CPU per request/s. Callers check ``find_spike_signals_missing`` first. ``ceiling_rate_per_second``
    (the peak window's peak rate) caps the median plus the rise: a need foreseen, not seen in a breach, asks
    for no more than the service ever served.

    A spike arrives faster than a pod starts, so the pods already running take it alone; the rate (not the
    CPU) measures it, since CPU is capped by the pods that served it. The spike starts from the usual rate,
    so a spike inside the window is not counted twice.
    """
    rise, rate = observations.peak_request_rate_rise_per_second, observations.request_rate_per_second
    usage, replicas = observations.cpu_usage_millicores_per_pod, observations.replicas
    assert not isinstance(rise, Unknown) and isinstance(rate, Series)
    assert isinstance(usage, Series) and isinstance(replicas, Series)
    if rate.mean <= 0:
        return SpikeNeed(pods, 0.0, 0.0, "no requests in the window")
    per_request = usage.mean * replicas.mean / rate.mean
    usual = signals.compute_median(rate.values)
    spiked = usual + max(0.0, rise)
    rise_text = (f"its median {usual:.1f}/s + the largest rise over {format_hours(observations.peak_window_seconds)} "
                 f"{rise:.1f}/s within {RISE_SPAN_SECONDS // 60} min")
    if ceiling_rate_per_second is not None and spiked > ceiling_rate_per_second:
        spiked = ceiling_rate_per_second
        rise_text = f"{rise_text}, capped at the peak {ceiling_rate_per_second:.1f}/s"
    spike_rate = max(rate.maximum, spiked)
    evidence = (f"max(the window's peak {rate.maximum:.1f}/s, {rise_text}) = {spike_rate:.1f}/s at "
                f"{per_request:.0f}m per request/s = {spike_rate * per_request:.0f}m")
    return SpikeNeed(pods, spike_rate * per_request, usual * per_request, evidence)


def check_cut_pods_carry_the_largest_rise(ctx: RuleContext, *, new_pod_millicores: int) -> str | None:
    """None when the pods running now, cut, still carry a spike like the largest of the peak window."""
    observations = ctx.observations
    missing = find_spike_signals_missing(observations)
    if missing:
        return f"{', '.join(missing)} unknown: no CPU cut"
    replicas = observations.replicas
    assert isinstance(replicas, Series)
    pods = round(replicas.values[-1])
    hpa = ctx.tuned_hpa or observations.live.hpa
    if hpa is not None:
        # The floor the HPA may go back to, not the pods of this moment: the spike check of the spike-headroom
        # rule counts the same pods, so a cut cannot undo what that rule grew.
        pods = min(pods, max(1, hpa.min_replicas))
    need = compute_spike_need(observations, pods=pods)
    if need.needed_millicores <= 0:
        return "no requests in the window to size a spike by: no CPU cut"
    carried = need.pods * new_pod_millicores
    if carried < need.needed_millicores:
        return (f"{need.pods} pods x {new_pod_millicores}m = {carried:.0f}m would not carry a spike while new pods "
                f"start: {need.evidence}")
    return None
