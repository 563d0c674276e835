"""Reading the YAML files the commands are given: a failure is one line naming the flag and the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# What a profile or workload file may expand to through YAML aliases, and how deep it may nest: far beyond
# any real manifest, far below what exhausts memory ("billion laughs": nine levels of nine aliases expand a
# few hundred bytes into 387 million nodes) or Python's stack.
MAX_EXPANDED_NODES = 1_000_000
MAX_DEPTH = 100
MERGE_TAG = "tag:yaml.org,2002:merge"


class InputFileError(ValueError):
    """A file a command was given cannot be used; the message names the flag, the file and why."""


class YamlRefused(yaml.YAMLError):
    """A document this reader will not build: a key given twice, aliases expanding past the limit, too deep."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing what the Kubernetes API server refuses or what would exhaust the
    machine: a key given twice in one mapping (the API server's strict field validation reports it; PyYAML
    keeps the last silently), aliases expanding past MAX_EXPANDED_NODES, nesting deeper than MAX_DEPTH."""

    def construct_document(self, node: Node) -> Any:
        _check_size(node)
        return super().construct_document(node)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == MERGE_TAG:
                continue  # merged keys ("<<") may be overridden: that is what a merge is for
            key = (key_node.tag, key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise YamlRefused(f"key {key_node.value!r} at line {line} is given twice in one mapping (first at "
                               f"line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _check_size(root: Node) -> None:
    """Refuse a document whose nodes, aliases expanded, pass MAX_EXPANDED_NODES or nest past MAX_DEPTH.
    Each node's expanded size is worked out once (aliases share nodes), so the check costs what the file
    holds, not what it expands to."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if depth > MAX_DEPTH:
            raise YamlRefused(f"nests deeper than {MAX_DEPTH} levels (line {node.start_mark.line + 1})")
        if isinstance(node, SequenceNode):
            children: list[Node] = list(node.value)
        elif isinstance(node, MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = []
        if children_done:
            size = 1 + sum(sizes[id(child)] for child in children)
            if size > MAX_EXPANDED_NODES:
                raise YamlRefused(f"expands to more than {MAX_EXPANDED_NODES:,} nodes through its aliases "
                               f"(line {node.start_mark.line + 1})")
            sizes[id(node)] = size
            continue
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in children if id(child) not in sizes)


def parse_yaml_documents(text: str) -> list[Any]:
    """Every YAML document of ``text`` (empty ones as None), read strictly (see ``_StrictLoader``); raises
    ``YamlRefused`` for what it will not build, another ``yaml.YAMLError`` for what is not YAML."""
    try:
        return list(yaml.load_all(text, Loader=_StrictLoader))
    except RecursionError:  # PyYAML's composer recurses before any document can be checked
        raise YamlRefused("nests deeper than Python's stack allows") from None


def load_yaml_documents(path: Path, *, flag: str) -> list[Any]:
    """Every YAML document of ``path`` (empty ones as None); raises ``InputFileError``."""
    try:
        return parse_yaml_documents(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputFileError(f"{flag} {path}: cannot read: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise InputFileError(
            f"{flag} {path}: not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x})") from error
    except YamlRefused as error:
        raise InputFileError(f"{flag} {path}: not used: {error}") from error
    except yaml.YAMLError as error:
        # PyYAML's own text spans several lines and names "<unicode string>", not the file: its parts are kept.
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())
        raise InputFileError(f"{flag} {path}: not valid YAML{where}: {problem}") from error
