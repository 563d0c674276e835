"""Reading the YAML files the commands are given: a failure is one line naming the flag and the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class InputFileError(ValueError):
    """A file a command was given cannot be used; the message names the flag, the file and why."""


def load_yaml_documents(path: Path, *, flag: str) -> list[Any]:
    """Every YAML document of ``path`` (empty ones as None); raises ``InputFileError``."""
    try:
        return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except OSError as error:
        raise InputFileError(f"{flag} {path}: cannot read: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise InputFileError(
            f"{flag} {path}: not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x})") from error
    except yaml.YAMLError as error:
        # PyYAML's own text spans several lines and names "<unicode string>", not the file: its parts are kept.
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())
        raise InputFileError(f"{flag} {path}: not valid YAML{where}: {problem}") from error
