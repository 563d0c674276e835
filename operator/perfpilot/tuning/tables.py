"""The guides' tuning tables as data, each row with where it came from.

``docs/tuning-tables.md`` reproduces these rows; a test checks the two agree. A row whose numbers the
guide does not give carries ``ours=True`` and says so in its note.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfpilot.api.status import ScalingPolicy, ScalingRules

VOICEASSIST = "voiceassist-performance-tuning-guide.md"
AUDITOR = "auditor-performance-testing-guide.md"


@dataclass(frozen=True)
class Source:
    guide: str
    section: str
    ours: bool = False  # True when the numbers are perfpilot's, not the guide's
    note: str = ""


_CPU = Source(VOICEASSIST, "HPA Threshold Tuning > CPU Threshold")
_MEMORY = Source(VOICEASSIST, "HPA Threshold Tuning > Memory Threshold")
_SCALE_UP = Source(VOICEASSIST, "HPA Threshold Tuning > Scale-Up Speed")
_SCALE_DOWN = Source(VOICEASSIST, "HPA Threshold Tuning > Scale-Down Speed")
_CURRENT_HPA = Source(
    VOICEASSIST, "HPA Threshold Tuning > Current HPA Configuration", note="the guide's 'current configuration'"
)
_RESOURCES = Source(VOICEASSIST, "Kubernetes Resource Tuning > Resource Requests and Limits")
_POOL = Source(
    VOICEASSIST,
    "Database Optimization > Connection Pool Tuning",
    note="the guide's pool_size / max_overflow mapped to pgBouncer default_pool_size / reserve_pool_size (ours)",
)


@dataclass(frozen=True)
class TargetRow:
    """A row of a utilisation-target table."""

    name: str  # perfpilot's short name, also the classification label
    label: str  # the guide's wording, quoted in reasons
    target_percent: int
    source: Source


CPU_TARGET_ROWS: dict[str, TargetRow] = {
    "Steady": TargetRow("Steady", "Steady, predictable", 70, _CPU),
    "Bursty": TargetRow("Bursty", "Bursty, unpredictable", 60, _CPU),
    "Cost": TargetRow("Cost", "Cost-sensitive", 80, _CPU),
    "Critical": TargetRow("Critical", "Critical workload", 50, _CPU),
}

MEMORY_TARGET_ROWS: dict[str, TargetRow] = {
    "Stable": TargetRow("Stable", "Stable usage", 80, _MEMORY),
    "Growing": TargetRow("Growing", "Growing over time (leak?)", 70, _MEMORY),
    "Variable": TargetRow("Variable", "Highly variable", 75, _MEMORY),
}


@dataclass(frozen=True)
class BehaviourRow:
    """One direction of HPA ``behavior``: a stabilisation window and one Percent policy."""

    name: str
    stabilization_window_seconds: int
    percent: int
    period_seconds: int
    source: Source

    def to_rules(self) -> ScalingRules:
        return ScalingRules(
            stabilization_window_seconds=self.stabilization_window_seconds,
            policies=[ScalingPolicy(type="Percent", value=self.percent, period_seconds=self.period_seconds)],
        )


# Ordered from fastest to slowest scale-up; the order is what "faster scale-up" means.
SCALE_UP_ROWS: dict[str, BehaviourRow] = {
    "Aggressive": BehaviourRow("Aggressive", 0, 100, 15, _SCALE_UP),
    "Moderate": BehaviourRow("Moderate", 0, 50, 30, _CURRENT_HPA),
    "Conservative": BehaviourRow(
        "Conservative",
        60,
        25,
        60,
        Source(VOICEASSIST, "HPA Threshold Tuning > Scale-Up Speed", ours=True,
               note="the guide names the row (development, cost-conscious) but gives no numbers"),
    ),
}

SCALE_DOWN_ROWS: dict[str, BehaviourRow] = {
    "Slow": BehaviourRow("Slow", 600, 5, 120, _SCALE_DOWN),
    "Moderate": BehaviourRow("Moderate", 300, 10, 60, _CURRENT_HPA),
    "Fast": BehaviourRow(
        "Fast",
        60,
        50,
        30,
        Source(VOICEASSIST, "HPA Threshold Tuning > Scale-Down Speed", ours=True,
               note="the guide names the row (development, cost optimisation) but gives no numbers"),
    ),
}


@dataclass(frozen=True)
class ResourceRow:
    """A row of the resources table: factors on requests (and limits); ``None`` keeps the value."""

    name: str
    label: str
    cpu_factor: float | None
    memory_factor: float | None
    source: Source


RESOURCE_ROWS: dict[str, ResourceRow] = {
    "Under": ResourceRow("Under", "Under-provisioned", 1.5, 1.5, _RESOURCES),
    "Over": ResourceRow("Over", "Over-provisioned", 0.75, 0.75, _RESOURCES),
    "CpuBound": ResourceRow(
        "CpuBound", "CPU-bound", 1.5, None,
        Source(_RESOURCES.guide, _RESOURCES.section, ours=True,
               note="the guide says 'Increase CPU'; +50% (its under-provisioned step) is ours"),
    ),
    "MemoryBound": ResourceRow(
        "MemoryBound", "Memory-bound", None, 1.5,
        Source(_RESOURCES.guide, _RESOURCES.section, ours=True,
               note="the guide says 'Increase Memory'; +50% (its under-provisioned step) is ours"),
    ),
}


@dataclass(frozen=True)
class PoolTier:
    name: str
    label: str
    default_pool_size: int
    reserve_pool_size: int
    source: Source


# Ordered smallest first; growing and shrinking move one tier along this tuple.
POOL_TIERS: tuple[PoolTier, ...] = (
    PoolTier("Light", "Light Load (<50 users)", 10, 5, _POOL),
    PoolTier("Normal", "Normal Load (50-100 users)", 20, 10, _POOL),
    PoolTier("Heavy", "Heavy Load (100-200 users)", 30, 20, _POOL),
    PoolTier("Peak", "Peak Load (200+ users)", 40, 30, _POOL),
)
BEYOND_PEAK = Source(
    VOICEASSIST, "Database Optimization > Connection Pool Tuning", ours=True,
    note="beyond Peak: steps of maxStepPercent up to size.max, reserve at Peak's 3/4 of default (DESIGN + ours)",
)


@dataclass(frozen=True)
class UtilisationLevels:
    """The auditor guide's graded connection-pool usage: target < warning < critical (percent).

    ``Thresholds`` takes its pool defaults from here, so the numbers live in one place. (The guide's
    latency levels are not data here: only their target is used, as the API's default SLO of 500ms.)
    """

    name: str
    target_percent: float
    warning_percent: float
    critical_percent: float
    source: Source


POOL_UTILISATION_LEVELS = UtilisationLevels(
    "Connection Pool Usage", 50.0, 80.0, 90.0,
    Source(AUDITOR, "Performance Targets > Database Connections", note="target < 50%, warning < 80%, critical > 90%"),
)
