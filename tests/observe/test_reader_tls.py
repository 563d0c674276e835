"""The reader against a real Prometheus served over TLS with a self-signed certificate: the CA bundle (or
``insecureSkipVerify``) lets it read, and without them the error says the TLS handshake failed and why."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from promharness import PrometheusServer, TlsFiles, make_self_signed_certificate

from perfpilot.observe.reader import PrometheusReader, PrometheusSettings, PrometheusUnreachable

pytestmark = pytest.mark.integration

NOW = datetime.now(tz=UTC)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_prometheus(tmp_path_factory: pytest.TempPathFactory, certificate: TlsFiles) -> Iterator[PrometheusServer]:
    server = PrometheusServer(data_dir=tmp_path_factory.mktemp("tls-prometheus") / "tsdb", tls=certificate)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _read_a_constant(settings: PrometheusSettings) -> list[str]:
    with PrometheusReader(settings) as reader:
        series = reader.query_range("vector(7)", signal="test", end=NOW, window_seconds=120, step_seconds=60)
    return [value for one in series for _, value in one.samples]


def test_the_reader_reads_a_tls_prometheus_with_its_ca_file(
    tls_prometheus: PrometheusServer, certificate: TlsFiles
) -> None:
    assert tls_prometheus.url.startswith("https://")
    values = _read_a_constant(PrometheusSettings(url=tls_prometheus.url, ca_file=certificate.cert))
    assert values and set(values) == {"7"}


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_the_ca_file_wins_over_a_ca_bundle_named_in_the_environment(
    tls_prometheus: PrometheusServer, certificate: TlsFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    # requests lets these variables override a session's own CA setting (psf/requests#3829); Debian images and
    # CI runners set them to the system bundle, which has never heard of the cluster's CA.
    monkeypatch.setenv(variable, str(make_self_signed_certificate(tmp_path).cert))
    values = _read_a_constant(PrometheusSettings(url=tls_prometheus.url, ca_file=certificate.cert))
    assert values and set(values) == {"7"}


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")  # urllib3's, for exactly what is asked here
def test_the_reader_reads_a_tls_prometheus_without_verifying_when_told_to(tls_prometheus: PrometheusServer) -> None:
    values = _read_a_constant(PrometheusSettings(url=tls_prometheus.url, insecure_skip_verify=True))
    assert values and set(values) == {"7"}


def test_a_certificate_the_reader_cannot_verify_is_named_as_the_tls_failure(
    tls_prometheus: PrometheusServer, tmp_path: Path
) -> None:
    other = make_self_signed_certificate(tmp_path)  # a valid CA bundle, but not the one that signed the server's
    for settings in (PrometheusSettings(url=tls_prometheus.url, retries=0),
                     PrometheusSettings(url=tls_prometheus.url, retries=0, ca_file=other.cert)):
        with pytest.raises(PrometheusUnreachable) as raised:
            _read_a_constant(settings)
        message = str(raised.value)
        assert message.startswith(f"prometheus {tls_prometheus.url}: TLS handshake failed: "
                                  f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), message
        assert "(check the CA bundle)" in message


def test_a_certificate_for_another_host_is_named_with_the_host(
    tls_prometheus: PrometheusServer, certificate: TlsFiles
) -> None:
    url = tls_prometheus.url.replace("127.0.0.1", "localhost")  # the certificate names only 127.0.0.1
    with pytest.raises(PrometheusUnreachable) as raised:
        _read_a_constant(PrometheusSettings(url=url, retries=0, ca_file=certificate.cert))
    message = str(raised.value)
    assert "TLS handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED]" in message, message
    assert "'localhost'" in message and "_ssl.c" not in message, message
