"""The rules, one function each, a module per family; ``RULES`` lists them in DESIGN's order of precedence.

Each rule names the signals it needs and yields candidate changes, most wanted first; a rule whose
signals are unknown yields an outcome with ``blocked_by`` instead. Rules apply bounds and step limits
themselves (through ``guardrails``); cooldown, verification and barred moves are the engine's job,
because they are about *when*, not *what*.
"""

from __future__ import annotations

from perfpilot.tuning.rules.behaviour import decide_behaviour
from perfpilot.tuning.rules.context import Rule, RuleContext, RuleOutcome
from perfpilot.tuning.rules.emergency import decide_slo_emergency
from perfpilot.tuning.rules.pool import decide_pool_shrink, decide_pool_waiting
from perfpilot.tuning.rules.provisioning import (
    decide_over_provisioning,
    decide_spike_headroom,
    decide_under_provisioning,
)
from perfpilot.tuning.rules.shortage import compute_shortage
from perfpilot.tuning.rules.targets import decide_hpa_targets, find_coupled_target_origin

RULES: tuple[Rule, ...] = (
    decide_slo_emergency,
    decide_pool_waiting,
    decide_under_provisioning,
    decide_spike_headroom,
    decide_hpa_targets,
    decide_behaviour,
    decide_over_provisioning,
    decide_pool_shrink,
)

__all__ = ["RULES", "Rule", "RuleContext", "RuleOutcome", "compute_shortage", "find_coupled_target_origin"]
