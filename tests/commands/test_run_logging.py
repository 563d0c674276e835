"""`perfpilot run --log-format`: perfpilot's events and kopf's own lines come out in the one format asked for.
Run in a child process: logging's set-up is global to a process."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

SCRIPT = """
import logging, sys, structlog
from perfpilot.commands.run import configure_logging
configure_logging(sys.argv[1])
logging.getLogger("kopf.activities.startup").info("Activity 'start_loop' succeeded.")
structlog.get_logger("perfpilot").info("tick", profiles=3)
"""


def _logged(log_format: str) -> tuple[list[str], list[str]]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, log_format], capture_output=True, text=True, timeout=60,
                          check=True)
    return done.stdout.splitlines(), done.stderr.splitlines()


def test_json_gives_one_object_per_line_for_kopf_and_for_perfpilot() -> None:
    stdout, stderr = _logged("json")
    [kopf_line] = stderr
    kopf_event = json.loads(kopf_line)
    assert (kopf_event["message"], kopf_event["severity"]) == ("Activity 'start_loop' succeeded.", "info")
    [perfpilot_line] = stdout
    assert json.loads(perfpilot_line) | {"timestamp": ""} == {"event": "tick", "profiles": 3, "level": "info",
                                                               "timestamp": ""}


def test_console_gives_lines_for_a_terminal() -> None:
    stdout, stderr = _logged("console")
    [kopf_line] = stderr
    assert "kopf.activities.sta" in kopf_line and "Activity 'start_loop' succeeded." in kopf_line
    with pytest.raises(json.JSONDecodeError):
        json.loads(kopf_line)
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in stdout]  # without the terminal's colours
    assert any("tick" in line and "profiles=3" in line for line in plain), stdout
