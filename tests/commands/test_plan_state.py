"""`perfpilot plan` plans from the tuning state the profile's status holds, as the operator would."""

from __future__ import annotations

from datetime import UTC, datetime

from perfpilot.api.spec import PerformanceProfile
from perfpilot.commands.plan import read_tuning_state


def _profile_with_status(status: dict[str, object]) -> PerformanceProfile:
    return PerformanceProfile.model_validate({
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"targetRef": {"kind": "Deployment", "name": "api"}},
        "status": status,
    })


def test_plan_reads_the_wait_for_off_peak_from_the_status_so_a_cut_a_day_into_it_does_not_wait_again() -> None:
    state = read_tuning_state(_profile_with_status({"phase": "Observing", "offPeakWaitSince": "2024-05-01T12:00:00Z"}))
    assert state.off_peak_wait_since == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_plan_plans_from_a_fresh_state_when_the_status_holds_none() -> None:
    state = read_tuning_state(_profile_with_status({"phase": "Observing"}))
    assert state.last_change is None and state.off_peak_wait_since is None
