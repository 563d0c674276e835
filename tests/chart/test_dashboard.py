"""charts/perfpilot/dashboards/perfpilot.json, the Grafana dashboard of the operator's /metrics, checked against the
operator's code: every metric a panel or a variable queries is one `perfpilot run` serves, every label it groups,
matches or joins by is one that metric carries (or one Prometheus adds when it scrapes), every legend names a label
its query keeps, and every query is PromQL that promtool parses.

What the operator serves is read from prometheus_client's default registry (the one `perfpilot run --metrics-port`
serves) after importing both instrumentation modules, never from a list kept here."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_FILE = REPO / "charts" / "perfpilot" / "dashboards" / "perfpilot.json"
INSTRUMENTATION = ("perfpilot.control.instrumentation", "perfpilot.observe.instrumentation")

# Labels Prometheus puts on every series it scrapes through the chart's ServiceMonitor (the Prometheus Operator's
# target labels), beside the operator's own.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "service", "endpoint", "container"})
# Grafana's variables, as a value PromQL accepts in their place (for promtool).
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h", "job": ".*", "namespace": ".*"}

AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                          "bottomk", "topk", "quantile"})
# Functions that keep their argument's labels. label_replace and label_join make new labels and are left out on
# purpose: a query using them needs this check extended first.
FUNCTIONS = frozenset({"rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "round",
                       "abs", "ceil", "floor", "clamp", "clamp_min", "clamp_max", "avg_over_time", "min_over_time",
                       "max_over_time", "sum_over_time", "count_over_time", "last_over_time", "changes", "resets",
                       "absent", "sort", "sort_desc"})
SET_OPERATORS = frozenset({"and", "or", "unless", "bool"})
JOINS = frozenset({"on", "ignoring", "group_left", "group_right"})

TOKEN = re.compile(r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_:][\w:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>(){},])
  | (?P<space>\s+)
""", re.VERBOSE)


@dataclass(frozen=True)
class Selector:
    at: int  # token index
    metric: str
    labels: tuple[str, ...]  # matched on, inside {}


@dataclass(frozen=True)
class Grouping:
    keyword: str  # by, on, group_left, ...
    labels: tuple[str, ...]
    span: tuple[int, int]  # the tokens it applies to (the whole expression for a join)
    aggregation: bool  # an aggregation's by (), which decides the labels its result keeps


@dataclass(frozen=True)
class Query:
    expr: str
    selectors: tuple[Selector, ...]
    groupings: tuple[Grouping, ...]

    def metrics_within(self, span: tuple[int, int]) -> set[str]:
        return {s.metric for s in self.selectors if span[0] <= s.at <= span[1]}

    def kept_labels(self) -> set[str] | None:
        """The labels the outermost aggregations keep (what a legend can show); None without any aggregation."""
        outer = [g for g in self.groupings if g.aggregation and not any(
            o is not g and o.aggregation and o.span[0] < g.span[0] and g.span[1] <= o.span[1]
            for o in self.groupings)]
        if not outer:
            return None
        return set.intersection(*(set(g.labels) for g in outer))


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens, at = [], 0
    while at < len(expr):
        match = TOKEN.match(expr, at)
        if match is None:
            raise ValueError(f"cannot read {expr[at:]!r} in {expr!r}")
        at = match.end()
        if match.lastgroup != "space":
            tokens.append((str(match.lastgroup), match.group()))
    return tokens


def parse(expr: str) -> Query:
    """The selectors and groupings of a PromQL expression: enough of PromQL to check names and labels, and it
    refuses what it does not know (offset, @, label_replace, without, an unknown function) rather than guess."""
    tokens = _tokens(expr)
    partner: dict[int, int] = {}
    opened: list[int] = []
    for i, (_, text) in enumerate(tokens):
        if text == "(":
            opened.append(i)
        elif text == ")":
            partner[opened[-1]] = i
            partner[i] = opened.pop()
    assert not opened, f"unbalanced parentheses in {expr!r}"

    def label_list(start: int) -> tuple[tuple[str, ...], int]:
        assert tokens[start][1] == "(", f"a label list was expected in {expr!r}"
        names = tuple(text for kind, text in tokens[start + 1:partner[start]] if kind == "name")
        return names, partner[start]

    selectors: list[Selector] = []
    groupings: list[Grouping] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "op" and text == "{":
            raise AssertionError(f"a selector without a metric name in {expr!r}")
        if kind != "name" or text in SET_OPERATORS or (text in AGGREGATIONS and following in {"by", "without"}):
            i += 1
            continue
        if text in JOINS:
            if following != "(":  # group_left without labels
                i += 1
                continue
            labels, end = label_list(i + 1)
            groupings.append(Grouping(text, labels, (0, len(tokens)), aggregation=False))
            i = end + 1
        elif text == "by":
            labels, end = label_list(i + 1)
            if tokens[i - 1][1] in AGGREGATIONS:  # sum by (x) (expr)
                assert tokens[end + 1][1] == "(", f"by (...) without its expression in {expr!r}"
                span = (end + 1, partner[end + 1])
            else:  # sum (expr) by (x)
                assert tokens[i - 1][1] == ")", f"by (...) after no aggregation in {expr!r}"
                span = (partner[i - 1], i - 1)
            groupings.append(Grouping("by", labels, span, aggregation=True))
            i = end + 1
        elif text in AGGREGATIONS and following == "(":
            if not (partner[i + 1] + 1 < len(tokens) and tokens[partner[i + 1] + 1][1] == "by"):
                groupings.append(Grouping("", (), (i + 1, partner[i + 1]), aggregation=True))  # sum(expr)
            i += 1
        elif following == "(":
            assert text in FUNCTIONS | AGGREGATIONS, f"{text}(...) is not a function this check knows: {expr!r}"
            i += 1
        elif text in {"without", "offset"}:
            raise AssertionError(f"{text} is not handled by this check yet: {expr!r}")
        else:
            labels: tuple[str, ...] = ()
            if following == "{":
                end = next(j for j in range(i + 1, len(tokens)) if tokens[j][1] == "}")
                matchers = tokens[i + 2:end]
                labels = tuple(matchers[j][1] for j in range(0, len(matchers), 4))
                assert all(matchers[j][0] == "name" for j in range(0, len(matchers), 4)), expr
                i = end
            selectors.append(Selector(i, text, labels))
            i += 1
    assert "@" not in expr, f"@ is not handled by this check yet: {expr!r}"
    return Query(expr, tuple(selectors), tuple(groupings))


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def _targets(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target


LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def _variable_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(variable, its metric selector, the label whose values it lists) of every query variable."""
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = LABEL_VALUES.match(query)
        assert match, f"variable {variable['name']}: only label_values(selector, label) is checked: {query!r}"
        yield variable["name"], match["selector"], match["label"]


def unknown_metrics(dashboard: dict[str, Any], exposed: dict[str, frozenset[str]]) -> list[str]:
    """Each metric a panel or variable queries that the operator does not serve."""
    found = [f"{title}: {selector.metric}" for title, target in _targets(dashboard)
             for selector in parse(target["expr"]).selectors if selector.metric not in exposed]
    found += [f"variable {name}: {selector.metric}" for name, text, _ in _variable_queries(dashboard)
              for selector in parse(text).selectors if selector.metric not in exposed]
    return found


def unknown_labels(dashboard: dict[str, Any], exposed: dict[str, frozenset[str]]) -> list[str]:
    """Each label a query groups, joins or matches by that a metric it applies to does not carry."""
    def carried(metric: str) -> frozenset[str]:
        return exposed.get(metric, frozenset()) | TARGET_LABELS

    found = []
    for title, target in _targets(dashboard):
        query = parse(target["expr"])
        for grouping in query.groupings:
            metrics = query.metrics_within(grouping.span)
            assert metrics, f"{title}: {grouping.keyword} ({', '.join(grouping.labels)}) over no metric"
            found += [f"{title}: {grouping.keyword} ({label}) over {metric}" for metric in sorted(metrics)
                      for label in grouping.labels if label not in carried(metric)]
        found += [f"{title}: {{{label}=...}} on {selector.metric}" for selector in query.selectors
                  for label in selector.labels if label not in carried(selector.metric)]
    for name, text, label in _variable_queries(dashboard):
        [selector] = parse(text).selectors
        found += [f"variable {name}: {{{matched}=...}} on {selector.metric}" for matched in selector.labels
                  if matched not in carried(selector.metric)]
        if label not in carried(selector.metric):
            found.append(f"variable {name}: label_values(..., {label}) on {selector.metric}")
    return found


def unkept_legend_labels(dashboard: dict[str, Any]) -> list[str]:
    """Each {{label}} of a legend that its query's outer aggregation does not keep (it would show empty)."""
    found = []
    for title, target in _targets(dashboard):
        shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
        kept = parse(target["expr"]).kept_labels()
        if kept is not None:
            found += [f"{title}: {{{{{label}}}}} in {target['legendFormat']!r}" for label in sorted(shown - kept)]
    return found


@pytest.fixture(scope="module")
def exposed() -> Iterator[dict[str, frozenset[str]]]:
    """Every sample name the operator's /metrics serves, with the labels each carries.

    A labelled metric has no sample until a value of its labels is counted, so each one the two modules define gets
    a child for the time of one collect, removed right after: the registry is left as it was found."""
    modules = [importlib.import_module(name) for name in INSTRUMENTATION]
    labelled = [metric for module in modules for metric in vars(module).values()
                if isinstance(metric, MetricWrapperBase) and metric._labelnames]
    assert labelled, "no labelled metric found in the instrumentation modules"
    added = [(metric, ("dashboard-test",) * len(metric._labelnames)) for metric in labelled]
    for metric, values in added:
        metric.labels(*values)
    try:
        samples: dict[str, set[str]] = {}
        for family in REGISTRY.collect():
            for sample in family.samples:
                samples.setdefault(sample.name, set()).update(sample.labels)
    finally:
        for metric, values in added:
            metric.remove(*values)
    yield {name: frozenset(labels) for name, labels in samples.items()}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return loaded


def test_the_exposed_set_is_read_from_the_registry(exposed: dict[str, frozenset[str]]) -> None:
    # What the checks below compare with: counters with _total, histograms with _bucket (and le), labels included.
    assert exposed["perfpilot_rollbacks_total"] == {"setting"}
    assert exposed["perfpilot_tick_duration_seconds_bucket"] == {"le"}
    assert exposed["perfpilot_promql_queries_total"] == {"prometheus", "signal", "outcome"}
    assert "perfpilot_rollbacks" not in exposed  # the bare name of a counter is not a series


def test_every_metric_a_panel_or_variable_queries_is_one_the_operator_serves(
        dashboard: dict[str, Any], exposed: dict[str, frozenset[str]]) -> None:
    assert unknown_metrics(dashboard, exposed) == []


def test_every_label_a_query_groups_joins_or_matches_by_is_one_its_metric_carries(
        dashboard: dict[str, Any], exposed: dict[str, frozenset[str]]) -> None:
    assert unknown_labels(dashboard, exposed) == []


def test_every_legend_names_only_labels_its_query_keeps(dashboard: dict[str, Any]) -> None:
    assert unkept_legend_labels(dashboard) == []


def test_the_checks_catch_a_wrong_metric_a_wrong_label_and_a_wrong_legend(
        dashboard: dict[str, Any], exposed: dict[str, frozenset[str]]) -> None:
    def doctored(old: str, new: str, count: int = 1) -> dict[str, Any]:
        text = json.dumps(dashboard)
        assert old in text
        loaded: dict[str, Any] = json.loads(text.replace(old, new, count))
        return loaded

    assert unknown_metrics(doctored("perfpilot_rollbacks_total", "perfpilot_rollback_total"), exposed)
    assert unknown_metrics(doctored("perfpilot_tick_duration_seconds_bucket", "perfpilot_tick_seconds_bucket"),
                           exposed)
    assert unknown_metrics(doctored("label_values(perfpilot_leading,", "label_values(perfpilot_leader,", -1), exposed)
    assert unknown_labels(doctored("sum by (setting) (rate(perfpilot_rollbacks_total",
                                   "sum by (settings) (rate(perfpilot_rollbacks_total"), exposed)
    assert unknown_labels(doctored("sum by (prometheus, le)", "sum by (server, le)"), exposed)
    assert unknown_labels(doctored('kind!=\\"none\\"', 'decision!=\\"none\\"'), exposed)
    assert unkept_legend_labels(doctored('"{{setting}}"', '"{{kind}}"'))
    assert dashboard == json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))  # the copies were doctored only


def test_every_query_is_promql_promtool_parses(dashboard: dict[str, Any], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing (Debian package 'prometheus': scripts/packages.sh installs it)"

    def runnable(expr: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: GRAFANA_VARIABLES[m[1]], expr)

    exprs = [runnable(target["expr"]) for _, target in _targets(dashboard)]
    exprs += [runnable(selector) for _, selector, _ in _variable_queries(dashboard)]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(exprs)} rules found" in result.stdout, result.stdout


def test_the_dashboard_is_grafana_json_over_a_datasource_variable_with_a_described_panel_each(
        dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "perfpilot-operator" and dashboard["id"] is None
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    for variable in variables.values():
        if variable["type"] == "query":  # Grafana shows the definition and runs the query: one text
            assert variable["definition"] == variable["query"]["query"], variable["name"]
            assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, variable["name"]
    panels = [panel for panel in _panels(dashboard) if panel["type"] != "row"]
    assert len(panels) >= 20
    ids = [panel["id"] for panel in _panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["title"] and len(panel["description"]) > 80, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            # Every series is the operator's own, narrowed to the namespace and job chosen.
            for selector in parse(target["expr"]).selectors:
                assert {"job", "namespace"} <= set(selector.labels), (panel["title"], target["expr"])


def test_the_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in _panels(dashboard):
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_the_parser_reads_groupings_joins_and_matchers() -> None:
    query = parse('histogram_quantile(0.95, sum by (prometheus, le) (rate(a_bucket{job=~"x", b!="y"}[5m]))) '
                  '* on (pod) group_left c + sum(d) by (e)')
    assert [(s.metric, s.labels) for s in query.selectors] == [("a_bucket", ("job", "b")), ("c", ()), ("d", ())]
    assert [(g.keyword, g.labels) for g in query.groupings] == [("by", ("prometheus", "le")), ("on", ("pod",)),
                                                                 ("by", ("e",))]
    assert query.metrics_within(query.groupings[0].span) == {"a_bucket"}
    assert query.metrics_within(query.groupings[2].span) == {"d"}
    assert query.kept_labels() == set()  # {prometheus, le} and {e} share none
    assert parse("sum by (x) (max by (y) (m))").kept_labels() == {"x"}
    assert parse("sum(max by (y) (m))").kept_labels() == set()
    assert parse("m").kept_labels() is None
    for refused in ("label_replace(m, 'a', '$1', 'b', '(.*)')", "m offset 5m", "sum without (x) (m)", "{job='x'}"):
        with pytest.raises(AssertionError):
            parse(refused)
