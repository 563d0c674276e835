"""The package as the operator image installs it: ``pip install .`` of the files the Dockerfile copies, in a
virtualenv of its own (no test extras, no "sim" extra, no editable checkout on the path).

No container runtime runs on the build machines, so the image itself is never built here. What this checks is
everything of it that is ours: that the files the Dockerfile copies make an installable package, that its
dependencies are declared (nothing the tests happen to install stands in for them), that its data (the bundled
trace) ships with it, and that the console script it starts works.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def dockerfile_copies() -> list[str]:
    """The sources of the Dockerfile's COPY lines (its build context's files the image installs from)."""
    sources: list[str] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            sources.extend(word.rstrip("/") for word in words[1:-1] if not word.startswith("--"))
    return sources


def run_installed(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed console script, with an environment that has none of the checkout's paths."""
    environment = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run([str(venv / "bin" / "perfpilot"), *args], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A virtualenv with the package installed as the Dockerfile installs it."""
    context = tmp_path_factory.mktemp("image-context")
    copies = dockerfile_copies()
    assert {"pyproject.toml", "operator"} <= set(copies), copies
    for source in copies:
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(origin, context / source)
    venv = tmp_path_factory.mktemp("image-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(context)],
                         capture_output=True, text=True, timeout=600, check=False,
                         env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert pip.returncode == 0, pip.stderr
    yield venv


def test_the_image_install_has_the_operator_and_no_test_or_plot_dependency(installed: Path, tmp_path: Path) -> None:
    python = installed / "bin" / "python"
    # Each runtime dependency the operator imports is there; what only tests or the plot use is not.
    probe = ("import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None for m in "
             "['kopf', 'kubernetes', 'pydantic', 'structlog', 'yaml', 'jsonschema', 'prometheus_client', "
             "'psycopg', 'requests', 'matplotlib', 'pytest', 'kmock']}))")
    found = json.loads(subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                                      check=True, timeout=60).stdout)
    assert {name for name, present in found.items() if not present} == {"matplotlib", "pytest", "kmock"}, found
    # Installed from the copy, not linked to the checkout.
    origin = subprocess.run([str(python), "-c", "import perfpilot; print(perfpilot.__file__)"], cwd=tmp_path,
                            capture_output=True, text=True, check=True, timeout=60).stdout
    assert str(installed) in origin and str(ROOT) not in origin, origin
    # The operator's own command parses its arguments (`run --help` builds every flag and default).
    shown = run_installed(installed, "run", "--help", cwd=tmp_path)
    assert shown.returncode == 0 and "--prometheus-url" in shown.stdout, shown.stderr


def test_the_installed_package_generates_the_committed_crd(installed: Path, tmp_path: Path) -> None:
    generated = run_installed(installed, "crd", cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout == (ROOT / "crds" / "performanceprofiles.perfpilot.io.yaml").read_text()


def test_the_installed_package_replays_its_bundled_trace_and_says_what_a_plot_needs(
    installed: Path, tmp_path: Path
) -> None:
    # The bundled WorldCup98 slice ships as package data: a short window of it replays with no file given.
    replayed = run_installed(installed, "simulate", "--hours", "2", "--json", "out.json", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["trace"]["name"] == "worldcup98_1998-06-25_2d"
    assert set(result["runs"]) == {"perfpilot", "static", "k8s-default", "oracle"}
    # The image leaves matplotlib out: --plot says which extra brings it, before any replay, and writes nothing.
    plotted = run_installed(installed, "simulate", "--hours", "2", "--plot", "out.png", cwd=tmp_path)
    assert plotted.returncode != 0 and "pip install 'perfpilot[sim]'" in plotted.stderr, plotted.stderr
    assert not (tmp_path / "out.png").exists()
