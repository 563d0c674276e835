"""The status as DESIGN section 2 shows it: lastChange flat (at, target, field, from, to, reason, verdict), the
recommendation shaped the same."""

from __future__ import annotations

from datetime import UTC, datetime

from perfpilot.api.status import (
    ChangeRecord,
    ContainerResources,
    Edit,
    Recommendation,
    Setting,
    TuningState,
    Verdict,
)

AT = datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_a_change_record_is_written_flat_and_read_back_the_same() -> None:
    record = ChangeRecord(at=AT, target="HorizontalPodAutoscaler/api",
                          setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60, reason="Bursty")
    wire = record.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert {key: wire[key] for key in ("at", "target", "field", "from", "to", "reason", "verdict")} == {
        "at": "2024-05-01T12:00:00Z", "target": "HorizontalPodAutoscaler/api", "field": "hpa.cpuTarget",
        "from": 70, "to": 60, "reason": "Bursty", "verdict": "Pending"}
    assert "edit" not in wire
    assert ChangeRecord.model_validate(wire) == record


def test_the_edit_of_a_record_is_its_field_from_and_to() -> None:
    cut = [ContainerResources(name="app", cpu_request_millicores=500)]
    grown = [ContainerResources(name="app", cpu_request_millicores=750)]
    state = TuningState.model_validate({"lastChange": {
        "at": "2024-05-01T12:00:00Z", "target": "Deployment/api", "field": "resources",
        "from": [{"name": "app", "cpuRequestMillicores": 500}], "to": [{"name": "app", "cpuRequestMillicores": 750}],
        "verdict": "Kept"}})
    assert state.last_change is not None and state.last_change.verdict is Verdict.KEPT
    assert state.last_change.edit == Edit(setting=Setting.RESOURCES, from_value=cut, to_value=grown)


def test_a_recommendation_is_shaped_as_the_last_change() -> None:
    recommendation = Recommendation(at=AT, target="HorizontalPodAutoscaler/api", setting=Setting.HPA_CPU_TARGET,
                                    from_value=70, to_value=60, reason="Bursty", table_row="Bursty, unpredictable")
    wire = recommendation.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert wire == {"at": "2024-05-01T12:00:00Z", "target": "HorizontalPodAutoscaler/api", "field": "hpa.cpuTarget",
                    "from": 70, "to": 60, "reason": "Bursty", "tableRow": "Bursty, unpredictable"}
    assert Recommendation.model_validate(wire) == recommendation
    assert Recommendation().model_dump(by_alias=True, exclude_none=True) == {"target": "", "reason": "",
                                                                             "tableRow": ""}
