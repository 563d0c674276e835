"""What the Kubernetes client says of a call that failed: a connection never made is known unsent (a write there
changed nothing), and no call is retried inside itself (each retry would get the whole timeout again)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes.client import ApiClient, Configuration
from promharness import free_port

from perfpilot.actuate.kube import KubeApi, KubeError, connect


def test_a_write_to_an_api_server_that_takes_no_connection_is_known_unsent() -> None:
    configuration = Configuration(host=f"http://127.0.0.1:{free_port()}")
    configuration.retries = False
    api = KubeApi(ApiClient(configuration), request_timeout_seconds=1.0)
    with pytest.raises(KubeError) as raised:
        api.apply_json_patch("HorizontalPodAutoscaler", "shop", "api", [])
    assert (raised.value.status, raised.value.sent, raised.value.conflict) == (0, False, False)


def test_a_client_from_a_kubeconfig_does_not_retry_inside_a_call(tmp_path: Path) -> None:
    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: k, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n")
    client = connect(kubeconfig)
    assert client.configuration.retries is False
    assert client.rest_client.pool_manager.connection_pool_kw["retries"].total is False  # what urllib3 is given
