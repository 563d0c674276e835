"""Reading what the commands are given (YAML files, a Prometheus token or CA bundle, extra headers): a failure is
one line naming the flag and the file or value."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from perfpilot.observe.reader import BearerTokenError, header_problem, read_bearer_token

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

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        # Each mapping's pairs as written: merging (<<) rewrites a merged mapping's own pairs in place, which
        # would set a key it overrides beside the one merged in.
        self._written_pairs: dict[int, list[tuple[Node, Node]]] = {}

    def compose_mapping_node(self, anchor: Any) -> MappingNode:  # (the stubs type anchor wrongly)
        node: MappingNode = super().compose_mapping_node(anchor)
        self._written_pairs[id(node)] = list(node.value)
        return node

    def construct_document(self, node: Node) -> Any:
        _check_size(node)
        return super().construct_document(node)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        written = self._written_pairs.get(id(node))
        for key_node, _ in written if written is not None else list(node.value or []):
            if not isinstance(key_node, ScalarNode) or key_node.tag == MERGE_TAG:
                continue  # merged keys ("<<") may be overridden: that is what a merge is for
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            # Keys equal as values are one key, as the mapping built keeps one of them (1 and 0x1, yes and true).
            if key in seen:
                raise YamlRefused(f"key {key_node.value!r} at line {line} is given twice in one mapping (first at "
                                  f"line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _check_size(root: Node) -> None:
    """Refuse a document that, aliases expanded, holds more than MAX_EXPANDED_NODES nodes, nests deeper than
    MAX_DEPTH, or contains itself. Each node's expanded size and height are worked out once, from its
    children's (aliases share nodes), so the check costs what the file holds, not what it expands to; the
    height counts an alias where it is used, however shallow the anchor it names."""
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the path being walked: met again, the document contains itself
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        line = node.start_mark.line + 1
        if not children_done:
            if key in sizes:
                continue
            if key in open_nodes:
                raise YamlRefused(f"contains itself through an alias (line {line})")
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
            continue
        children = _children(node)
        if any(id(child) not in sizes for child in children):
            raise YamlRefused(f"contains itself through an alias (line {line})")
        size = 1 + sum(sizes[id(child)] for child in children)
        height = 1 + max((heights[id(child)] for child in children), default=0)
        if size > MAX_EXPANDED_NODES:
            raise YamlRefused(f"expands to more than {MAX_EXPANDED_NODES:,} nodes through its aliases (line {line})")
        if height > MAX_DEPTH:
            raise YamlRefused(f"nests deeper than {MAX_DEPTH} levels (line {line})")
        sizes[key], heights[key] = size, height
        open_nodes.discard(key)


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


def check_prometheus_files(*, bearer_token_file: Path | None, ca_file: Path | None) -> None:
    """Raise ``InputFileError`` naming the flag and file when ``--bearer-token-file`` or ``--ca-file`` cannot be
    used: checked before any query, since the reader would only report them as every signal unknown (a token
    it cannot read) or Prometheus unreachable (a file that holds no certificate)."""
    for flag, path in (("--bearer-token-file", bearer_token_file), ("--ca-file", ca_file)):
        if path is not None and not path.is_file():
            raise InputFileError(f"{flag}: no readable file (got {str(path)!r})")
    if ca_file is not None:
        try:
            ssl.create_default_context(cafile=str(ca_file))
        except (ssl.SSLError, OSError, UnicodeDecodeError) as error:
            raise InputFileError(f"--ca-file: not a PEM CA bundle ({error}) (got {str(ca_file)!r})") from error
    if bearer_token_file is not None:
        try:
            read_bearer_token(bearer_token_file)
        except BearerTokenError as error:
            raise InputFileError(f"--bearer-token-file: {error}") from error


def parse_header_flags(raw_headers: list[str]) -> dict[str, str]:
    """``--header NAME=VALUE`` flags as the reader's extra headers. Raises ``InputFileError`` naming the flag and
    the value as it was typed."""
    headers: dict[str, str] = {}
    for raw in raw_headers:
        name, separator, value = raw.partition("=")
        name, value = name.strip(), value.strip()
        if not separator or not name:
            raise InputFileError(f"--header: expected NAME=VALUE (got {raw!r})")
        # Checked here as well as in the settings, so the message shows the flag's value as it was typed.
        problem = header_problem(name, value)
        if problem is not None:
            raise InputFileError(f"--header: {problem} (got {raw!r})")
        headers[name] = value
    return headers
