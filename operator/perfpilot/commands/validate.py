"""`perfpilot validate FILE...` — check PerformanceProfile manifests before they are applied.

Every document is checked against the CRD's schema (what the API server enforces) and the models (what
the operator enforces, cross-field rules included). Problems go to stdout as
``file: document N: field.path: what is wrong (got value)``. Exit status: 0 all valid, 1 some document is
invalid, 2 some file could not be read or parsed (which wins over 1: that file was not checked at all).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from perfpilot.api.spec import API_VERSION, KIND
from perfpilot.api.validate import describe, is_perfpilot_document, validate_profile
from perfpilot.commands.inputs import YamlRefused, parse_yaml_documents

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2
STDIN = "-"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check PerformanceProfile files against the CRD schema and the models",
        description="Check PerformanceProfile manifests (YAML, several documents per file allowed) against the "
        "CRD's schema and the operator's models, and print every problem with its field path and value. "
        "Documents of other API groups in the same files are skipped. Exit status: 0 valid, 1 invalid, "
        "2 a file could not be read or parsed.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML file to check; - reads standard input")
    parser.set_defaults(func=run)


def _load_documents(name: str) -> list[object]:
    """All YAML documents of a file; raises OSError, UnicodeDecodeError or yaml.YAMLError (YamlRefused for a
    key given twice, aliases expanding too far, nesting too deep)."""
    # Standard input as bytes too: its text layer would turn a bad byte into a surrogate YAML then names.
    raw = sys.stdin.buffer.read() if name == STDIN else Path(name).read_bytes()
    text = raw.decode("utf-8")
    return parse_yaml_documents(text)


def _entries(documents: list[object]) -> Iterator[tuple[str, object]]:
    """Each document, or each item of a ``kind: List`` (``kubectl get -o yaml`` writes one), with where it is.

    Numbered by position in the file, empty documents included, so N is the N-th document a reader counts.
    """
    for number, document in enumerate(documents, start=1):
        if document is None:
            continue
        items = document.get("items") if isinstance(document, dict) else None
        kind = document.get("kind") if isinstance(document, dict) else None
        if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
            for index, item in enumerate(items):
                yield f"document {number} items[{index}]", item
        else:
            yield f"document {number}", document


def _describe_bare_spec(document: object) -> str | None:
    """What to do with a profile's spec alone (``simulate --profile`` takes one; the API server does not), or
    None: its fields, read as a manifest's, would each be "not a field of the document"."""
    if not isinstance(document, dict) or {"apiVersion", "kind", "metadata"} & set(document):
        return None
    if set(document) == {"spec"}:
        return (f"a spec without its manifest: add apiVersion: {API_VERSION}, kind: {KIND} and metadata (name, "
                f"namespace) beside spec:")
    if "targetRef" in document:
        return (f"a bare spec, not a manifest: put it under spec: with apiVersion: {API_VERSION}, kind: {KIND} "
                f"and metadata (name, namespace)")
    return None


def _check_file(name: str) -> int:
    try:
        documents = _load_documents(name)
    except UnicodeDecodeError as error:
        print(f"{name}: not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x})", file=sys.stderr)
        return EXIT_UNREADABLE
    except OSError as error:
        print(f"{name}: cannot read the file: {error.strerror or error}", file=sys.stderr)
        return EXIT_UNREADABLE
    except YamlRefused as error:
        print(f"{name}: not used: {error}", file=sys.stderr)
        return EXIT_UNREADABLE
    except yaml.YAMLError as error:
        where = ""
        mark = getattr(error, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(error, "problem", None) or str(error)
        print(f"{name}: not valid YAML{where}: {problem}", file=sys.stderr)
        return EXIT_UNREADABLE

    status = EXIT_VALID
    checked = 0
    for where, document in _entries(documents):
        prefix = f"{name}: {where}"
        if not is_perfpilot_document(document):
            kind = document.get("kind", "?") if isinstance(document, dict) else "?"
            print(f"{prefix}: {kind}/{describe(document)} skipped (not a PerformanceProfile)")
            continue
        checked += 1
        bare = _describe_bare_spec(document)
        if bare is not None:
            print(f"{prefix}: {bare}")
            status = EXIT_INVALID
            continue
        problems = validate_profile(document)
        for problem in problems:
            print(f"{prefix}: {problem}")
        if problems:
            status = EXIT_INVALID
        else:
            print(f"{prefix}: {describe(document)} OK")
    if not checked:
        print(f"{name}: no PerformanceProfile in this file")
        status = EXIT_INVALID
    return status


def run(args: argparse.Namespace) -> int:
    # Every file is checked even after a failure, so one run lists every problem.
    statuses = [_check_file(name) for name in args.files]
    return max(statuses)
