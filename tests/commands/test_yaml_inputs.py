"""The YAML reader of every command refuses, as unusable, what the API server refuses or what would exhaust the
machine, naming the file and why; ordinary anchors, aliases and merges still read."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfpilot.cli import main
from perfpilot.commands.inputs import MAX_DEPTH, InputFileError, load_yaml_documents


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "in.yaml"
    path.write_text(text)
    return path


def test_a_key_given_twice_in_one_mapping_is_refused_naming_both_lines(tmp_path: Path) -> None:
    path = _file(tmp_path, "slo:\n  latencyP95: 500ms\n  latencyP95: 50000ms\n")
    with pytest.raises(InputFileError) as error:
        load_yaml_documents(path, flag="--profile")
    assert str(error.value) == (f"--profile {path}: not used: key 'latencyP95' at line 3 is given twice in one "
                                f"mapping (first at line 2)")


def test_a_merged_key_may_be_overridden_and_aliases_read(tmp_path: Path) -> None:
    path = _file(tmp_path, "base: &b {cpu: 100m, memory: 1Gi}\nuse:\n  <<: *b\n  cpu: 200m\nagain: *b\n")
    assert load_yaml_documents(path, flag="--profile") == [{
        "base": {"cpu": "100m", "memory": "1Gi"}, "use": {"cpu": "200m", "memory": "1Gi"},
        "again": {"cpu": "100m", "memory": "1Gi"}}]


def test_aliases_expanding_past_a_million_nodes_are_refused_at_once(tmp_path: Path) -> None:
    # Nine levels of nine aliases: a few hundred bytes that expand to 387 million nodes.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = _file(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(InputFileError, match=r"not used: expands to more than 1,000,000 nodes through its aliases"):
        load_yaml_documents(path, flag="--profile")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 2_000])
def test_nesting_too_deep_is_refused_not_a_traceback(tmp_path: Path, depth: int) -> None:
    path = _file(tmp_path, "[" * depth + "]" * depth + "\n")
    with pytest.raises(InputFileError, match=r"not used: nests deeper than"):
        load_yaml_documents(path, flag="--profile")


def test_nesting_at_the_limit_reads(tmp_path: Path) -> None:
    path = _file(tmp_path, "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n")
    assert load_yaml_documents(path, flag="--profile") != []


def test_validate_says_a_refused_file_is_unreadable_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, "kind: PerformanceProfile\nkind: PerformanceProfile\n")
    assert main(["validate", str(path)]) == 2
    assert f"{path}: not used: key 'kind' at line 2 is given twice in one mapping (first at line 1)" in \
        capsys.readouterr().err


def test_an_alias_counts_at_the_depth_it_is_used_not_where_its_anchor_stands(tmp_path: Path) -> None:
    # The anchor nests 60 deep; used 60 deep again, the built object nests 120 deep. Its shallow use last (c),
    # walked first, had its depth taken from there.
    path = _file(tmp_path, f"a: &A {'[' * 60}1{']' * 60}\nb: {'[' * 60}*A{']' * 60}\nc: *A\n")
    with pytest.raises(InputFileError, match=r"not used: nests deeper than 100 levels"):
        load_yaml_documents(path, flag="--profile")


def test_a_merged_mapping_that_overrides_what_it_merges_may_itself_be_merged(tmp_path: Path) -> None:
    # Merging rewrites a merged mapping's pairs in place: b's override of x sat beside the x merged into it.
    path = _file(tmp_path, "outer:\n  b: &b\n    <<: {x: 1}\n    x: 2\nc:\n  <<: *b\n")
    assert load_yaml_documents(path, flag="--profile")[0]["outer"] == {"b": {"x": 2}}


@pytest.mark.parametrize("mapping", ["{1: x, 0x1: y}", "{yes: x, true: y}", "{1: x, 1.0: y}", "{x: 1, 'x': 2}"])
def test_keys_written_differently_but_equal_as_values_are_one_key_given_twice(tmp_path: Path, mapping: str) -> None:
    path = _file(tmp_path, f"a: {mapping}\n")
    with pytest.raises(InputFileError, match=r"is given twice in one mapping"):
        load_yaml_documents(path, flag="--profile")


def test_a_document_that_contains_itself_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, "a: &a [*a]\n")
    with pytest.raises(InputFileError, match=r"not used: contains itself through an alias"):
        load_yaml_documents(path, flag="--profile")
