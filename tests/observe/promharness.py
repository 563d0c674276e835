"""A real Prometheus for tests: history written ahead of time with promtool, optional live scraping.

Sharp edges handled here (``shared/TESTING.md``): timestamps are whole seconds (milliseconds would land in
the year 58000), samples of a series are written in time order (out-of-order ones are dropped silently),
retention is set far beyond the data's age because it counts from the newest block, and every query passes
an explicit evaluation time.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import math
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = (
    "the integration tests need Prometheus and promtool (Debian package 'prometheus'); "
    "scripts/test.sh installs it when run as root, or run: apt-get install -y prometheus"
)


def require_binaries() -> tuple[str, str]:
    """Paths of prometheus and promtool; a clear failure (never a skip) when they are missing."""
    prometheus = shutil.which("prometheus")
    promtool = shutil.which("promtool")
    if prometheus is None or promtool is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return prometheus, promtool


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""

    cert: Path
    key: Path


def make_self_signed_certificate(folder: Path) -> TlsFiles:
    """A fresh certificate for 127.0.0.1 made by openssl (a Debian package scripts/test.sh installs)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is missing: scripts/test.sh installs it (apt-get install openssl, as root)",
                    pytrace=False)
    files = TlsFiles(cert=folder / "cert.pem", key=folder / "key.pem")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(files.key), "-out", str(files.cert)],
        check=True, capture_output=True,
    )
    return files


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _format_labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return "{" + body + "}"


@dataclass
class _Family:
    kind: str  # counter | gauge | histogram
    series: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[int, float]]] = field(default_factory=dict)


class OpenMetricsWriter:
    """Collects samples by family and series and renders them as one OpenMetrics file."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}

    def add(self, family: str, kind: str, sample_name: str, labels: Mapping[str, str], *, at_seconds: int,
            value: float) -> None:
        if not isinstance(at_seconds, int):
            raise TypeError("OpenMetrics timestamps here are whole seconds")
        entry = self._families.setdefault(family, _Family(kind))
        if entry.kind != kind:
            raise ValueError(f"{family} is a {entry.kind}, not a {kind}")
        points = entry.series.setdefault((sample_name, tuple(sorted(labels.items()))), [])
        if points and points[-1][0] >= at_seconds:
            raise ValueError(f"{sample_name}{dict(labels)}: samples must be written in time order")
        points.append((at_seconds, value))

    def counter(self, name: str, labels: Mapping[str, str], *, at_seconds: int, value: float) -> None:
        family = name.removesuffix("_total")
        self.add(family, "counter", f"{family}_total", labels, at_seconds=at_seconds, value=value)

    def gauge(self, name: str, labels: Mapping[str, str], *, at_seconds: int, value: float) -> None:
        self.add(name, "gauge", name, labels, at_seconds=at_seconds, value=value)

    def histogram(self, name: str, labels: Mapping[str, str], *, at_seconds: int,
                  cumulative: Sequence[tuple[float, float]], total_sum: float) -> None:
        """One scrape of a histogram: cumulative ``(le, count)`` pairs ending with +Inf, and its sum."""
        for bound, count in cumulative:
            le = "+Inf" if math.isinf(bound) else repr(float(bound))
            self.add(name, "histogram", f"{name}_bucket", {**labels, "le": le}, at_seconds=at_seconds, value=count)
        self.add(name, "histogram", f"{name}_count", labels, at_seconds=at_seconds, value=cumulative[-1][1])
        self.add(name, "histogram", f"{name}_sum", labels, at_seconds=at_seconds, value=total_sum)

    def series(self, sample_name: str) -> list[tuple[dict[str, str], list[tuple[int, float]]]]:
        """Every written series of ``sample_name`` with its points, for computing expectations."""
        family = self._families.get(sample_name.removesuffix("_total").removesuffix("_bucket"))
        found = [] if family is None else family.series.items()
        return [(dict(labels), points) for (name, labels), points in found if name == sample_name]

    def render(self) -> str:
        lines: list[str] = []
        for family, entry in sorted(self._families.items()):
            lines.append(f"# TYPE {family} {entry.kind}")
            for (sample_name, labels), points in entry.series.items():
                label_text = _format_labels(dict(labels))
                lines.extend(f"{sample_name}{label_text} {_format_value(v)} {t}" for t, v in points)
        lines.append("# EOF")
        return "\n".join(lines) + "\n"


def backfill(openmetrics: str, data_dir: Path) -> None:
    """Write TSDB blocks from OpenMetrics text with promtool (blocks are cut at 2-hour boundaries)."""
    _, promtool = require_binaries()
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".om", delete=False) as handle:
        handle.write(openmetrics)
        source = handle.name
    try:
        done = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", source, str(data_dir)],
            capture_output=True, text=True, timeout=120, check=False,
        )
    finally:
        Path(source).unlink()
    if done.returncode != 0:
        raise RuntimeError(f"promtool failed ({done.returncode}): {done.stderr[-2000:]}")


@dataclass(frozen=True)
class ScrapeTarget:
    address: str  # host:port
    labels: Mapping[str, str]


class PrometheusServer:
    """A Prometheus process on a free loopback port; stopped (and its data removed) by ``stop``."""

    def __init__(self, *, data_dir: Path, scrape_targets: Sequence[ScrapeTarget] = (),
                 scrape_interval_seconds: int = 1, tls: TlsFiles | None = None,
                 extra_args: Sequence[str] = ()) -> None:
        self.data_dir = data_dir
        self.extra_args = tuple(extra_args)  # more flags, such as --query.max-samples
        self.port = free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._targets = scrape_targets
        self._interval = scrape_interval_seconds
        self._process: subprocess.Popen[bytes] | None = None
        self._log = data_dir.parent / f"prometheus-{self.port}.log"

    def _config(self) -> str:
        lines = ["global:", f"  scrape_interval: {self._interval}s", f"  scrape_timeout: {self._interval}s",
                 "scrape_configs:"]
        for index, target in enumerate(self._targets):
            lines += [f"  - job_name: live{index}", "    static_configs:", f"      - targets: ['{target.address}']",
                      "        labels:"]
            lines += [f"          {k}: '{v}'" for k, v in target.labels.items()]
        if not self._targets:
            lines[-1] = "scrape_configs: []"
        return "\n".join(lines) + "\n"

    def start(self, *, ready_timeout_seconds: float = 20.0) -> None:
        prometheus, _ = require_binaries()
        config = self.data_dir.parent / f"prometheus-{self.port}.yml"
        config.write_text(self._config())
        web: list[str] = []
        ready_context = None
        if self.tls is not None:
            web_config = self.data_dir.parent / f"prometheus-{self.port}-web.yml"
            web_config.write_text(f"tls_server_config:\n  cert_file: {self.tls.cert}\n  key_file: {self.tls.key}\n")
            web = [f"--web.config.file={web_config}"]
            ready_context = ssl.create_default_context(cafile=str(self.tls.cert))
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [prometheus, f"--config.file={config}", f"--storage.tsdb.path={self.data_dir}",
                 f"--web.listen-address=127.0.0.1:{self.port}",
                 # Retention counts from the newest block, and the history is years old: keep all of it.
                 "--storage.tsdb.retention.time=36500d",
                 "--query.lookback-delta=5m", *web, *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + ready_timeout_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log_tail = self._log.read_text()[-2000:]
                raise RuntimeError(f"prometheus exited with {self._process.returncode}: {log_tail}")
            with contextlib.suppress(OSError), urllib.request.urlopen(
                    f"{self.url}/-/ready", timeout=1, context=ready_context) as answer:
                if answer.status == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"prometheus not ready within {ready_timeout_seconds}s: {self._log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        self._process = None


@contextlib.contextmanager
def running_prometheus(*, workdir: Path, openmetrics: str | None, scrape_targets: Sequence[ScrapeTarget] = (),
                       extra_args: Sequence[str] = ()) -> Iterator[PrometheusServer]:
    data_dir = workdir / "tsdb"
    if openmetrics is not None:
        backfill(openmetrics, data_dir)
    server = PrometheusServer(data_dir=data_dir, scrape_targets=scrape_targets, extra_args=extra_args)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class RecordingProxy:
    """A pass-through HTTP proxy in front of Prometheus that records requests and can answer 503 or 414.

    It lets tests see what the reader sends (token, tenant header, parameters), make a real server look flaky
    and stand for a proxy with a URL length limit.
    """

    def __init__(self, upstream_url: str, *, max_request_line_bytes: int | None = None) -> None:
        self.upstream_url = upstream_url
        # nginx answers 414 to a request line longer than its buffer (large_client_header_buffers, 8 KB by
        # default); None passes every request on.
        self.max_request_line_bytes = max_request_line_bytes
        self.headers_seen: list[dict[str, str]] = []
        self.queries_seen: list[dict[str, str]] = []  # each request's parameters, from the URL and the form body
        self.methods_seen: list[str] = []
        self.fail_next = 0
        # Given a request's PromQL, an answer to send instead of Prometheus's: (status, body), or None.
        self.answer_for: Callable[[str], tuple[int, bytes] | None] = lambda _: None
        # Given Prometheus's JSON answer and the PromQL, the answer to pass on (warnings added, say).
        self.rewrite: Callable[[dict[str, Any], str], dict[str, Any]] = lambda answer, _: answer
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._pass_on(body=b"")

            def do_POST(self) -> None:
                self._pass_on(body=self.rfile.read(int(self.headers.get("Content-Length", "0"))))

            def _pass_on(self, *, body: bytes) -> None:
                limit = proxy.max_request_line_bytes
                if limit is not None and len(self.requestline) > limit:
                    self._answer(414, b"<html><head><title>414 Request-URI Too Large</title></head></html>")
                    return
                proxy.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
                proxy.methods_seen.append(self.command)
                url_parameters = urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query)
                parameters = dict(url_parameters + urllib.parse.parse_qsl(body.decode()))
                proxy.queries_seen.append(parameters)
                if proxy.fail_next > 0:
                    proxy.fail_next -= 1
                    self._answer(503, b"upstream overloaded")
                    return
                instead = proxy.answer_for(parameters.get("query", ""))
                if instead is not None:
                    self._answer(*instead)
                    return
                upstream = urllib.request.Request(proxy.upstream_url + self.path, data=body or None,
                                                  method=self.command)
                try:
                    with urllib.request.urlopen(upstream, timeout=10) as answer:
                        status, answered = answer.status, answer.read()
                except urllib.error.HTTPError as refused:  # a 4xx/5xx answer (a query refused) goes on as it is
                    self._answer(refused.code, refused.read())
                    return
                rewritten = proxy.rewrite(json.loads(answered), parameters.get("query", ""))
                self._answer(status, json.dumps(rewritten).encode())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class SilentServer:
    """Accepts connections and never answers: a Prometheus stuck on a heavy query, as the client sees it."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self._held.append(connection)

    @property
    def connections_accepted(self) -> int:
        return len(self._held)

    def close(self) -> None:
        self._closed.set()
        self._socket.close()
        for connection in self._held:
            connection.close()
