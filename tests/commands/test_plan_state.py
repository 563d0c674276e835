"""The tuning state `perfpilot plan` reads from the profile's status (read_tuning_state): every field of it.
That plan then decides from it is checked against a real Prometheus in tests/observe/test_plan.py."""

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


def test_the_state_read_keeps_the_wait_for_off_peak_so_a_cut_a_day_into_it_does_not_wait_again() -> None:
    state = read_tuning_state(_profile_with_status({"phase": "Observing", "offPeakWaitSince": "2024-05-01T12:00:00Z"}))
    assert state.off_peak_wait_since == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_the_state_read_is_fresh_when_the_status_holds_none() -> None:
    state = read_tuning_state(_profile_with_status({"phase": "Observing"}))
    assert state.last_change is None and state.off_peak_wait_since is None


def test_the_state_read_keeps_the_last_change_its_history_and_the_barred_moves() -> None:
    change = {"at": "2024-05-01T12:00:00Z", "target": "HorizontalPodAutoscaler/api",
              "field": "hpa.cpuTarget", "from": 70, "to": 60, "verdict": "RolledBack"}
    state = read_tuning_state(_profile_with_status({
        "phase": "Holding", "lastChange": change, "history": [change],
        "barred": [{"setting": "hpa.cpuTarget", "to": 60, "until": "2024-05-01T13:00:00Z"}],
    }))
    assert state.last_change is not None and state.last_change.edit.to_value == 60
    assert [record.verdict.value for record in state.history] == ["RolledBack"]
    assert [(move.to_value, move.until) for move in state.barred] == [(60, datetime(2024, 5, 1, 13, tzinfo=UTC))]
